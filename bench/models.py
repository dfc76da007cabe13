"""Latency of every segmenter at 256² and 520², and the overhead of `Segmenter.predict`.

    python bench/models.py [--repeats 5] [--threads 2] [--device cpu]

The overhead column compares `Segmenter.predict(uint8 image)` (normalise, pad, forward, crop,
softmax, argmax, copy to CPU) with a bare `module(x)["out"]` on the same already-normalised
tensor. torchvision's networks are built with random weights here when theirs are not cached:
speed does not depend on the values of the weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import seg  # noqa: E402
from seg.devices import synchronize  # noqa: E402
from seg.models.segmenter import Segmenter, pad_to_multiple  # noqa: E402


def segmenter_for(name: str, device: str) -> Segmenter:
    """The registered segmenter, or torchvision's architecture with random weights."""
    entry = seg.models.entry(name)
    if entry.family == "seglab":
        return seg.models.load(name, device=device)
    from seg.models import pretrained

    if pretrained.is_cached(name):
        return seg.models.load(name, device=device)
    builder, weights = pretrained.TORCHVISION_SEGMENTERS[name]
    module = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    return Segmenter(name, module, [str(i) for i in range(21)], "untrained", device=device,
                     max_side=10_000)


def median_seconds(fn, repeats: int, device) -> float:
    fn()  # warm-up (allocator, cudnn autotune)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default=str(seg.devices.default_device()))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 520])
    parser.add_argument("--models", nargs="+", default=seg.models.list_models(task="segmentation"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {seg.devices.describe(args.device).label}, torch {torch.__version__}, "
          f"median of {args.repeats}")
    header = (f"{'model':<30}{'weights':<11}{'params':>10}" +
              "".join(f"{f'forward {s}² ms':>18}{f'predict {s}² ms':>18}{'overhead':>10}"
                      for s in args.sizes))
    print(header)
    print("-" * len(header))
    for name in args.models:
        segmenter = segmenter_for(name, args.device)
        row = f"{name:<30}{segmenter.source:<11}{segmenter.num_parameters / 1e6:>9.2f}M"
        for size in args.sizes:
            image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
            x, _ = segmenter.preprocess(image)
            x, _ = pad_to_multiple(x, segmenter.size_divisor)

            def bare():
                with torch.inference_mode():
                    segmenter.module(x)["out"]

            t_bare = median_seconds(bare, args.repeats, args.device)
            t_predict = median_seconds(lambda: segmenter.predict(image), args.repeats, args.device)
            row += (f"{t_bare * 1000:>18.1f}{t_predict * 1000:>18.1f}"
                    f"{(t_predict / t_bare - 1) * 100:>9.1f}%")
        print(row, flush=True)


if __name__ == "__main__":
    main()
