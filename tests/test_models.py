"""thyrocad.models: registry, head replacement, offline weights (file, hub cache, package)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import timm
import torch
from skimage import data as skdata
from torchvision import models as tvm
from torchvision.models import _api as tv_api

from thyrocad.errors import ModelError, WeightsError
from thyrocad.models import (
    channels_last,
    create_model,
    grey_inference_copy,
    inference_copy,
    list_models,
    model_info,
    split_last,
    split_model,
)
from thyrocad.models.inference_copy import GreyInputConv, fold_grey_input
from thyrocad.models.torchvision_models import hub_weights
from thyrocad.models.weights import weights_sha256

pytestmark = pytest.mark.usefixtures("one_thread")

TORCHVISION = {
    "resnet18": tvm.resnet18,
    "squeezenet1_1": tvm.squeezenet1_1,
    "squeezenet1_0": tvm.squeezenet1_0,
    "shufflenet_v2_x1_0": tvm.shufflenet_v2_x1_0,
}


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache; any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", no_download)
    return tmp_path / "torch"


def _imagenet_input(image: np.ndarray, mean, std) -> torch.Tensor:
    t = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    t = torch.nn.functional.interpolate(t, size=(224, 224), mode="bilinear", antialias=True)
    return (t - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def test_registry_lists_the_six_backbones():
    assert set(list_models()) == {
        "small_cnn",
        "resnet18",
        "squeezenet1_1",
        "squeezenet1_0",
        "shufflenet_v2_x1_0",
        "efficientnet_lite0",
    }
    with pytest.raises(ModelError, match="Known models"):
        create_model("vgg16", weights="none")


def test_lite0_package_weights_are_real_imagenet_weights():
    model = create_model("efficientnet_lite0", num_classes=1000).eval()
    info = model_info(model)
    assert info.weights.kind == "package"
    assert info.spec.mean == info.spec.std == (0.5, 0.5, 0.5)
    cfg = timm.data.resolve_model_data_config(model)
    assert tuple(cfg["mean"]) == info.spec.mean and tuple(cfg["std"]) == info.spec.std
    with torch.no_grad():
        cat = model(_imagenet_input(skdata.chelsea(), info.spec.mean, info.spec.std))
        coffee = model(_imagenet_input(skdata.coffee(), info.spec.mean, info.spec.std))
    assert 281 <= int(cat.argmax()) <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert int(coffee.argmax()) == 967  # espresso


def test_lite0_two_class_head_on_pretrained_backbone():
    pretrained = create_model("efficientnet_lite0", num_classes=1000)
    model = create_model("efficientnet_lite0")
    assert model.classifier.weight.shape == (2, 1280)
    assert torch.equal(model.conv_stem.weight, pretrained.conv_stem.weight)
    assert torch.equal(model.bn2.running_var, pretrained.bn2.running_var)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_local_weights_file(name, tmp_path, torch_home):
    torch.manual_seed(7)
    source = TORCHVISION[name](weights=None)
    path = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), path)

    model = create_model(name, weights=path)  # 2-class head, backbone from the file
    head = model_info(model).spec.head_prefix
    own = model.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith(head):
            assert own[key].shape[0] == 2
        else:
            assert torch.equal(own[key], value), key
    assert model_info(model).weights.kind == "file"
    assert not any(p.is_meta for p in model.parameters())  # built on meta, then loaded
    assert all(p.requires_grad for p in model.parameters())

    full = create_model(name, weights=path, num_classes=1000)  # the file's head is kept too
    assert all(torch.equal(full.state_dict()[k], v) for k, v in source.state_dict().items())


def test_hub_cache_preseeded_file_is_loaded(tmp_path, torch_home):
    torch.manual_seed(3)
    state = tvm.squeezenet1_1(weights=None).state_dict()
    staging = tmp_path / "staging.pth"
    torch.save(state, staging)
    sha = hashlib.sha256(staging.read_bytes()).hexdigest()
    cached = torch_home / "hub" / "checkpoints" / f"squeezenet1_1-{sha[:8]}.pth"
    cached.parent.mkdir(parents=True)
    staging.rename(cached)
    fake_enum = SimpleNamespace(url=f"https://example.invalid/models/{cached.name}")

    loaded, source = hub_weights("squeezenet1_1", fake_enum, allow_download=False)

    assert source.kind == "hub-cache" and source.sha256 == sha
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_hub_cache_uses_torchvision_file_name_and_checks_its_hash(torch_home):
    cached = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(tvm.resnet18(weights=None).state_dict(), cached)  # right name, wrong bytes
    with pytest.raises(WeightsError, match="sha256"):
        create_model("resnet18")


def test_missing_weights_error_names_both_ways(torch_home):
    with pytest.raises(WeightsError) as err:
        create_model("shufflenet_v2_x1_0")
    message = str(err.value)
    assert "--weights" in message
    assert "shufflenetv2_x1-5666bf0f80.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message


def test_wrong_architecture_weights_name_the_layers(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    with pytest.raises(
        WeightsError, match=r"squeezenet1_1.*features\.0\.weight.*not in the model: conv1\.weight"
    ):
        create_model("squeezenet1_1", weights=path)
    squeeze10 = tmp_path / "squeeze10.pth"
    torch.save(tvm.squeezenet1_0(weights=None).state_dict(), squeeze10)
    with pytest.raises(WeightsError, match=r"shape mismatch.*features\.0\.weight"):
        create_model("squeezenet1_1", weights=squeeze10)


def test_corrupt_weights_file(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="cannot be read"):
        create_model("resnet18", weights=path)


@pytest.mark.parametrize(
    "name", ["resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_lite0"]
)
def test_split_reproduces_forward(name):
    torch.manual_seed(0)
    model = create_model(name, weights="none").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        direct = model(x)
    assert direct.shape == (2, 2)
    for split in (split_model(model), split_last(model)):  # head mode's cut, last mode's cut
        split.head.eval()
        with torch.no_grad():
            torch.testing.assert_close(split.head(split.backbone(x)), direct, rtol=1e-5, atol=1e-6)
    # Grad-CAM's target layer gives spatial feature maps on the way to the output
    maps = []
    layer = model.get_submodule(model_info(model).spec.target_layer)
    handle = layer.register_forward_hook(lambda module, args, out: maps.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert len(maps) == 1 and maps[0].ndim == 4 and maps[0].shape[0] == 2


@pytest.mark.parametrize("name", list_models())
def test_split_last_holds_exactly_the_last_stage_and_head(name):
    """'last' mode's cut: the second part holds exactly the parameters 'last' mode trains
    (that the two parts reproduce the model is checked with the other cut above)."""
    model = create_model(name, weights="none")
    split = split_last(model)
    spec = model_info(model).spec
    prefixes = (*(f"{n}." for n in spec.last_stage), spec.head_prefix)
    trained = {id(p) for n, p in model.named_parameters() if n.startswith(prefixes)}
    assert {id(p) for p in split.head.parameters()} == trained
    assert not trained & {id(p) for p in split.backbone.parameters()}


@pytest.mark.parametrize("name", list_models())
def test_inference_copy_equals_the_original(name):
    torch.manual_seed(0)
    model = create_model(name, weights="none")
    model.train()  # the copy must not depend on the original's mode, nor change it
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics to fold
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    fast = inference_copy(model)
    assert model.training
    x = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        expected = model.eval()(x)
        got = fast(channels_last(x))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for p in fast.parameters())
    if name != "efficientnet_lite0":  # torch.fx cannot trace timm's EfficientNet: not folded
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())


@pytest.mark.parametrize("name", list_models())
def test_grey_input_fold_equals_the_three_channel_network(name):
    """Folded input convolution vs the original on grey images normalised with ImageNet's
    unequal per-channel mean/std: the same output, borders included (zero padding)."""
    torch.manual_seed(0)
    model = create_model(name, weights="none").eval()
    mean, std, size = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (64, 80)
    grey = torch.rand(3, 1, *size)
    x = (grey - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    folded = grey_inference_copy(model, mean, std, size)
    convs = [m for m in folded.modules() if isinstance(m, GreyInputConv)]
    assert len(convs) == 1 and convs[0].conv.weight.shape[1] == 1
    with torch.no_grad():
        expected = model(x)
        got = folded(channels_last(x))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_grey_input_fold_refuses_a_network_it_cannot_fold():
    """Two convolutions read the input: no fold, the copy stays three-channel (logged)."""
    two = torch.nn.ModuleList([torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(3, 4, 3)])

    class TwoReaders(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = two

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(ValueError, match="2 convolutions read the input"):
        fold_grey_input(TwoReaders().eval(), (0.5,) * 3, (0.5,) * 3, (16, 16))
    copy = grey_inference_copy(TwoReaders(), (0.5,) * 3, (0.5,) * 3, (16, 16))
    assert not any(isinstance(m, GreyInputConv) for m in copy.modules())


def test_squeezenet_head_has_no_relu():
    torch.manual_seed(0)
    model = create_model("squeezenet1_1", weights="none").eval()
    assert isinstance(model.classifier[2], torch.nn.Identity)
    assert model.classifier[1].out_channels == 2
    with torch.no_grad():
        logits = model(torch.randn(16, 3, 64, 64))
    assert (logits < 0).any()  # a ReLU would clip these to zero


def test_random_initialisation_only_on_request():
    model = create_model("resnet18", weights="none")
    assert model_info(model).weights.kind == "none"
    assert model.fc.out_features == 2


def test_failed_download_is_a_weights_error_naming_both_ways(torch_home, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as err:
        create_model("resnet18", weights="imagenet", allow_download=True)
    message = str(err.value)
    assert "the download failed" in message and "Name or service not known" in message
    assert "--weights FILE" in message and "resnet18-f37072fd.pth" in message


def test_weights_hash_is_remembered_until_the_file_changes(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"a" * 10)
    assert weights_sha256(path) == hashlib.sha256(b"a" * 10).hexdigest()
    path.write_bytes(b"b" * 11)
    assert weights_sha256(path) == hashlib.sha256(b"b" * 11).hexdigest()
