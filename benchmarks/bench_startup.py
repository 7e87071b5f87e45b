"""Start-up cost of the console script: `thyrocad --help`, `thyrocad version`, and `thyrocad
serve BUNDLE` until its first 200 on /health (a fresh database each time).

Each given source tree (`--src`, a folder holding the `thyrocad` package; several compare
versions in one run, interleaved) runs through the installed console script with PYTHONPATH set
to it. Prints, per tree and command, the wall time and the CPU time (user + sys of the child)
of every repetition: on a shared machine the CPU time is the steadier one.

Usage (any bundle; the one of docs/benchmarks.md was made by the first two lines):

    thyrocad phantom c --patients 6 --residual 3 --seed 7
    thyrocad train c --out b --model squeezenet1_1 --mode head --init scratch --epochs 2 \
        --batch-size 4 --lr 1e-3 --operating-point argmax
    python benchmarks/bench_startup.py --bundle b --src /tmp/before/src src --repeat 3
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

THYROCAD = Path(sys.executable).with_name("thyrocad")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(env: dict, *args: str) -> tuple[float, float]:
    """(wall s, CPU s) of one `thyrocad ARGS` to its exit."""
    cpu, start = _children_cpu(), time.monotonic()
    subprocess.run([str(THYROCAD), *args], env=env, capture_output=True, check=True)
    return time.monotonic() - start, _children_cpu() - cpu


def serve_once(env: dict, bundle: Path) -> tuple[float, float]:
    """(wall s, CPU s) of `thyrocad serve` to its first healthy answer (then killed)."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        cmd = [str(THYROCAD), "serve", str(bundle), "--port", str(port), "--db"]
        cpu, start = _children_cpu(), time.monotonic()
        proc = subprocess.Popen([*cmd, f"{folder}/t.db"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited with status {proc.returncode}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            wall = time.monotonic() - start
        finally:
            proc.kill()
            proc.wait()  # its CPU time is counted once it is reaped
        return wall, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="Model bundle to serve.")
    parser.add_argument("--src", nargs="+", default=["src"], help="Source trees to compare.")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    commands = {
        "thyrocad --help": lambda env: run_once(env, "--help"),
        "thyrocad version": lambda env: run_once(env, "version"),
        "thyrocad serve to /health": lambda env: serve_once(env, args.bundle),
    }
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for src in args.src:
            env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "OMP_NUM_THREADS": "1"}
            for name, fn in commands.items():
                times.setdefault((src, name), []).append(fn(env))
    print("| source | command | wall (s) | CPU user+sys (s) |\n|---|---|---|---|")
    for (src, name), runs in times.items():
        wall = ", ".join(f"{w:.2f}" for w, _ in runs)
        cpu = ", ".join(f"{c:.2f}" for _, c in runs)
        print(f"| {src} | {name} | {wall} | {cpu} |")


if __name__ == "__main__":
    main()
