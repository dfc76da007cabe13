"""Where the models run: one device policy (CUDA, then Apple MPS, then CPU) and its label.

The sidebar shows :func:`describe`'s label so a student always knows whether a timing came
from a GPU or a laptop CPU; :func:`synchronize` makes such timings honest, because GPU work
is asynchronous and a clock read right after a launch measures almost nothing.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["DeviceInfo", "default_device", "describe", "limit_threads", "synchronize"]


def default_device(force_cpu: bool = False) -> torch.device:
    """The best device available: CUDA, then Apple's MPS, then the CPU.

    Args:
        force_cpu: use the CPU even if an accelerator is present (the sidebar switch).

    Returns:
        A ``torch.device``.

    Example:
        >>> default_device(force_cpu=True)
        device(type='cpu')
    """
    if not force_cpu and torch.cuda.is_available():
        return torch.device("cuda")
    if not force_cpu and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is, for display.

    Attributes:
        kind: ``torch.device`` type: "cuda", "mps" or "cpu".
        name: product name ("NVIDIA H100 80GB HBM3") or the CPU's processor string.
        threads: CPU threads torch uses for its own ops (``torch.get_num_threads()``).
        memory_gb: accelerator memory in GiB, None for the CPU and MPS (shared memory).
        label: short text for a badge, e.g. "GPU · NVIDIA H100 80GB HBM3" or "CPU · 2 threads".
    """

    kind: str
    name: str
    threads: int
    memory_gb: float | None
    label: str


def describe(device: torch.device | str) -> DeviceInfo:
    """Describe a device for the user: its kind, name, threads, memory and a badge label.

    Args:
        device: a ``torch.device`` or a string such as "cpu" or "cuda:0".

    Returns:
        A :class:`DeviceInfo`.

    Example:
        >>> describe("cpu").label  # doctest: +SKIP
        'CPU · 2 threads'
    """
    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        name = torch.cuda.get_device_name(index)
        return DeviceInfo("cuda", name, threads, props.total_memory / 2**30, f"GPU · {name}")
    if device.type == "mps":
        name = "Apple GPU (MPS)"
        return DeviceInfo("mps", name, threads, None, f"GPU · {name}")
    name = platform.processor() or "CPU"
    unit = "thread" if threads == 1 else "threads"
    return DeviceInfo(device.type, name, threads, None, f"CPU · {threads} {unit}")


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run a block with torch limited to ``n`` CPU threads, then restore the previous count.

    The server wraps each request's CPU inference in this so that one student's prediction
    cannot take every core from the others. The setting is process-wide, not per thread.

    Args:
        n: number of threads, at least 1.

    Example:
        >>> with limit_threads(1):
        ...     torch.get_num_threads()
        1
    """
    if n < 1:
        raise ValueError(f"need at least 1 thread, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def synchronize(device: torch.device | str) -> None:
    """Wait until all queued work on ``device`` has finished (no-op on the CPU).

    Call it before reading the clock on both sides of a timed block; otherwise a GPU timing
    only measures how long it took to queue the kernels.

    Args:
        device: the device the timed work ran on.

    Example:
        >>> synchronize("cpu")
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
