"""Full-mode augmentation (`thyrocad.training.augment`): exact flips and shifts, seeded draws,
and a real small training run that resumes exactly."""

from __future__ import annotations

import pytest
import torch

from thyrocad.errors import ConfigError
from thyrocad.training import train
from thyrocad.training.augment import augment_batch
from training_helpers import small, toy_data

pytestmark = pytest.mark.usefixtures("one_thread")


def _ramp(n: int = 6) -> torch.Tensor:
    return torch.arange(n * 2 * 5 * 5, dtype=torch.float32).reshape(n, 2, 5, 5)


def test_each_image_is_itself_or_its_mirror_and_the_draws_follow_the_seed():
    x = _ramp(40)
    out = augment_batch(x, torch.Generator().manual_seed(3), flip=True, shift_px=0)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all()) and 0 < int(mirrored.sum()) < 40
    again = augment_batch(x, torch.Generator().manual_seed(3), flip=True, shift_px=0)
    assert torch.equal(out, again)
    other = augment_batch(x, torch.Generator().manual_seed(4), flip=True, shift_px=0)
    assert not torch.equal(out, other)


def test_a_shift_moves_pixels_by_whole_steps_and_repeats_the_edge():
    x = _ramp(200)
    out = augment_batch(x, torch.Generator().manual_seed(0), flip=False, shift_px=2)
    seen = set()
    for img, src in zip(out, x, strict=True):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                rows = (torch.arange(5) - dy).clamp(0, 4)
                cols = (torch.arange(5) - dx).clamp(0, 4)
                if torch.equal(img, src[:, rows][:, :, cols]):
                    matches.append((dy, dx))
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 25  # every shift in [-2, 2]^2 is drawn
    # shifted one pixel down: the first row repeats, the rest is the image moved down
    down = x[:1, :, [0, 0, 1, 2, 3]]
    assert torch.equal(down[0, 0, :, 0], torch.tensor([0.0, 0.0, 5.0, 10.0, 15.0]))


def test_augmentation_needs_full_mode():
    with pytest.raises(ConfigError, match="needs mode 'full'"):
        small(mode="head", flip=True)
    with pytest.raises(ConfigError, match="shift_px must be >= 0"):
        small(mode="full", shift_px=-1)


class _Stop(Exception):
    pass


def _stop(record) -> None:
    raise _Stop(record.epoch)


def test_augmented_training_is_seeded_and_differs_from_unaugmented(tmp_path):
    data = toy_data(n=16, size=32)
    cfg = small(model="small_cnn", mode="full", epochs=2, flip=True, shift_px=2)
    first, second = train(data, cfg), train(data, cfg)
    plain = train(data, small(model="small_cnn", mode="full", epochs=2))
    for k, a in first.model.state_dict().items():
        assert torch.equal(a, second.model.state_dict()[k]), k
    assert not torch.equal(first.model.classifier[1].weight, plain.model.classifier[1].weight)
    # interrupted after epoch 1 and resumed: the same weights as the uninterrupted run
    run_dir = tmp_path / "run"
    with pytest.raises(_Stop):
        train(data, cfg, run_dir, on_epoch=_stop)
    resumed = train(data, cfg, run_dir, resume=True)
    for k, a in first.model.state_dict().items():
        assert torch.equal(a, resumed.model.state_dict()[k]), k
