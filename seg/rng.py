"""Seeded randomness that belongs to one computation, not to the whole process.

`torch.manual_seed(seed)` seeds torch's one global generator, which every thread of the process
draws from: weight initialisation of any `nn.Module` anywhere, dropout masks, `torch.rand`. On a
server where 40 students share one process, a seeded training that relies on it gives other
numbers whenever someone else draws random numbers at the same time, and reseeding it changes
everyone else's draws too. Torch's random functions take a `generator=` of their own instead
(`torch.randperm`, `torch.rand`, `nn.init.kaiming_normal_`, `Tensor.bernoulli_`…), but the code
that calls them — a layer's `reset_parameters`, `F.dropout` — does not pass one on.

`Seeded` passes one on. Inside `with Seeded(seed):` every random operation that *this thread*
runs and that was given no generator draws from generators of the block's own, seeded with
`seed` (one per device, as `torch.manual_seed` seeds one per device). PyTorch keeps dispatch
modes per thread, so other threads, and their draws, neither see nor disturb the block. A
fresh generator seeded with `seed` produces exactly the numbers the global one does after
`torch.manual_seed(seed)`, so a block gives the same numbers as the serial
`torch.manual_seed(seed); …` code it replaces — alone or beside others.

    >>> with Seeded(0):
    ...     net = torch.nn.Linear(4, 2)  # its default initialisation draws from the block's own
    >>> _ = torch.manual_seed(0)  # the serial way, on the generator every thread shares
    >>> torch.equal(net.weight, torch.nn.Linear(4, 2).weight)
    True

Random operations are recognised by the tag torch gives them (`torch.Tag.nondeterministic_seeded`).
Those with a `generator` argument, or an overload that has one (`torch.rand` and friends), are
given the block's generator; CUDA's fused dropout (`native_dropout`) draws its mask from it. An
operation that would still draw from the global generator (an RNN or attention with dropout,
which take no generator) raises instead of silently ignoring the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Seeded", "build"]

T = TypeVar("T")

_aten = torch.ops.aten

#: Devices that draw nothing: a "meta" tensor has a shape and no values.
_NO_VALUES = ("meta",)

#: (op) -> the overload of the same op that takes a generator, or None; filled as ops are seen.
_WITH_GENERATOR: dict = {}

#: Arguments that, when zero (or `train` false), make an operation tagged random draw nothing.
_DROPOUT_ARGUMENTS = ("dropout", "dropout_p", "p")


def _takes_generator(op) -> bool:
    return any(argument.name == "generator" for argument in op._schema.arguments)


def _generator_overload(op):
    """The overload of `op` with the same arguments plus `generator` (`rand.default` →
    `rand.generator`), or None."""
    if op not in _WITH_GENERATOR:
        names = [a.name for a in op._schema.arguments]
        match = None
        for overload in op.overloadpacket.overloads():
            candidate = getattr(op.overloadpacket, overload)
            others = [a.name for a in candidate._schema.arguments]
            if "generator" in others and sorted(others) == sorted(names + ["generator"]):
                match = candidate
                break
        _WITH_GENERATOR[op] = match
    return _WITH_GENERATOR[op]


def _draws_nothing(op, args, kwargs) -> bool:
    """True when an operation tagged random is called so that it draws no random number: its
    dropout probability is 0 or it is not training (an RNN or attention without dropout)."""
    # The dispatcher leaves out arguments given at their default value: read those from the
    # schema.
    values = {a.name: a.default_value for a in op._schema.arguments if a.has_default_value()}
    values.update(zip((a.name for a in op._schema.arguments), args), **kwargs)
    if values.get("train", values.get("training", True)) is False:
        return True
    probabilities = [values[name] for name in _DROPOUT_ARGUMENTS if name in values]
    return bool(probabilities) and all(p == 0 for p in probabilities)


def _device_of(args, kwargs) -> torch.device:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    device = kwargs.get("device")
    return torch.device(device) if device is not None else torch.get_default_device()


class Seeded(TorchDispatchMode):
    """A block in which this thread's random draws come from generators seeded with `seed`.

    Use it with `with`; entering the same `Seeded` again continues its streams where the last
    block stopped, so a training loop can leave the block for its callbacks (whose draws, if
    any, then are not part of the seeded computation) and come back. One `Seeded` belongs to one
    thread at a time. See the module docstring for what it covers.

    Args:
        seed: the seed of every device's generator.

    Example:
        >>> draws = Seeded(3)
        >>> with draws:
        ...     a = torch.rand(2)
        >>> with draws:
        ...     b = torch.rand(2)
        >>> torch.equal(torch.cat([a, b]), torch.rand(4, generator=torch.Generator().manual_seed(3)))
        True
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)
        self.generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """The block's generator for `device`, created (seeded) the first time it is asked for."""
        device = torch.device(device)
        if device.type != "cpu" and device.index is None:
            device = torch.device(device.type, torch.get_device_module(device.type).current_device())
        if device not in self.generators:
            self.generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self.generators[device]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if torch.Tag.nondeterministic_seeded not in func.tags or kwargs.get("generator") is not None:
            return func(*args, **kwargs)
        device = _device_of(args, kwargs)
        if device.type in _NO_VALUES:
            return func(*args, **kwargs)
        if func in (_aten.native_dropout.default,):
            return self._native_dropout(*args, **kwargs)
        kwargs["generator"] = self.generator(device)
        if _takes_generator(func):  # normal_, uniform_, bernoulli_, randperm.generator…
            return func(*args, **kwargs)
        overload = _generator_overload(func)  # rand.default → rand.generator…
        if overload is not None:
            return overload(*args, **kwargs)
        del kwargs["generator"]
        if _draws_nothing(func, args, kwargs):
            return func(*args, **kwargs)
        raise NotImplementedError(
            f"{func} draws random numbers from torch's global generator and takes no generator, "
            f"so a seeded block cannot make it reproducible; use it without dropout here")

    def _native_dropout(self, input: torch.Tensor, p: float, train: bool | None):
        """CUDA's fused dropout with the mask drawn from the block's generator: (output, mask)."""
        if train is False or p == 0:
            return input.clone(), torch.ones_like(input, dtype=torch.bool)
        keep = torch.empty_like(input).bernoulli_(1 - p, generator=self.generator(input.device))
        scale = 1 / (1 - p) if p < 1 else 0.0
        return input * keep * scale, keep.bool()


def build(factory: Callable[..., T], /, *args, seed: int, **kwargs) -> T:
    """`factory(*args, **kwargs)` with its random initialisation drawn from `Seeded(seed)`.

    The same network for the same seed, whatever other threads build or draw meanwhile, and the
    same as `torch.manual_seed(seed); factory(*args, **kwargs)` run alone.

    Example:
        >>> from seg.models.renet import ReNetLayer
        >>> a, b = (build(ReNetLayer, 3, 8, 4, seed=0) for _ in range(2))
        >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        True
    """
    with Seeded(seed):
        return factory(*args, **kwargs)
