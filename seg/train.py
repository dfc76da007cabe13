"""One training loop for SegLab: the CLI trains the shipped segmenters with it, lessons train
small classifiers live with it.

Data never comes from disk: it is drawn on the fly from `seg.synthetic`, training scenes from
`train_seed(i)` and evaluation scenes from `eval_seed(i)`, two ranges that never meet.

    >>> from seg import train
    >>> net = seg.models.build("fcn8s")  # doctest: +SKIP
    >>> batches = train.segmentation_batches(batch_size=4, crop=96, pool_size=16)  # doctest: +SKIP
    >>> losses = train.fit(net, batches, steps=20)  # doctest: +SKIP
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg import metrics, rng
from seg.devices import default_device, synchronize
from seg.models import checkpoints, registry
from seg.models.segmenter import IMAGENET_MEAN, IMAGENET_STD, Segmenter, for_inference
from seg.synthetic import CLASSES, eval_seed, scene, train_seed

Batch = tuple[torch.Tensor, torch.Tensor]


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → ImageNet-normalised float (N, 3, H, W), as `Segmenter` feeds nets."""
    # contiguous (N, C, H, W), not the channels-last view of the (N, H, W, 3) buffer: see
    # `seg.models.segmenter.to_tensor`.
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    x = x.float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std  # (N, 3, H, W)


class ScenePool:
    """A pool of synthetic training scenes that renews itself a little at every draw.

    Rendering a scene costs ~20 ms, more than a small net's training step, so a batch is cut
    from a pool of rendered scenes (random crop, mirror, brightness and contrast jitter) and a
    few pool members are replaced by fresh scenes each time: the net still sees thousands of
    different scenes over a run, at a fraction of the rendering cost.
    """

    def __init__(self, size: int = 256, pool_size: int = 256, refresh: int = 1, seed: int = 0):
        self.size, self.refresh = size, refresh
        self.rng = np.random.default_rng(seed)
        self.next_index = seed * 10_000_000 % 900_000  # keeps well inside the training range
        scenes = [self._render() for _ in range(pool_size)]
        self.images = np.stack([s.image for s in scenes])  # (P, H, W, 3) uint8
        self.labels = np.stack([s.labels for s in scenes])  # (P, H, W) int64

    def _render(self):
        s = scene(train_seed(self.next_index), height=self.size, width=self.size)
        self.next_index += 1
        return s

    def class_frequencies(self) -> np.ndarray:
        """Share of pixels of each class in the pool (C,)."""
        counts = np.bincount(self.labels.ravel(), minlength=len(CLASSES)).astype(np.float64)
        return counts / counts.sum()

    def draw(self, batch_size: int, crop: int) -> Batch:
        """One augmented batch: normalised images (N, 3, crop, crop), labels (N, crop, crop)."""
        for _ in range(self.refresh):
            slot = int(self.rng.integers(len(self.images)))
            fresh = self._render()
            self.images[slot], self.labels[slot] = fresh.image, fresh.labels
        picks = self.rng.integers(len(self.images), size=batch_size)
        tops = self.rng.integers(self.size - crop + 1, size=batch_size)
        lefts = self.rng.integers(self.size - crop + 1, size=batch_size)
        images = np.stack([self.images[p, t:t + crop, l:l + crop]
                           for p, t, l in zip(picks, tops, lefts)])
        labels = np.stack([self.labels[p, t:t + crop, l:l + crop]
                           for p, t, l in zip(picks, tops, lefts)])
        flip = self.rng.random(batch_size) < 0.5
        images[flip], labels[flip] = images[flip, :, ::-1], labels[flip, :, ::-1]
        x = normalise(images)  # (N, 3, crop, crop)
        # Photometric jitter in normalised space: contrast × and brightness +, per image.
        gain = torch.from_numpy(self.rng.uniform(0.7, 1.3, batch_size)).float().view(-1, 1, 1, 1)
        bias = torch.from_numpy(self.rng.uniform(-0.4, 0.4, batch_size)).float().view(-1, 1, 1, 1)
        return x * gain + bias, torch.from_numpy(np.ascontiguousarray(labels))


def segmentation_batches(*, batch_size: int = 8, crop: int = 160, scene_size: int = 256,
                         pool_size: int = 256, seed: int = 0) -> Iterator[Batch]:
    """Endless augmented batches of synthetic training scenes (see `ScenePool`)."""
    pool = ScenePool(scene_size, pool_size, seed=seed)
    while True:
        yield pool.draw(batch_size, crop)


def patch_dataset(n: int, *, patch: int = 32, scene_size: int = 128, seed: int = 0,
                  first_scene: int = 0, evaluation: bool = False) -> Batch:
    """A classification task drawn from the scenes: which class is at the centre of a patch?

    Patches are cut around random pixels, choosing the class first (uniformly among those
    present) so that thin classes are not drowned out by sky and road.

    Args:
        n: number of patches.
        patch: side of each patch in pixels.
        scene_size: the scenes' size (smaller scenes: objects look bigger in a patch).
        seed: the sampling seed.
        first_scene: index of the first scene used (different values give disjoint sets).
        evaluation: draw from the evaluation seeds instead of the training seeds.

    Returns:
        images (n, 3, patch, patch) normalised, labels (n,) int64.
    """
    rng = np.random.default_rng(seed)
    half = patch // 2
    images, labels = [], []
    index = first_scene
    seed_of = eval_seed if evaluation else train_seed
    while len(labels) < n:
        s = scene(seed_of(index), height=scene_size, width=scene_size)
        index += 1
        padded = np.pad(s.image, ((half, half), (half, half), (0, 0)), mode="reflect")
        present = np.unique(s.labels)
        for _ in range(min(16, n - len(labels))):
            c = rng.choice(present)
            ys, xs = np.nonzero(s.labels == c)
            k = rng.integers(len(ys))
            y, x = ys[k], xs[k]
            images.append(padded[y:y + patch, x:x + patch])
            labels.append(c)
    return normalise(np.stack(images)), torch.tensor(np.array(labels), dtype=torch.int64)


def tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   seed: int = 0) -> Iterator[Batch]:
    """Endless shuffled mini-batches of a fixed dataset (one reshuffle per epoch)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            yield x[index], y[index]


@dataclass
class StepInfo:
    """What a training callback sees after each step."""

    step: int  # 1-based
    steps: int
    loss: float
    lr: float
    seconds: float  # since the start of training
    module: nn.Module


def fit(module: nn.Module, batches: Iterator[Batch], *, steps: int, lr: float = 2e-3,
        weight_decay: float = 1e-4, l1: float = 0.0, optimizer: str = "adamw",
        schedule: str = "onecycle", class_weights: torch.Tensor | None = None,
        ignore_index: int = 255, device=None,
        callback: Callable[[StepInfo], bool | None] | None = None,
        progress: bool = False, seed: int = 0) -> list[float]:
    """Train `module` with cross-entropy for `steps` steps; returns the loss of every step.

    Works for segmenters (outputs a dict with "out", labels (N, H, W)) and classifiers
    (outputs logits (N, K), labels (N,)) alike.

    Every random draw of a training step (dropout's masks, a batch iterator's own draws from
    torch) comes from generators of the run's own, seeded with `seed` (`seg.rng.Seeded`): the
    same seed gives the same losses alone or while other threads train, build networks or draw
    random numbers, and the global generator is neither read nor reseeded. Only the batch and
    the forward pass run in the seeded block (backward and the update draw nothing, and run at
    full speed outside it), and the callback runs outside it too.

    Args:
        module: the network (trained in place, left in eval mode).
        batches: an iterator of (images, labels), e.g. `segmentation_batches()`.
        steps: number of optimisation steps.
        lr: peak learning rate.
        weight_decay: L2 penalty (decoupled for AdamW, classic for SGD): λ₂·‖w‖².
        l1: L1 penalty λ₁·Σ|w| on the weights of conv/linear layers, added to the loss.
        optimizer: "adamw" (robust for small nets) or "sgd" (momentum 0.9, as AlexNet).
        schedule: "onecycle" (warm-up then cosine decay) or "constant".
        class_weights: optional (C,) weights for the cross-entropy.
        device: where to train (default: CUDA, then MPS, then CPU).
        callback: called with a `StepInfo` after each step; return True to stop early.
        progress: show a progress bar in the terminal (tqdm).
        seed: seeds the training's own random draws (dropout); the batches and the weights
            are seeded where they are made (`tensor_batches`, `seg.rng.build`).

    Example:
        >>> net = seg.models.build("alexnet_small", in_size=32)  # doctest: +SKIP
        >>> x, y = patch_dataset(256)  # doctest: +SKIP
        >>> losses = fit(net, tensor_batches(x, y, 32), steps=50)  # doctest: +SKIP
    """
    draws = rng.Seeded(seed)
    device = torch.device(device or default_device())
    module.to(device).train()
    params = [p for p in module.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    if schedule == "onecycle" and steps >= 3:
        # At least two warm-up steps: OneCycleLR divides by (warm-up steps - 1), which is zero
        # when 10 % of the run rounds to one step.
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                    pct_start=max(0.1, 2 / steps))
    elif schedule == "onecycle":  # one or two steps: no room for a cycle
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    elif schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"schedule must be 'onecycle' or 'constant', got {schedule!r}")
    weights = class_weights.to(device) if class_weights is not None else None
    penalised = [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit="step", file=sys.stderr)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        with draws:  # the forward pass draws (dropout); backward and the update do not
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = module(x)
        logits = out["out"] if isinstance(out, dict) else out  # (N, C, H, W) or (N, C)
        loss = F.cross_entropy(logits, y, weight=weights, ignore_index=ignore_index)
        if l1:
            loss = loss + l1 * sum(w.abs().sum() for w in penalised)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if bar is not None:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
        if callback is not None:
            info = StepInfo(step, steps, losses[-1], sched.get_last_lr()[0],
                            time.perf_counter() - start, module)
            if callback(info):
                break
    if bar is not None:
        bar.close()
    module.eval()
    return losses


@torch.no_grad()
def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Classification accuracy of `module` on a fixed set, in eval mode (a copy sharing its
    weights if it is training: `module` itself is never changed, so it is safe on a shared
    model)."""
    net = for_inference(module)
    device = next(net.parameters()).device
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = net(x[start:start + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == y[start:start + batch_size]).sum())
    return correct / max(1, len(x))


def median_frequency_weights(frequencies: np.ndarray, power: float = 0.5) -> torch.Tensor:
    """Class weights (median frequency / frequency)^power, SegNet's balancing softened.

    Power 1 is SegNet's median-frequency balancing; 0.5 helps thin classes (poles, people)
    without making the net paint them everywhere.
    """
    freq = np.maximum(frequencies, 1e-6)
    return torch.tensor((np.median(freq) / freq) ** power, dtype=torch.float32)


@dataclass
class Evaluation:
    """Scores of a segmenter on held-out synthetic scenes."""

    miou: float
    iou: list[float]  # per class, nan where a class never occurred
    pixel_accuracy: float
    ms_per_image: float
    num_scenes: int
    size: int
    classes: list[str] = field(default_factory=lambda: list(CLASSES))

    def table(self) -> str:
        """A plain-text table of the scores, one class a row."""
        rows = [f"{'class':<12}{'IoU':>8}"]
        rows += [f"{c:<12}{v:>8.3f}" for c, v in zip(self.classes, self.iou)]
        rows += [f"{'mIoU':<12}{self.miou:>8.3f}", f"{'pixel acc':<12}{self.pixel_accuracy:>8.3f}",
                 f"{'ms/image':<12}{self.ms_per_image:>8.1f}",
                 f"({self.num_scenes} held-out scenes at {self.size}×{self.size})"]
        return "\n".join(rows)


def evaluate(segmenter: Segmenter, *, num_scenes: int = 256, size: int = 256,
             first: int = 0) -> Evaluation:
    """mIoU, per-class IoU, pixel accuracy and latency on held-out scenes `eval_seed(first + i)`.

    Example:
        >>> evaluate(seg.models.load("fcn8s"), num_scenes=8).miou  # doctest: +SKIP
        0.83
    """
    num_classes = len(segmenter.classes)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    seconds = 0.0
    for i in range(num_scenes):
        s = scene(eval_seed(first + i), height=size, width=size)
        prediction = segmenter.predict(s.image)
        seconds += prediction.seconds
        confusion += metrics.confusion_matrix(prediction.labels, s.labels, num_classes)
    iou = metrics.iou_from_confusion(confusion)
    return Evaluation(miou=float(np.nanmean(iou.numpy())), iou=[float(v) for v in iou],
                      pixel_accuracy=float(confusion.diag().sum() / confusion.sum()),
                      ms_per_image=1000 * seconds / num_scenes, num_scenes=num_scenes, size=size)


def ceiling_table(strides, *, num_scenes: int = 256, size: int = 256) -> str:
    """Per-class IoU and mIoU of a perfect stride-s score map (`metrics.stride_ceiling`) on
    the held-out scenes `eval_seed(0..num_scenes-1)`, one row per stride, as a text table.

    This is what a network with that output stride can at best reach on the scenes its model
    card is measured on, whatever its training: the yardstick for the cards' mIoU.
    """
    num_classes = len(CLASSES)
    confusions = {s: torch.zeros(num_classes, num_classes, dtype=torch.int64) for s in strides}
    for i in range(num_scenes):
        truth = torch.from_numpy(scene(eval_seed(i), height=size, width=size).labels)
        for s in strides:
            confusions[s] += metrics.confusion_matrix(
                metrics.stride_ceiling(truth, s, num_classes), truth, num_classes)
    rows = [f"{'stride':<8}" + "".join(f"{c:>11}" for c in CLASSES) + f"{'mIoU':>8}"]
    for s in strides:
        iou = metrics.iou_from_confusion(confusions[s]).numpy()
        rows.append(f"{s:<8}" + "".join(f"{v:>11.3f}" for v in iou) + f"{np.nanmean(iou):>8.3f}")
    rows.append(f"(a perfect stride-s score map, upsampled bilinearly, on {num_scenes} held-out "
                f"scenes at {size}×{size})")
    return "\n".join(rows)


def train_segmenter(name: str, *, steps: int = 3000, crop: int = 160, batch_size: int = 8,
                    lr: float = 2e-3, seed: int = 0, device=None, out_dir=None,
                    eval_scenes: int = 256, progress: bool = True,
                    callback: Callable[[StepInfo], bool | None] | None = None,
                    command: str | None = None, pool_size: int = 256
                    ) -> tuple[Segmenter, Evaluation]:
    """Train a SegLab segmenter from scratch, evaluate it and save checkpoint + model card.

    Seeded throughout with generators of its own (`seg.rng`; the scenes by NumPy generators
    seeded with `seed`): the same weights alone or beside other threads.

    Args:
        name: a SegLab segmenter from the registry (e.g. "fcn8s").
        steps, crop, batch_size, lr, seed: the recipe (stored in the card).
        device: where to train.
        out_dir: where to write `<name>.pt` and `<name>.json` (default: `weights/`).
        eval_scenes: how many held-out 256×256 scenes the card's scores are measured on.
        progress: terminal progress bar.
        callback: per-step callback (see `fit`).
        command: the command line to record in the card (default: this process's argv).
        pool_size: scenes kept rendered at a time (`ScenePool`; a few for a smoke test).
    """
    entry = registry.entry(name)
    if entry.family != "seglab" or entry.task != "segmentation":
        raise ValueError(f"{name} is not one of SegLab's segmenters")
    device = torch.device(device or default_device())
    kwargs = dict(entry.defaults)
    module = rng.build(entry.build_fn(), seed=seed, **kwargs)
    start = time.perf_counter()
    pool = ScenePool(256, pool_size, seed=seed)
    weights = median_frequency_weights(pool.class_frequencies())
    batches = iter(lambda: pool.draw(batch_size, crop), None)
    losses = fit(module, batches, steps=steps, lr=lr, class_weights=weights, device=device,
                 callback=callback, progress=progress, seed=seed)
    synchronize(device)
    train_seconds = time.perf_counter() - start
    card = {
        "name": name, "title": entry.title, "paper": entry.paper, "classes": list(CLASSES),
        "num_params": sum(p.numel() for p in module.parameters()),
        "training": {"steps": len(losses), "crop": crop, "batch_size": batch_size, "lr": lr,
                     "seed": seed, "pool_size": pool_size, "optimizer": "AdamW, one-cycle", "seconds": round(train_seconds, 1),
                     "device": _device_label(device), "final_loss": round(float(np.mean(losses[-50:])), 4),
                     "train_seeds": "seg.synthetic.train_seed(i)"},
        "command": command or "python -m seg " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    path = checkpoints.save_checkpoint(module, name, kwargs, card, out_dir)
    segmenter = registry.load(name, device=device, weights_dir=path.parent)
    evaluation = evaluate(segmenter, num_scenes=eval_scenes)
    card = checkpoints.read_card(name, path.parent)
    card["evaluation"] = {"miou": round(evaluation.miou, 4),
                          "pixel_accuracy": round(evaluation.pixel_accuracy, 4),
                          "iou": {c: round(v, 4) for c, v in zip(CLASSES, evaluation.iou)},
                          "num_scenes": eval_scenes, "size": 256,
                          "eval_seeds": f"seg.synthetic.eval_seed(0..{eval_scenes - 1})",
                          "ms_per_image": round(evaluation.ms_per_image, 1),
                          "latency_device": _device_label(device)}
    checkpoints.card_path(name, path.parent).write_text(_json(card))
    segmenter.card.update(card)
    return segmenter, evaluation


def _device_label(device: torch.device) -> str:
    from seg.devices import describe

    label = describe(device).label
    return f"{label} ({platform.machine()})" if device.type == "cpu" else label


def _json(card: dict) -> str:
    import json

    return json.dumps(card, indent=2) + "\n"

