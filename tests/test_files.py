"""thyrocad.files: atomic writes, and where the caches live ($THYROCAD_HOME, `using_home`)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from thyrocad.files import atomic_writer, thyrocad_home, using_home, write_text_atomic


def test_write_text_atomic_leaves_no_temporary_file_and_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "x.json"
    write_text_atomic(target, "old")
    assert target.read_text() == "old"

    with pytest.raises((TypeError, AttributeError)):  # fails while writing
        write_text_atomic(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.json"]

    write_text_atomic(target, "nouveau é")
    assert target.read_bytes() == "nouveau é".encode()
    assert os.listdir(tmp_path) == ["x.json"]


def test_atomic_writer_replaces_only_on_success_and_creates_folders(tmp_path):
    target = tmp_path / "deep" / "er" / "file.bin"
    with atomic_writer(target) as fh:
        fh.write(b"first")
        assert not target.exists()  # nothing is visible before the block ends
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"half of the sec")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"first"
    assert os.listdir(target.parent) == ["file.bin"]


def test_thyrocad_home_follows_the_environment_and_using_home(tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "env"))
    assert thyrocad_home() == tmp_path / "env"
    with using_home(tmp_path / "chosen"):
        assert thyrocad_home() == tmp_path / "chosen"
        with using_home(None):  # None: as before
            assert thyrocad_home() == tmp_path / "chosen"
        assert os.environ["THYROCAD_HOME"] == str(tmp_path / "env")  # environment untouched
    assert thyrocad_home() == tmp_path / "env"
    monkeypatch.delenv("THYROCAD_HOME")
    assert thyrocad_home() == Path.home() / ".cache" / "thyrocad"


def test_using_home_is_per_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("THYROCAD_HOME", str(tmp_path / "env"))
    seen = []
    with using_home(tmp_path / "mine"):
        other = threading.Thread(target=lambda: seen.append(thyrocad_home()))
        other.start()
        other.join()
        assert thyrocad_home() == tmp_path / "mine"
    assert seen == [tmp_path / "env"]
