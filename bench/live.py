"""Live training in the lessons: seconds per computation at each page's default settings.

    python bench/live.py [--repeats 1] [--budget 30]

Each row is one cached computation a student's first visit triggers (later visits with the same
settings hit the cache). Live training runs on one CPU thread by design (`seg.live` pins it,
so that a seed gives the same curves on every machine, and a class's requests do not fight over
the cores), so the seconds here are what a student waits; the ratio column compares them with
a budget (default 30 s: "finishes in seconds").
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


def seconds(call, repeats: int) -> float:
    """Median wall time of `call`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds a student may wait")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU, one thread, median of {args.repeats}")
    header = f"{'page':<9}{'computation':<46}{'seconds':>9}{f'÷ {args.budget:g} s':>9}"
    print(header)
    print("-" * len(header))
    pages: dict[str, float] = {}
    for page, what, call in WORK:
        measured = seconds(call, args.repeats)
        pages[page] = pages.get(page, 0.0) + measured
        print(f"{page:<9}{what:<46}{measured:>9.1f}{measured / args.budget:>9.2f}", flush=True)
    print("-" * len(header))
    for page, total in pages.items():
        print(f"{page:<9}{'all of the page (first visit, defaults)':<46}{total:>9.1f}"
              f"{total / args.budget:>9.2f}")


if __name__ == "__main__":
    main()
