"""thyrocad.cache: keys, the keyed disk store behind every cache, and its guarantees (a damaged
entry is a miss, a failed write is logged and never raised, entries appear whole or not at all)."""

from __future__ import annotations

import errno
import logging
import re
import threading
import types

import numpy as np
import pytest

import thyrocad
from thyrocad import files
from thyrocad.cache import Store, default_directory, make_key, source_digest
from thyrocad.files import using_home


def _entries(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_keys_depend_on_every_part_and_the_version(monkeypatch):
    key = make_key("inputs", {"b": 1, "a": [1, 2]})
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert make_key("inputs", {"a": [1, 2], "b": 1}) == key  # dict order does not matter
    assert make_key("inputs", {"a": [1, 2], "b": 2}) != key
    assert make_key("features", {"a": [1, 2], "b": 1}) != key
    monkeypatch.setattr(thyrocad, "__version__", "99.0.0")
    assert make_key("inputs", {"b": 1, "a": [1, 2]}) != key  # a new version: new entries


def test_source_digest_changes_with_the_code(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("x = 1\n")
    module = types.ModuleType("mod")
    module.__file__ = str(path)
    before = source_digest(module)
    assert source_digest(module) == before
    path.write_text("x = 2\n")
    assert source_digest(module) != before


def test_entries_round_trip_in_every_format(tmp_path):
    store = Store("test", tmp_path)
    assert store.get_json("k1") is None and store.get_arrays("k2") is None
    assert store.get_array("k3") is None  # absent: a silent miss
    store.put_json("k1", {"a": [1, 2.5], "b": None})
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "names": np.array(["a", "b"])}
    store.put_arrays("k2", **arrays)
    store.put_array("k3", np.array([1, 2, 3], dtype=np.int16))
    assert store.get_json("k1") == {"a": [1, 2.5], "b": None}
    got = store.get_arrays("k2")
    assert set(got) == {"x", "names"}
    np.testing.assert_array_equal(got["x"], arrays["x"])
    np.testing.assert_array_equal(got["names"], arrays["names"])
    assert store.get_array("k3").dtype == np.int16
    assert _entries(tmp_path) == ["k1.json", "k2.npz", "k3.npy"]


def test_sharded_store_and_default_directory(tmp_path):
    sharded = Store("test", tmp_path, shard=True)
    assert sharded.path("abcdef", ".npy") == tmp_path / "ab" / "abcdef.npy"
    with using_home(tmp_path / "home"):
        assert default_directory("features") == tmp_path / "home" / "cache" / "features"
        assert Store("features").directory == tmp_path / "home" / "cache" / "features"


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [
        (".json", b"{not json"),
        (".json", b"\xff\xfe"),
        (".npz", b"PK\x03\x04 not a zip archive"),
        (".npy", b"\x93NUMPY half a header"),
    ],
)
def test_damaged_entry_is_a_logged_miss(tmp_path, caplog, suffix, damage):
    store = Store("test", tmp_path)
    store.path("key", suffix).write_bytes(damage)
    read = {".json": store.get_json, ".npz": store.get_arrays, ".npy": store.get_array}[suffix]
    with caplog.at_level(logging.WARNING, logger="thyrocad.cache"):
        assert read("key") is None
    assert "ignoring unreadable key" in caplog.text


def test_failed_write_is_logged_not_raised(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    store = Store("test", blocker)
    with caplog.at_level(logging.WARNING, logger="thyrocad.cache"):
        store.put_json("key", {"a": 1})  # the folder cannot be made: the entry is lost
        store.put_arrays("key", x=np.zeros(3))
    assert caplog.text.count("could not write") == 2
    assert store.get_json("key") is None


def test_full_disk_keeps_the_old_entry_and_no_temporary_file(tmp_path, caplog, monkeypatch):
    store = Store("test", tmp_path)
    store.put_array("key", np.zeros(4))

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full)
    with caplog.at_level(logging.WARNING, logger="thyrocad.cache"):
        store.put_array("key", np.ones(4))  # logged, not raised
    monkeypatch.undo()
    assert "No space left on device" in caplog.text
    np.testing.assert_array_equal(store.get_array("key"), np.zeros(4))
    assert _entries(tmp_path) == ["key.npy"]


def test_error_while_writing_keeps_the_old_entry(tmp_path, caplog):
    store = Store("test", tmp_path)
    store.put_json("key", [1])
    with (
        caplog.at_level(logging.WARNING, logger="thyrocad.cache"),
        store.writer("key", ".json") as fh,
    ):
        fh.write(b"[2, 3")
        raise OSError(errno.EIO, "I/O error")  # a failing write: logged, not raised
    assert store.get_json("key") == [1]
    assert _entries(tmp_path) == ["key.json"]
    with pytest.raises(ValueError, match="not an OSError"), store.writer("key", ".json") as fh:
        fh.write(b"[4")
        raise ValueError("not an OSError: a bug, not a full disk")
    assert store.get_json("key") == [1]


def test_concurrent_writers_and_readers_see_only_whole_entries(tmp_path, caplog):
    store = Store("test", tmp_path)
    values = [np.full(200_000, i, dtype=np.float64) for i in range(3)]
    seen: list[float | None] = []
    stop = threading.Event()

    def write(value):
        for _ in range(15):
            store.put_array("key", value)

    def read():
        while not stop.is_set():
            got = store.get_array("key")
            seen.append(None if got is None else float(got[0]) if np.all(got == got[0]) else -1)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(v,)) for v in values]
    with caplog.at_level(logging.WARNING, logger="thyrocad.cache"):
        reader.start()
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        stop.set()
        reader.join()
    assert "unreadable" not in caplog.text
    assert set(seen) <= {None, 0.0, 1.0, 2.0}  # never a torn array
    final = store.get_array("key")
    assert final.shape == (200_000,) and final[0] in (0.0, 1.0, 2.0) and np.all(final == final[0])
    assert _entries(tmp_path) == ["key.npy"]
