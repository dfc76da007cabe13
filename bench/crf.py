"""Dense CRF speed, side by side: SegLab's PyTorch lattice vs pydensecrf (the authors' C++).

    python bench/crf.py            # 256², 512², 1024²; 8 and 21 labels; 5 and 10 iterations
    python bench/crf.py --quick    # 256² and 512²; 21 labels; 5 iterations

Both run with 2 PyTorch threads and with 1.

Each cell is the best of a few rounds (3 unless --repeats) of the whole call, probabilities in,
refined probabilities out (lattice construction included); the rounds alternate the contenders.
The image is scikit-image's astronaut photograph resized to the size; the probabilities are a
smooth random score map at stride 8, upsampled as a network's would be. "ratio" is
pydensecrf's seconds over SegLab's: above 1, SegLab is faster. "agree" is the share of pixels
whose label is the same in both. pydensecrf is single-threaded; the thread count applies to
PyTorch. A GPU column is added when CUDA is available.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seg.crf import DEEPLAB_V1_LARGEFOV, dense_crf  # noqa: E402

try:
    import pydensecrf.densecrf as pydensecrf
    from pydensecrf.utils import unary_from_softmax
except ImportError:  # the comparison column is optional: pip install -r requirements-oracle.txt
    pydensecrf = None


def problem(size: int, labels: int, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """A photograph at size×size and network-like probabilities (C, size, size) for it."""
    from skimage.data import astronaut

    image = np.array(Image.fromarray(astronaut()).resize((size, size), Image.BILINEAR))
    g = torch.Generator().manual_seed(seed)
    coarse = 2.0 * torch.randn(1, labels, size // 8, size // 8, generator=g)
    scores = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    return image, torch.softmax(scores, 0)


def run_pydensecrf(image: np.ndarray, probs: np.ndarray, iterations: int) -> np.ndarray:
    c, h, w = probs.shape
    p = DEEPLAB_V1_LARGEFOV
    crf = pydensecrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    crf.addPairwiseGaussian(sxy=p["theta_gamma"], compat=p["w2"])
    crf.addPairwiseBilateral(
        sxy=p["theta_alpha"], srgb=p["theta_beta"], rgbim=image, compat=p["w1"]
    )
    return np.array(crf.inference(iterations)).reshape(c, h, w)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256², 512²; 21 labels; 5 iterations")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per cell (best is kept)")
    args = parser.parse_args()
    sizes, label_counts, iteration_counts = ((256, 512), (21,), (5,)) if args.quick else (
        (256, 512, 1024), (8, 21), (5, 10))
    repeats = args.repeats or 3
    threads = (2, 1)
    cuda = torch.cuda.is_available()

    header = ["size", "labels", "iters", "threads", "pydensecrf s", "seglab s", "ratio", "agree %"]
    if cuda:
        header += ["GPU ms"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for size in sizes:
        for labels in label_counts:
            image, probs = problem(size, labels)
            on_gpu = probs.cuda() if cuda else None
            for iterations in iteration_counts:
                # Rounds alternate the contenders, so that a busy moment of a shared machine
                # hits them alike; each keeps its best round.
                best = {name: (float("inf"), None) for name in ["pydensecrf", "gpu", *threads]}
                if cuda:
                    dense_crf(image, on_gpu, iterations=iterations)  # warm-up: kernels, allocator
                for _ in range(repeats):
                    if pydensecrf is not None:
                        run = timed(lambda: run_pydensecrf(image, probs.numpy(), iterations))
                        best["pydensecrf"] = min(best["pydensecrf"], run, key=lambda r: r[0])
                    for n_threads in threads:
                        torch.set_num_threads(n_threads)
                        run = timed(lambda: dense_crf(image, probs, iterations=iterations))
                        best[n_threads] = min(best[n_threads], run, key=lambda r: r[0])
                    if cuda:
                        run = timed(lambda: (dense_crf(image, on_gpu, iterations=iterations),
                                             torch.cuda.synchronize()))
                        best["gpu"] = min(best["gpu"], run, key=lambda r: r[0])
                theirs_s, theirs = best["pydensecrf"]
                for n_threads in threads:
                    mine_s, mine = best[n_threads]
                    row = [f"{size}²", str(labels), str(iterations), str(n_threads)]
                    if theirs is None:
                        row += ["—", f"{mine_s:.3f}", "—", "—"]
                    else:
                        agree = 100.0 * float((mine.argmax(0).numpy() == theirs.argmax(0)).mean())
                        ratio = theirs_s / mine_s
                        row += [f"{theirs_s:.3f}", f"{mine_s:.3f}", f"{ratio:.2f}", f"{agree:.3f}"]
                    if cuda:
                        row += [f"{1000 * best['gpu'][0]:.1f}"]
                    print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
