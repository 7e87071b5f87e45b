"""Suite-wide: thyrocad's caches ($THYROCAD_HOME) go to a temporary folder, never ~/.cache."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_thyrocad_home(tmp_path_factory):
    before = os.environ.get("THYROCAD_HOME")
    os.environ["THYROCAD_HOME"] = str(tmp_path_factory.mktemp("thyrocad-home"))
    yield
    if before is None:
        os.environ.pop("THYROCAD_HOME", None)
    else:
        os.environ["THYROCAD_HOME"] = before
