"""How fast SegLab renders its synthetic street scenes, on one CPU thread.

Run from the repository root:  python bench/scenes.py  [--seeds 20] [--frames 12]

Prints, for each image size, the median wall-clock and CPU milliseconds per scene over the
seeds (on a shared machine the CPU time is the steadier of the two), the median milliseconds
per frame of a clip, and the ratio of the wall-clock time to the 20 ms target, which is set for
a 256 x 256 scene (below 1.0 is within target).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread, before numpy starts its pools

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seg import synthetic  # noqa: E402

TARGET_MS = 20.0
SIZES = [(128, 128), (256, 256), (512, 512), (240, 320)]


def _median_ms(fn, runs) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds of fn(arg) over the runs."""
    wall, cpu = [], []
    for arg in runs:
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(arg)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="scenes per size (median over them)")
    parser.add_argument("--frames", type=int, default=12, help="frames per clip")
    parser.add_argument("--clips", type=int, default=3, help="clips per size")
    args = parser.parse_args()

    synthetic.scene(0, height=64, width=64)  # warm up imports and caches
    print(f"seg.synthetic on one thread, median of {args.seeds} seeds; clips of {args.frames} frames")
    print(f"{'size (H x W)':>14} {'ms/scene':>9} {'cpu ms':>7} {'clip ms/frame':>14} {'target ms':>10} {'ratio':>6}")
    for height, width in SIZES:
        scene_ms, scene_cpu = _median_ms(lambda s: synthetic.scene(s, height=height, width=width), range(args.seeds))
        clip_ms, _ = _median_ms(lambda s: synthetic.clip(s, frames=args.frames, height=height, width=width),
                                range(args.clips))
        print(f"{f'{height} x {width}':>14} {scene_ms:>9.2f} {scene_cpu:>7.2f} {clip_ms / args.frames:>14.2f} "
              f"{TARGET_MS:>10.1f} {scene_ms / TARGET_MS:>6.2f}")


if __name__ == "__main__":
    main()
