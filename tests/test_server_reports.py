"""The web app's report pool (`thyrocad.server.reports`): reports run at a lower CPU priority
than verdicts, and never fail to start because of it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from thyrocad.server.reports import REPORT_NICENESS, Reports

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux thread nice")


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_reports_run_at_a_lower_priority_than_the_verdict_threads():
    before = _priority()
    reports, seen = Reports(1), []
    reports.submit("d1", lambda: seen.append(_priority()))
    assert reports.wait("d1", 10)
    reports.shutdown()
    assert seen == [max(REPORT_NICENESS, before)]
    assert _priority() == before  # the calling (verdict) thread is left as it was


def test_a_server_started_at_a_lower_priority_still_makes_reports():
    """`nice -n 19 thyrocad serve`: a report thread must not try to raise its priority to 10
    (not permitted without privileges: the pool would be broken)."""
    code = (
        "import os, threading\n"
        "from thyrocad.server.reports import Reports\n"
        "r, seen = Reports(1), []\n"
        "r.submit('d', lambda: seen.append(os.getpriority(os.PRIO_PROCESS, "
        "threading.get_native_id())))\n"
        "assert r.wait('d', 10)\n"
        "print(seen)\n"
    )
    done = subprocess.run(
        ["nice", "-n", "19", sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[19]"
