"""Where the web app's verdict threads spend their time, from a py-spy sample file.

Reads `py-spy record --threads --idle --format raw` output taken from a running
`thyrocad serve` (for example during `bench_server.py`), keeps the samples of the threads
that compute verdicts (AnyIO worker threads inside `thyrocad/server/analysis.py`), and prints
how many of them were waiting for the process-wide warning lock (innermost frame in
`thyrocad.warning_filters`) and the functions they spent most samples in.

    py-spy record -p PID -d 60 -r 50 --nonblocking --threads --idle -f raw -o spy.txt
    python benchmarks/verdict_waits.py spy.txt
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:)]+)")


def innermost(stack: str) -> tuple[str, str]:
    """(function, file) of the innermost frame of one raw py-spy stack."""
    match = FRAME.match(stack.split(";")[-1])
    return (match["function"], match["file"]) if match else (stack.split(";")[-1], "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="py-spy raw output (--threads --idle)")
    args = parser.parse_args()
    leaves: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in args.samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "AnyIO worker thread" not in stack or "thyrocad/server/analysis.py" not in stack:
            continue
        function, file = innermost(stack)
        total += int(count)
        waiting += int(count) * file.endswith("thyrocad/warning_filters.py")
        leaves[f"{function} ({Path(file).name})"] += int(count)
    print(f"verdict-thread samples: {total}")
    print(f"waiting for the warning lock: {waiting} ({100 * waiting / max(total, 1):.1f} %)")
    for leaf, count in leaves.most_common(8):
        print(f"  {count:6d}  {leaf}")


if __name__ == "__main__":
    main()
