"""Small experiments that the building-block lessons run live, on the student's own CPU.

Each function is one experiment from a paper, shrunk until it finishes in seconds on a
laptop and rerun from scratch with a seed, so the numbers a lesson shows are measured, not
copied:

- `race`: the same AlexNet-style net trained with ReLU and with tanh (Krizhevsky, Sutskever &
  Hinton 2012, Figure 1: ReLUs reached 25 % training error on CIFAR-10 six times sooner).
- `regularised`: one small net trained on a deliberately small training set with dropout, an
  L1 or an L2 penalty: the train/validation gap and the weights it leaves behind.
- `gradient_norms` and `depth_race`: plain vs residual stacks (He, Zhang, Ren & Sun 2016):
  the gradient of every layer at initialisation, and the training loss of a shallow and a deep
  network of each kind (the degradation problem).
- `layer_table`: output shape and parameter count of every layer of a network, read by
  forward hooks, e.g. of torchvision's AlexNet or of the paper's own definition
  (`paper_alexnet`).

Safe for a class sharing one server: a seed gives the same numbers alone or while other
threads train, build networks or draw random numbers (every random draw of a seeded experiment
comes from generators of its own, `seg.rng.Seeded`), and no function changes a network it is
handed (hooks go on a private copy that shares the weights, `for_inference`).

The task everywhere is `seg.train.patch_dataset`: which class is at the centre of a patch cut
from SegLab's synthetic streets. Training runs on the CPU by default, on one thread: these nets
are so small that a GPU (or a second core) would spend its time waiting for Python, and one
thread gives the same numbers for the same seed on every machine — with more threads the
order of floating-point sums changes, and after a few hundred steps so does the whole run.

    >>> from seg import live
    >>> result = live.race(("relu", "tanh"))  # doctest: +SKIP
    >>> result.steps_to(0.5)  # the lesson's default race, ~15 s on a laptop  # doctest: +SKIP
    {'relu': 198, 'tanh': 387}
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg import rng, train
from seg.devices import limit_threads
from seg.models import registry
from seg.models.classifiers import ACTIVATIONS
from seg.models.segmenter import for_inference

__all__ = ["ACTIVATION_NAMES", "DepthRace", "LayerRow", "Race", "Regularised", "ShapeMismatch",
           "activation_curves", "depth_race", "feature_maps", "first_layer_filters",
           "gradient_norms", "layer_table", "loss_and_error", "mosaic", "moving_average",
           "paper_alexnet", "race", "regularised", "saturating", "steps_to"]

#: Called as `callback(fraction_done, text)` while an experiment trains (progress bars).
Progress = Callable[[float, str], None]

ACTIVATION_NAMES = tuple(ACTIVATIONS)

#: Patch side and scene size of every experiment here: 32 px patches of 128 px scenes show a
#: car or a person whole, and a step of the small nets takes a few milliseconds.
PATCH, SCENE = 32, 128


# --- Activations -------------------------------------------------------------------------------

def activation_curves(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An activation function and its derivative at the points `x`, the derivative by autograd.

    The functions are the very modules the networks use (`nn.ReLU`, `nn.Tanh`, `nn.Sigmoid`),
    so the plot shows what trains. ReLU's derivative at exactly 0 is taken as 0, as autograd
    does.

    Args:
        name: "relu", "tanh" or "sigmoid".
        x: points (any shape).

    Returns:
        (f(x), f'(x)) as float64 arrays of `x`'s shape.

    Example:
        >>> f, d = activation_curves("tanh", np.array([0.0, 3.0]))
        >>> np.round(d, 3).tolist()
        [1.0, 0.01]
    """
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    y = ACTIVATIONS[name]()(t)
    (grad,) = torch.autograd.grad(y.sum(), t)
    return y.detach().numpy(), grad.numpy()


def saturating(name: str, x: np.ndarray, threshold: float = 0.1) -> list[tuple[float, float]]:
    """The intervals of `x` where an activation saturates: its slope is below `threshold`
    times its largest slope, so almost no gradient flows back through the unit.

    ReLU has one such interval (x < 0: the unit is off and passes no gradient, but for inputs
    that are positive it never saturates); tanh and sigmoid flatten on both sides.

    Args:
        name: "relu", "tanh" or "sigmoid".
        x: increasing sample points.
        threshold: the share of the largest slope below which a unit counts as saturated.

    Returns:
        [(start, end), ...] intervals in the units of `x`.

    Example:
        >>> [(round(a), round(b)) for a, b in saturating("tanh", np.linspace(-6, 6, 1201))]
        [(-6, -2), (2, 6)]
    """
    x = np.asarray(x, dtype=np.float64)
    _, slope = activation_curves(name, x)
    flat = slope < threshold * slope.max()
    intervals, start = [], None
    for i, is_flat in enumerate(flat):
        if is_flat and start is None:
            start = i
        if start is not None and (not is_flat or i == len(x) - 1):
            end = i if is_flat else i - 1
            intervals.append((float(x[start]), float(x[end])))
            start = None
    return intervals


# --- Curves ------------------------------------------------------------------------------------

def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of the last `window` values at every position (fewer at the start).

    Mini-batch losses and errors jump from step to step; papers plot them smoothed like this.

    Example:
        >>> moving_average([1, 3, 5, 7], 2).tolist()
        [1.0, 2.0, 4.0, 6.0]
    """
    v = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], v]))
    counts = np.minimum(np.arange(1, len(v) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(v) + 1) - counts]) / counts


def steps_to(errors: Sequence[float], target: float) -> int | None:
    """The first step (1-based) whose error is at or below `target`, None if never.

    Example:
        >>> steps_to([0.9, 0.5, 0.3], 0.5)
        2
    """
    hits = np.nonzero(np.asarray(errors) <= target)[0]
    return int(hits[0]) + 1 if len(hits) else None


class _Recorder:
    """Records, for every training step, the labels of the batch and the net's predictions.

    `fit` returns only losses; wrapping its batches and hooking the net's output gives the
    mini-batch error of every step for free (the prediction made before that step's update,
    as papers plot "training error"), with no extra forward pass.
    """

    def __init__(self, module: nn.Module, batches: Iterator[train.Batch]):
        self.batches, self.labels, self.errors = batches, None, []
        self.handle = module.register_forward_hook(self._hook)

    def __iter__(self):
        return self

    def __next__(self) -> train.Batch:
        x, y = next(self.batches)
        self.labels = y
        return x, y

    def _hook(self, module, args, logits: torch.Tensor) -> None:
        if module.training:
            wrong = logits.detach().argmax(1).cpu() != self.labels  # (N,)
            self.errors.append(float(wrong.float().mean()))

    def close(self) -> None:
        self.handle.remove()


def _patches(train_size: int, seed: int, *, validation: int = 0, patch: int = PATCH):
    """Training patches from training scenes and, if asked, validation patches from unseen
    evaluation scenes."""
    x, y = train.patch_dataset(train_size, patch=patch, scene_size=SCENE, seed=seed)
    if not validation:
        return x, y
    xv, yv = train.patch_dataset(validation, patch=patch, scene_size=SCENE, seed=seed,
                                 evaluation=True)
    return x, y, xv, yv


def _one_thread(device: str):
    """One CPU thread while training on the CPU (reproducible); the device's own way otherwise."""
    return limit_threads(1) if torch.device(device).type == "cpu" else contextlib.nullcontext()


def _reporter(callback: Progress | None, done: int, total: int, text: str):
    """A `fit` callback that reports the overall fraction of a multi-run experiment."""
    every = max(1, total // 100)  # about a hundred updates over the whole experiment

    def report(info: train.StepInfo) -> None:
        if callback is not None and (info.step % every == 0 or info.step == info.steps):
            callback((done + info.step) / total, f"{text}: step {info.step} of {info.steps}")
    return report


# --- ReLU vs tanh ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Race:
    """Training curves of the same network with different activations.

    Attributes:
        names: the activations, in the order they were trained.
        loss: per activation, the cross-entropy of every step.
        error: per activation, the mini-batch training error of every step (before its update).
        window: steps averaged by `smoothed_error` (and `steps_to`).
        train_error, val_error: per activation, the error on the whole training set and on
            validation patches from unseen scenes after the last step.
        seconds: per activation, the training time.
        settings: the recipe (steps, lr, optimizer, batch size, train size, seed).
    """

    names: tuple[str, ...]
    loss: dict[str, list[float]]
    error: dict[str, list[float]]
    window: int
    train_error: dict[str, float]
    val_error: dict[str, float]
    seconds: dict[str, float]
    settings: dict

    def smoothed_error(self, name: str) -> np.ndarray:
        """The training error of `name`, averaged over the last `window` steps."""
        return moving_average(self.error[name], self.window)

    def steps_to(self, target_error: float) -> dict[str, int | None]:
        """Per activation, the first step whose smoothed training error is ≤ `target_error`."""
        return {n: steps_to(self.smoothed_error(n), target_error) for n in self.names}

    def speedup(self, target_error: float, fast: str = "relu", slow: str = "tanh") -> float | None:
        """How many times fewer steps `fast` needs than `slow` to reach `target_error`.

        None when `fast` never got there; when only `slow` never did, the ratio is a lower bound
        computed as if `slow` had reached it at the last step.
        """
        reached = self.steps_to(target_error)
        if reached[fast] is None:
            return None
        return (reached[slow] or len(self.error[slow])) / reached[fast]


def race(activations: Sequence[str] = ("relu", "tanh"), *, steps: int = 400, seed: int = 0,
         lr: float = 0.03, optimizer: str = "sgd", batch_size: int = 64,
         train_size: int = 2048, validation: int = 512, window: int = 20,
         callback: Progress | None = None, device: str = "cpu") -> Race:
    """Train the same small AlexNet once per activation and record how fast each learns.

    Every run starts from the same seed (the same random draws for the weights, scaled by the
    Kaiming gain of its activation), sees the same batches in the same order and uses the same
    learning rate, so the activation is the only difference. The seed's numbers are the same
    alone or beside other students' computations (`seg.rng`). As in AlexNet's Figure 1 there is
    no dropout and no weight decay, and the learning rate is constant: SGD with momentum 0.9.

    Args:
        activations: names from `ACTIVATION_NAMES`.
        steps: training steps per run.
        seed: seeds the patches, the weights and the batch order.
        lr: learning rate (the same for every activation).
        optimizer: "sgd" (momentum 0.9, as AlexNet) or "adamw".
        batch_size: patches per step.
        train_size: number of training patches (32×32, from training scenes).
        validation: number of validation patches from evaluation scenes (0: none).
        window: steps averaged when deciding when a target error is reached.
        callback: `callback(fraction, text)` for a progress bar.
        device: where to train.

    Returns:
        A `Race`; `race(...).steps_to(0.5)` gives the step at which each reached 50 % error.

    Example:
        >>> result = race(steps=20, train_size=128, validation=0)
        >>> len(result.loss["tanh"]), len(result.error["relu"])
        (20, 20)
    """
    if validation:
        x, y, xv, yv = _patches(train_size, seed, validation=validation)
    else:
        x, y = _patches(train_size, seed)
    losses, errors, train_error, val_error, seconds = {}, {}, {}, {}, {}
    with _one_thread(device):
        for i, name in enumerate(activations):
            net = rng.build(registry.build, "alexnet_small", activation=name, dropout=0.0,
                            in_size=PATCH, num_classes=len(train.CLASSES), seed=seed)
            recorder = _Recorder(net, train.tensor_batches(x, y, batch_size, seed=seed))
            start = time.perf_counter()
            losses[name] = train.fit(net, recorder, steps=steps, lr=lr, weight_decay=0.0,
                                     optimizer=optimizer, schedule="constant", device=device,
                                     seed=seed, callback=_reporter(callback, i * steps,
                                                                   len(activations) * steps, name))
            seconds[name] = time.perf_counter() - start
            recorder.close()
            errors[name] = recorder.errors
            train_error[name] = 1 - train.accuracy(net, x, y)
            val_error[name] = 1 - train.accuracy(net, xv, yv) if validation else float("nan")
    return Race(tuple(activations), losses, errors, window, train_error, val_error, seconds,
                dict(steps=steps, lr=lr, optimizer=optimizer, batch_size=batch_size,
                     train_size=train_size, seed=seed))


# --- Dropout, L1, L2 ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Regularised:
    """One small AlexNet trained on a small training set with one kind of regularisation.

    Attributes:
        dropout, l1, l2: the strengths used.
        steps: the steps at which the errors were measured.
        train_error, val_error: error on the whole training set and on validation patches
            from unseen scenes, at each of `steps`.
        loss: the training loss of every step (with the penalty, as minimised).
        weights: every weight of the conv and fully-connected layers (flattened, float32).
        seconds: training time.
    """

    dropout: float
    l1: float
    l2: float
    steps: list[int]
    train_error: list[float]
    val_error: list[float]
    loss: list[float]
    weights: np.ndarray
    seconds: float

    @property
    def gap(self) -> float:
        """Validation error minus training error at the end: how much the net overfits."""
        return self.val_error[-1] - self.train_error[-1]

    def near_zero(self, tolerance: float = 1e-3) -> float:
        """Share of weights with |w| < `tolerance` (what L1 drives up)."""
        return float(np.mean(np.abs(self.weights) < tolerance))

    @property
    def rms(self) -> float:
        """Root mean square of the weights (what L2 drives down)."""
        return float(np.sqrt(np.mean(self.weights.astype(np.float64) ** 2)))


def regularised(dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0, *, train_size: int = 256,
                validation: int = 1024, steps: int = 300, seed: int = 0, lr: float = 0.01,
                batch_size: int = 32, evaluations: int = 10, callback: Progress | None = None,
                device: str = "cpu") -> Regularised:
    """Train the small AlexNet on few patches with dropout, an L1 and/or an L2 penalty.

    With a few hundred training patches a network of ~320 000 weights can learn every one by
    heart: the training error falls towards zero while the validation error on unseen scenes
    stays high. Each regulariser fights this differently:

    - dropout (before fc6 and fc7) silences a random share of units at every step, so no unit
      can rely on another being there; the weights themselves are not pushed anywhere;
    - L1 adds λ₁·Σ|w| to the loss: a constant pull towards 0 that sets many weights to
      (almost) exactly zero, a sparse net;
    - L2 (SGD's `weight_decay` λ₂ adds λ₂·w to every gradient: the gradient of
      (λ₂/2)·‖w‖²) shrinks every weight in proportion to its size: many small weights, few
      exact zeros.

    Plain SGD (momentum 0.9, constant learning rate) is used so that L2 is the classic penalty
    in the loss; AdamW would decouple it from the gradient.

    Args:
        dropout: dropout probability before fc6 and fc7.
        l1: λ₁, strength of the L1 penalty on conv and linear weights.
        l2: λ₂, SGD weight decay (L2 penalty) on all parameters.
        train_size: number of training patches (small on purpose).
        validation: number of validation patches from evaluation scenes.
        steps: training steps.
        seed: seeds the patches, the weights, dropout and the batch order (the same numbers
            alone or beside other threads).
        lr: learning rate.
        batch_size: patches per step.
        evaluations: how many times the errors are measured during training.
        callback: `callback(fraction, text)` for a progress bar.
        device: where to train.

    Example:
        >>> r = regularised(l1=1e-3, train_size=64, validation=64, steps=20)
        >>> r.weights.shape, r.steps[-1]
        ((317704,), 20)
    """
    x, y, xv, yv = _patches(train_size, seed, validation=validation)
    net = rng.build(registry.build, "alexnet_small", activation="relu", dropout=dropout,
                    in_size=PATCH, num_classes=len(train.CLASSES), seed=seed)
    checkpoints = set(np.linspace(steps / evaluations, steps, evaluations).round().astype(int))
    at, train_error, val_error = [], [], []
    report = _reporter(callback, 0, steps, "training")

    def measure(info: train.StepInfo) -> None:
        report(info)
        if info.step in checkpoints:
            at.append(info.step)
            train_error.append(1 - train.accuracy(info.module, x, y))
            val_error.append(1 - train.accuracy(info.module, xv, yv))

    with _one_thread(device):
        start = time.perf_counter()
        loss = train.fit(net, train.tensor_batches(x, y, batch_size, seed=seed), steps=steps,
                         lr=lr, weight_decay=l2, l1=l1, optimizer="sgd", schedule="constant",
                         device=device, seed=seed, callback=measure)
    seconds = time.perf_counter() - start
    weights = torch.cat([m.weight.detach().cpu().flatten() for m in net.modules()
                         if isinstance(m, (nn.Conv2d, nn.Linear))])  # (P,)
    return Regularised(dropout, l1, l2, at, train_error, val_error, loss,
                       weights.numpy().astype(np.float32), seconds)


# --- Plain vs residual -------------------------------------------------------------------------

@torch.no_grad()
def loss_and_error(module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and error of a classifier on a fixed set, in eval mode.

    A module in training mode is run as a copy sharing its weights (`for_inference`): it never
    changes the module it is given, so it is safe on a shared model.

    Example:
        >>> net = registry.build("plain_net", depth=2, width=4)
        >>> loss, error = loss_and_error(net, torch.zeros(4, 3, 16, 16), torch.zeros(4).long())
    """
    net = for_inference(module)
    device = next(net.parameters()).device
    total, wrong = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = net(x[start:start + batch_size].to(device)).cpu()  # (B, K)
        labels = y[start:start + batch_size]
        total += float(F.cross_entropy(logits, labels, reduction="sum"))
        wrong += int((logits.argmax(1) != labels).sum())
    return total / len(x), wrong / len(x)


def _stack(depth: int, residual: bool, width: int) -> nn.Module:
    return registry.build("resnet_small" if residual else "plain_net", depth=depth, width=width,
                          num_classes=len(train.CLASSES))


def gradient_norms(depth: int, *, residual: bool, seed: int = 0, batch: int = 64,
                   width: int = 8, patch: int = 16) -> np.ndarray:
    """The gradient norm of every 3×3 convolution of a plain or residual stack at initialisation.

    The network is freshly initialised (seeded, the same alone or beside other threads), left
    in training mode (batch norm uses the
    statistics of the batch, as in the first training step), and one real batch of synthetic
    patches goes forward and backward through the cross-entropy loss. The result is
    ‖∂loss/∂W_l‖ for every layer l, first layer first.

    Args:
        depth: number of 3×3 convolutions.
        residual: with identity shortcuts (`resnet_small`) or without (`plain_net`).
        seed: seeds the weights and the batch.
        batch: number of patches in the batch.
        width: channels of the first stage (8, as in `depth_race`).
        patch: side of the patches (16, as in `depth_race`).

    Returns:
        float64 array (depth,).

    Example:
        >>> gradient_norms(8, residual=True, batch=16).shape
        (8,)
    """
    x, y = _patches(batch, seed, patch=patch)
    net = rng.build(_stack, depth, residual, width, seed=seed).train()
    with limit_threads(1):  # the same sums in the same order on every machine
        F.cross_entropy(net(x), y).backward()
    return np.array([conv.weight.grad.norm().item() for _, conv in net.conv_layers()])


@dataclass(frozen=True)
class DepthRace:
    """Training losses of plain and residual stacks of two or more depths.

    Attributes:
        depths: the depths trained.
        loss: the loss of every step, keyed by (kind, depth) with kind "plain" or "residual".
        window: steps averaged by `smoothed` and `final`.
        train_loss, train_error: after training, the loss and error of each network on the
            whole training set (eval mode), keyed like `loss`: what the optimiser achieved.
        seconds: training time, keyed like `loss`.
        settings: the recipe.
    """

    depths: tuple[int, ...]
    loss: dict[tuple[str, int], list[float]]
    window: int
    train_loss: dict[tuple[str, int], float]
    train_error: dict[tuple[str, int], float]
    seconds: dict[tuple[str, int], float]
    settings: dict

    def smoothed(self, kind: str, depth: int) -> np.ndarray:
        """The training loss of one network, averaged over the last `window` steps."""
        return moving_average(self.loss[kind, depth], self.window)

    def final(self, kind: str, depth: int) -> float:
        """The mean training loss of the last `window` steps."""
        return float(np.mean(self.loss[kind, depth][-self.window:]))


def depth_race(depths: Sequence[int] = (8, 20), *, steps: int = 300, seed: int = 0,
               width: int = 8, batch_size: int = 32, lr: float = 2e-3,
               optimizer: str = "adamw", schedule: str = "onecycle", patch: int = 16,
               train_size: int = 2048, window: int = 30, callback: Progress | None = None,
               device: str = "cpu") -> DepthRace:
    """Train plain and residual stacks of each depth on the same data; record their losses.

    He et al. saw a 56-layer plain network reach a *higher training* error than a 20-layer one
    although it could copy the 20 layers and make the rest identities: deeper plain networks
    are harder to optimise (the degradation problem), not overfitting. With identity shortcuts
    the deeper network trains at least as well. Every network here starts from the same seed
    and sees the same batches with the same recipe (batch norm; Adam, whose learning rate is
    warmed up then annealed, so that a few hundred steps are enough — He et al. used SGD for
    64 000 steps), so depth and shortcuts are the only differences. The patches are 16×16:
    the question is how well the optimiser does, and small patches keep a 32-layer network
    within seconds on a CPU.

    Args:
        depths: the depths (numbers of 3×3 convolutions) to compare.
        steps: training steps per network.
        seed: seeds the patches, the weights and the batch order.
        width: channels of the first stage.
        batch_size: patches per step.
        lr: peak learning rate.
        optimizer: "adamw" (without weight decay here: plain Adam) or "sgd" (momentum 0.9).
        schedule: "onecycle" (warm-up, then cosine decay) or "constant" (see `seg.train.fit`).
        patch: side of the patches in pixels.
        train_size: number of training patches.
        window: steps averaged by `DepthRace.final`.
        callback: `callback(fraction, text)` for a progress bar.
        device: where to train.

    Example:
        >>> result = depth_race((2, 4), steps=20, train_size=64)
        >>> sorted(result.train_loss)
        [('plain', 2), ('plain', 4), ('residual', 2), ('residual', 4)]
    """
    x, y = _patches(train_size, seed, patch=patch)
    runs = [(kind, depth) for depth in depths for kind in ("plain", "residual")]
    loss, train_loss, train_error, seconds = {}, {}, {}, {}
    with _one_thread(device):
        for i, (kind, depth) in enumerate(runs):
            net = rng.build(_stack, depth, kind == "residual", width, seed=seed)
            start = time.perf_counter()
            loss[kind, depth] = train.fit(
                net, train.tensor_batches(x, y, batch_size, seed=seed), steps=steps, lr=lr,
                weight_decay=0.0, optimizer=optimizer, schedule=schedule, device=device, seed=seed,
                callback=_reporter(callback, i * steps, len(runs) * steps, f"{kind}-{depth}"))
            seconds[kind, depth] = time.perf_counter() - start
            train_loss[kind, depth], train_error[kind, depth] = loss_and_error(net, x, y)
    return DepthRace(tuple(depths), loss, window, train_loss, train_error, seconds,
                     dict(steps=steps, lr=lr, optimizer=optimizer, schedule=schedule,
                          width=width, patch=patch, batch_size=batch_size,
                          train_size=train_size, seed=seed))


# --- Layer tables ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerRow:
    """One layer of a network as a table row.

    Attributes:
        name: "conv1", "pool1", "fc6"…, numbered the way AlexNet's paper does.
        module: the qualified name in the module ("features.0").
        kind: "conv", "max pool", "local response norm", "adaptive avg pool" or "fully connected".
        hyper: filters × kernel, then stride, padding and groups where they are not 1, 0
            and 1 ("64 × 11×11×3, stride 4, pad 2"), or the input and output features of a
            fully-connected layer.
        output: the output shape without the batch axis: (C, H, W), or (F,).
        params: number of parameters of the layer (weights and biases).
    """

    name: str
    module: str
    kind: str
    hyper: str
    output: tuple[int, ...]
    params: int

    @property
    def shape_text(self) -> str:
        """The output shape as a paper writes it: H×W×C, or F."""
        if len(self.output) == 3:
            c, h, w = self.output
            return f"{h}×{w}×{c}"
        return "×".join(str(v) for v in self.output)


_KINDS = ((nn.Conv2d, "conv"), (nn.MaxPool2d, "max pool"),
          (nn.LocalResponseNorm, "local response norm"),
          (nn.AdaptiveAvgPool2d, "adaptive avg pool"), (nn.Linear, "fully connected"))


class ShapeMismatch(ValueError):
    """An input size the network cannot take (e.g. a fully-connected layer expects another
    number of inputs). `rows` holds the layers that ran before it broke."""

    def __init__(self, message: str, rows: list[LayerRow]):
        super().__init__(message)
        self.rows = rows


def _pair_text(value) -> str:
    a, b = (value, value) if isinstance(value, int) else value
    return f"{a}×{b}" if a != b else f"{a}×{a}"


def _hyper_text(layer: nn.Module) -> str:
    if isinstance(layer, nn.Conv2d):
        # As the paper writes it: stride and padding only where they are not the default.
        pad = layer.padding[0] if isinstance(layer.padding, tuple) else layer.padding
        parts = [f"{layer.out_channels} × {_pair_text(layer.kernel_size)}×"
                 f"{layer.in_channels // layer.groups}"]
        parts += [f"stride {layer.stride[0]}"] if layer.stride[0] != 1 else []
        parts += [f"pad {pad}"] if pad else []
        parts += [f"{layer.groups} groups"] if layer.groups > 1 else []
        return ", ".join(parts)
    if isinstance(layer, nn.MaxPool2d):
        return f"{_pair_text(layer.kernel_size)}, stride {layer.stride}"
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return f"to {_pair_text(layer.output_size)}"
    if isinstance(layer, nn.LocalResponseNorm):
        return f"n={layer.size}, k={layer.k:g}, α={layer.alpha:g}, β={layer.beta:g}"
    return f"{layer.in_features} → {layer.out_features}"


def _next_name(kind: str, rows: list[LayerRow]) -> str:
    """The paper-style name of a layer of `kind` that runs after `rows`."""
    convs = sum(r.kind == "conv" for r in rows)
    if kind == "conv":
        return f"conv{convs + 1}"
    if kind == "fully connected":
        return f"fc{convs + sum(r.kind == kind for r in rows) + 1}"
    if kind == "max pool":
        return f"pool{convs}"
    if kind == "local response norm":
        return f"norm{convs}"
    return "avgpool"


def layer_table(module: nn.Module, input_size: tuple[int, int]) -> list[LayerRow]:
    """Output shape and parameter count of every convolution, pooling, normalisation and
    fully-connected layer, in the order they run.

    One batch of one image goes through the network in eval mode with a forward hook on each of
    those layers, so the shapes are those the network really produces (padding, rounding and
    all), not a formula's. The hooks are set on a private copy that shares the weights
    (`for_inference`): it never changes the module it is given, so it is safe on a shared model. Activations and dropout change no shape and have no parameters: they are
    left out. A module built on the "meta" device (no memory for its weights) works too.
    Layers are named as in AlexNet's paper: conv1…, pool1… (numbered after the convolution
    they follow), fc6… (numbered on from the last convolution).

    Args:
        module: the network (left as it is).
        input_size: (H, W) of the input image.

    Returns:
        One `LayerRow` per layer.

    Raises:
        ShapeMismatch: the input size does not fit; its `rows` are the layers that ran.

    Example:
        >>> import torchvision
        >>> rows = layer_table(torchvision.models.alexnet(), (224, 224))
        >>> rows[0].name, rows[0].shape_text, rows[0].params
        ('conv1', '55×55×64', 23296)
    """
    device = next(module.parameters()).device
    own = for_inference(module, private=True)  # the hooks go on this copy, never on `module`
    rows: list[LayerRow] = []
    hooked = [(q, layer, kind) for q, layer in own.named_modules()
              for kind in [next((k for cls, k in _KINDS if isinstance(layer, cls)), None)]
              if kind is not None]

    def hook(layer: nn.Module, args, output: torch.Tensor, qualified: str, kind: str) -> None:
        params = sum(p.numel() for p in layer.parameters(recurse=False))
        rows.append(LayerRow(_next_name(kind, rows), qualified, kind, _hyper_text(layer),
                             tuple(output.shape[1:]), params))

    for q, layer, kind in hooked:
        layer.register_forward_hook(lambda m, a, o, q=q, k=kind: hook(m, a, o, q, k))
    try:
        with torch.no_grad():
            own(torch.zeros(1, 3, *input_size, device=device))  # (1, 3, H, W)
    except RuntimeError as error:
        # The layers that ran are in `rows`; the next hooked one is where the sizes broke.
        after = f"after {rows[-1].name} ({rows[-1].shape_text})" if rows else "at the input"
        failed = hooked[len(rows)] if len(rows) < len(hooked) else None
        where = (f"{_next_name(failed[2], rows)} ({_hyper_text(failed[1])})" if failed
                 else "the next layer")
        if failed and isinstance(failed[1], nn.Linear) and rows:
            why = (f"it expects {failed[1].in_features} inputs and gets "
                   f"{int(np.prod(rows[-1].output))}")
        else:
            why = str(error).splitlines()[0]
        raise ShapeMismatch(f"A {input_size[0]}×{input_size[1]} input does not fit this "
                            f"network: {after}, {where} cannot run: {why}.", rows) from None
    return rows


#: AlexNet as the paper defines it (Krizhevsky et al. 2012, Section 3.5 and Figure 2), for a
#: 227×227 input: (name, out channels, kernel, stride, padding, groups). The paper trained on
#: two GPUs; conv2, conv4 and conv5 only see the kernel maps on their own GPU, which is a
#: convolution with 2 groups. LRN follows conv1 and conv2; 3×3/2 max-pools follow the LRNs
#: and conv5.
PAPER_ALEXNET_CONVS = (("conv1", 96, 11, 4, 0, 1), ("conv2", 256, 5, 1, 2, 2),
                       ("conv3", 384, 3, 1, 1, 1), ("conv4", 384, 3, 1, 1, 2),
                       ("conv5", 256, 3, 1, 1, 2))
PAPER_ALEXNET_FCS = (4096, 4096, 1000)


def paper_alexnet(device: str | torch.device = "meta") -> nn.Sequential:
    """AlexNet exactly as the paper describes it: 96 conv1 filters and two-GPU groups.

    torchvision's `alexnet` is the later one-GPU variant ("One weird trick…", Krizhevsky
    2014): 64 conv1 filters, padding 2 in conv1, no groups and no local response
    normalisation. Built on the "meta" device by default: its 61 million parameters get
    shapes but no memory, which is all `layer_table` needs.

    Args:
        device: where to build it ("meta": shapes only; "cpu": real random weights).

    Example:
        >>> [r.shape_text for r in layer_table(paper_alexnet(), (227, 227))][:2]
        ['55×55×96', '55×55×96']
    """
    layers, in_channels = [], 3
    with torch.device(device):
        for name, out_channels, kernel, stride, padding, groups in PAPER_ALEXNET_CONVS:
            layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, padding,
                                 groups=groups), nn.ReLU()]
            if name in ("conv1", "conv2"):
                layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
            if name in ("conv1", "conv2", "conv5"):
                layers.append(nn.MaxPool2d(3, 2))
            in_channels = out_channels
        layers.append(nn.Flatten())
        in_features = in_channels * 6 * 6
        for i, out_features in enumerate(PAPER_ALEXNET_FCS):
            layers.append(nn.Linear(in_features, out_features))
            if i < len(PAPER_ALEXNET_FCS) - 1:
                layers += [nn.ReLU(), nn.Dropout(0.5)]
            in_features = out_features
    return nn.Sequential(*layers)


# --- Pretrained networks: filters and feature maps ----------------------------------------------

def first_layer_filters(module: nn.Module) -> np.ndarray:
    """The filters of a network's first convolution as small RGB pictures.

    Each filter is stretched on its own to the range 0–255 (its sign and scale are
    arbitrary; the pattern is what it looks for), as in AlexNet's Figure 3.

    Args:
        module: a network whose first `nn.Conv2d` takes 3 input channels.

    Returns:
        uint8 array (K, k, k, 3): one k×k colour picture per filter.

    Example:
        >>> import torchvision
        >>> first_layer_filters(torchvision.models.alexnet()).shape
        (64, 11, 11, 3)
    """
    conv = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    w = conv.weight.detach().cpu().float().permute(0, 2, 3, 1)  # (K, k, k, 3)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    return ((w - lo) / (hi - lo).clamp_min(1e-12) * 255).round().byte().numpy()


def mosaic(pictures: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Small pictures (N, h, w[, 3]) laid out in a grid with `columns` columns, white between.

    Example:
        >>> mosaic(np.zeros((6, 2, 2, 3), np.uint8), columns=3).shape
        (5, 8, 3)
    """
    n, h, w = pictures.shape[:3]
    rows = -(-n // columns)
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, *pictures.shape[3:]),
                   255, pictures.dtype)
    for i, picture in enumerate(pictures):
        r, c = divmod(i, columns)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = picture
    return grid


def feature_maps(module: nn.Module, x: torch.Tensor, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The outputs of the named sub-modules for one image, read by forward hooks.

    The hooks are set on a private copy that shares the weights (`for_inference`), run in eval
    mode without gradients: it never changes the module it is given, so it is safe on a shared
    model — two students reading two pictures at once each get their own picture's maps.

    Args:
        module: the network (left as it is).
        x: one normalised image (1, 3, H, W).
        names: qualified sub-module names, e.g. ("layer1", "layer2") of a torchvision ResNet.

    Returns:
        {name: float32 array (C, h, w)} of the first (only) image.

    Example:
        >>> import torchvision
        >>> maps = feature_maps(torchvision.models.resnet18(), torch.zeros(1, 3, 64, 64),
        ...                     ["layer1", "layer4"])
        >>> maps["layer1"].shape, maps["layer4"].shape
        ((64, 16, 16), (512, 2, 2))
    """
    missing = [n for n in names if n not in dict(module.named_modules())]
    if missing:
        raise KeyError(f"no sub-module called {', '.join(missing)}")
    own = for_inference(module, private=True)  # the hooks go on this copy, never on `module`
    wanted = dict(own.named_modules())
    maps: dict[str, np.ndarray] = {}
    for n in names:
        wanted[n].register_forward_hook(
            lambda m, a, out, n=n: maps.__setitem__(n, out[0].detach().cpu().float().numpy()))
    with torch.no_grad():
        own(x)
    return maps
