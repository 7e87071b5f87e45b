import pytest

from thyrocad.data.splits import stratified_splits


def _paper_cohort():
    ids = [f"P{i:03d}" for i in range(446)]
    labels = [1] * 346 + [0] * 100
    return ids, labels


def test_paper_sized_cohort_reproduces_paper_counts():
    ids, labels = _paper_cohort()
    lab = dict(zip(ids, labels, strict=True))
    splits = stratified_splits(ids, labels, n_splits=10, seed=3)
    assert len(splits) == 10
    for s in splits:
        assert (len(s.train), len(s.test)) == (335, 111)
        assert sum(lab[p] for p in s.train) == 260
        assert sum(lab[p] for p in s.test) == 86
        assert not set(s.train) & set(s.test)
        assert set(s.train) | set(s.test) == set(ids)
    assert len({s.test for s in splits}) == 10


def test_splits_are_deterministic_and_order_independent():
    ids, labels = _paper_cohort()
    a = stratified_splits(ids, labels, n_splits=3, seed=7)
    b = stratified_splits(ids[::-1], labels[::-1], n_splits=3, seed=7)
    c = stratified_splits(ids, labels, n_splits=5, seed=7)[:3]
    assert a == b == c
    assert a != stratified_splits(ids, labels, n_splits=3, seed=8)


@pytest.mark.parametrize(
    ("ids", "labels", "match"),
    [
        (["a", "b", "c", "d"], [1, 1, 1, 1], "two classes"),
        (["a", "b", "c", "d", "e"], [1, 1, 1, 0, 0], "too few"),
        (["a", "a", "b", "c"], [1, 1, 0, 0], "unique"),
    ],
)
def test_bad_inputs_are_refused(ids, labels, match):
    with pytest.raises(ValueError, match=match):
        stratified_splits(ids, labels)
