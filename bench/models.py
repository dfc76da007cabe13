"""Latency of every segmenter at 256² and 520², and the overhead of `Segmenter.predict`.

    python bench/models.py [--repeats 5] [--threads 2] [--device cpu]

The overhead column compares `Segmenter.predict(uint8 image)` (normalise, pad, forward, crop)
with a bare `module(x)["out"]` on the same already-normalised tensor; "+labels" also reads
`prediction.labels` (the argmax at full resolution, which `predict` leaves until it is read)
and compares it with `module(x)["out"].argmax(1)`. The two are timed in alternation, one
after the other, and the overhead is the median of the per-pair ratios: this machine's speed
drifts by tens of per cent within a minute, which would swamp a few per cent between blocks. torchvision's networks are built with random weights here when theirs are not cached:
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


def seconds(fn, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def paired(bare, wrapped, repeats: int, device) -> tuple[float, float, float]:
    """Median seconds of `bare` and `wrapped`, timed in alternation, and the median ratio."""
    bare(), wrapped()  # warm-up (allocator, cudnn autotune)
    pairs = [(seconds(bare, device), seconds(wrapped, device)) for _ in range(repeats)]
    return (statistics.median(b for b, _ in pairs), statistics.median(w for _, w in pairs),
            statistics.median(w / b for b, w in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
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
                      f"{'+labels':>9}" for s in args.sizes))
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
                    return segmenter.module(x)["out"]

            def bare_labels():
                with torch.inference_mode():
                    return bare().argmax(1)

            t_bare, t_predict, ratio = paired(bare, lambda: segmenter.predict(image),
                                              args.repeats, args.device)
            _, _, ratio_labels = paired(bare_labels, lambda: segmenter.predict(image).labels,
                                        args.repeats, args.device)
            row += (f"{t_bare * 1000:>18.1f}{t_predict * 1000:>18.1f}"
                    f"{(ratio - 1) * 100:>9.1f}%{(ratio_labels - 1) * 100:>8.1f}%")
        print(row, flush=True)


if __name__ == "__main__":
    main()
