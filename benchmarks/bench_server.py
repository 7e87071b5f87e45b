"""Load test of the web API: POST /api/v1/diagnoses with 1, 4 and 16 concurrent clients.

A real `thyrocad serve` process on a free loopback port (fresh database, one user), each client
a thread with its own HTTP connection uploading phantom DICOM studies in a loop for
`--duration` seconds per level; every upload is a study not uploaded before (`--studies`
distinct ones; the output says if any had to be sent again). Each iteration times the upload's
answer (the verdict: probabilities, flags) and then waits for the rest (`GET
/api/v1/diagnoses/{id}?wait_report=true`: Grad-CAM, figures, PDF, DICOM results), giving the
time to verdict and the time to the full report from the same requests. Reports studies/s,
p50/p95 of both times, errors (an upload not answered 201 or a report not "ready"), and the
server's resident memory (VmRSS) sampled every 0.5 s over the whole run: its value at the start
and end of each level and its maximum.

Usage (issue size; the bundle default is bench_predict's cached ResNet-18):

    python benchmarks/bench_server.py --duration 60 --clients 1,4,16
    python benchmarks/bench_server.py --bundle runs/r18 --duration 5 --clients 1,4

Prints a markdown table and writes benchmarks/results/bench_server.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench_predict import default_bundle
from explain_truth import phantom
from thyrocad.provenance import library_versions, machine_description
from thyrocad.server.auth import add_user
from thyrocad.server.store import Store

RESULTS = Path(__file__).parent / "results" / "bench_server.json"
PASSWORD = "benchmark password"
THYROCAD = Path(sys.executable).parent / "thyrocad"


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(bundle: Path, folder: Path, port: int) -> subprocess.Popen:
    db = folder / "bench.db"
    add_user(Store(db), "bench", PASSWORD)
    log = (folder / "server.log").open("wb")
    cmd = [str(THYROCAD), "serve", str(bundle), "--port", str(port), "--db", str(db)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server did not start; see {folder / 'server.log'}")


def client_loop(url: str, token: str, studies: Studies, stop: threading.Event, out: list):
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
        while not stop.is_set():
            start = time.perf_counter()
            r = client.post("/api/v1/diagnoses", files={"file": ("s.dcm", studies.next())})
            verdict = time.perf_counter() - start
            ok = r.status_code == 201
            if ok:
                full = client.get(f"/api/v1/diagnoses/{r.json()['id']}?wait_report=true")
                ok = full.status_code == 200 and full.json()["result"]["report"] == "ready"
            out.append((verdict, time.perf_counter() - start, ok))


def quantiles(name: str, seconds: list[float]) -> dict[str, float | None]:
    """p50 and p95 of `seconds` as `<name>_p50_s`, `<name>_p95_s` (None when empty)."""
    return {
        f"{name}_p{q}_s": round(float(np.percentile(seconds, q)), 3) if seconds else None
        for q in (50, 95)
    }


class Studies:
    """The phantom studies, each handed out once across all clients and levels (the server
    remembers located beds per image, so a repeated study would be answered faster than a new
    one); `repeats` counts those handed out again after all were used."""

    def __init__(self, files: list[bytes]) -> None:
        self.files, self._count, self._lock = files, itertools.count(), threading.Lock()
        self.repeats = 0

    def next(self) -> bytes:
        with self._lock:
            i = next(self._count)
            self.repeats += i >= len(self.files)
            return self.files[i % len(self.files)]


def run_level(url: str, token: str, studies: Studies, clients: int, duration: float,
              pid: int, rss: list[tuple[float, float]]) -> dict:  # fmt: skip
    stop = threading.Event()
    results: list[list] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=client_loop, args=(url, token, studies, stop, results[k]))
        for k in range(clients)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while time.monotonic() - t0 < duration:
        rss.append((time.monotonic(), rss_mb(pid)))
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0  # includes the requests in flight when time was up
    done = [r for per in results for r in per]
    rss.append((time.monotonic(), rss_mb(pid)))
    level_rss = [m for t, m in rss if t >= t0]
    return {
        "clients": clients,
        "requests": len(done),
        "errors": sum(not ok for *_, ok in done),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(done) / elapsed, 3),
        **quantiles("verdict", [v for v, _, _ in done]),
        # every client uploads at once when a level starts: without that burst
        **quantiles("verdict_steady", [v for per in results for v, _, _ in per[1:]]),
        **quantiles("report", [f for _, f, _ in done]),
        "rss_start_mb": round(level_rss[0], 1),
        "rss_end_mb": round(level_rss[-1], 1),
        "rss_max_mb": round(max(level_rss), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="model bundle (default: cached ResNet-18)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per level")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated levels")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--studies", type=int, default=200, help="distinct phantom studies")
    args = parser.parse_args()

    bundle = args.bundle or default_bundle()
    files = sorted((phantom(args.studies, seed=7) / "images").glob("*.dcm"))
    studies = Studies([p.read_bytes() for p in files])
    folder = Path(tempfile.mkdtemp(prefix="bench-server-"))
    proc = start_server(bundle, folder, args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        r = httpx.post(f"{url}/api/v1/token", json={"username": "bench", "password": PASSWORD})
        token = r.json()["access_token"]
        rss: list[tuple[float, float]] = []
        levels = [
            run_level(url, token, studies, int(c), args.duration, proc.pid, rss)
            for c in args.clients.split(",")
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    report = {
        "bundle": str(bundle),
        "duration_s_per_level": args.duration,
        "distinct_studies": len(studies.files),
        "repeated_uploads": studies.repeats,
        "cpu_count": os.cpu_count(),
        "levels": levels,
        "machine": machine_description(),
        "library_versions": library_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"bundle {bundle}, {args.duration:g} s per level, {os.cpu_count()} CPUs, "
          f"{len(studies.files)} distinct studies, {studies.repeats} uploaded again\n")  # fmt: skip
    print(
        "| clients | studies | errors | studies/s | verdict p50 (s) | verdict p95 (s) | "
        "verdict p50 / p95 after each client's first (s) | full report p50 (s) | "
        "full report p95 (s) | RSS start/end/max (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for lv in levels:
        print(
            f"| {lv['clients']} | {lv['requests']} | {lv['errors']} | {lv['requests_per_s']} | "
            f"{lv['verdict_p50_s']} | {lv['verdict_p95_s']} | "
            f"{lv['verdict_steady_p50_s']} / {lv['verdict_steady_p95_s']} | {lv['report_p50_s']} | "
            f"{lv['report_p95_s']} | {lv['rss_start_mb']}/{lv['rss_end_mb']}/{lv['rss_max_mb']} |"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
