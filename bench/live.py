"""Live training in the lessons: seconds per computation at each page's default settings.

    python bench/live.py [--threads 1 2] [--repeats 1]

Each row is one cached computation a student's first visit triggers (later visits with the same
settings hit the cache). The server runs every student's request on one torch thread
(app/serving.py), so the 1-thread column is what a student waits in class; the ratio column
says how much a second thread would help one student alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seg import live  # noqa: E402
from seg.devices import limit_threads  # noqa: E402

#: (page, what, call) at the defaults of lessons/10_alexnet.py and lessons/11_resnet.py.
WORK = [
    ("alexnet", "ReLU vs tanh race (2 nets × 400 steps)", lambda: live.race(("relu", "tanh"))),
    ("alexnet", "dropout p = 0.5 (300 steps)", lambda: live.regularised(dropout=0.5)),
    ("alexnet", "L1 λ₁ = 1e-3 (300 steps)", lambda: live.regularised(l1=1e-3)),
    ("alexnet", "L2 λ₂ = 3e-2 (300 steps)", lambda: live.regularised(l2=3e-2)),
    ("alexnet", "no regulariser (300 steps)", lambda: live.regularised()),
    ("resnet", "gradient norms, depth 32, plain + residual",
     lambda: (live.gradient_norms(32, residual=False), live.gradient_norms(32, residual=True))),
    ("resnet", "depth race 8 vs 20 (4 nets × 300 steps)", lambda: live.depth_race((8, 20))),
]


def seconds(call, threads: int, repeats: int) -> float:
    """Median wall time of `call` under a torch thread cap."""
    times = []
    with limit_threads(threads):
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU, median of {args.repeats}")
    heads = "".join(f"{f'{n} thread' + ('s' if n > 1 else '') + ' s':>14}" for n in args.threads)
    ratio = f"{f'{args.threads[0]}/{args.threads[-1]}':>8}" if len(args.threads) > 1 else ""
    header = f"{'page':<9}{'computation':<46}{heads}{ratio}"
    print(header)
    print("-" * len(header))
    totals = [0.0] * len(args.threads)
    for page, what, call in WORK:
        measured = [seconds(call, n, args.repeats) for n in args.threads]
        totals = [t + m for t, m in zip(totals, measured)]
        row = f"{page:<9}{what:<46}" + "".join(f"{m:>14.1f}" for m in measured)
        if ratio:
            row += f"{measured[0] / measured[-1]:>8.2f}"
        print(row, flush=True)
    row = f"{'':<9}{'all of the above':<46}" + "".join(f"{t:>14.1f}" for t in totals)
    print(row + (f"{totals[0] / totals[-1]:>8.2f}" if ratio else ""))


if __name__ == "__main__":
    main()
