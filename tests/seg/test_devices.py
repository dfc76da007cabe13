"""seg.devices on this machine (CPU) and, where present, on CUDA."""

import pytest
import torch

from seg.devices import DeviceInfo, default_device, describe, limit_threads, synchronize


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="has an accelerator")
def test_default_device_is_cpu_without_accelerator():
    assert default_device() == torch.device("cpu")


def test_force_cpu():
    assert default_device(force_cpu=True) == torch.device("cpu")


def test_describe_cpu():
    info = describe(torch.device("cpu"))
    assert isinstance(info, DeviceInfo)
    assert info.kind == "cpu" and info.name and info.memory_gb is None
    assert info.threads == torch.get_num_threads()
    assert "CPU" in info.label and str(info.threads) in info.label
    assert describe("cpu") == info


def test_limit_threads_restores():
    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert describe("cpu").label == "CPU · 1 thread"
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with limit_threads(1):
            raise RuntimeError("inference failed")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with limit_threads(0):
            pass


def test_synchronize_cpu_is_noop():
    synchronize("cpu")
    synchronize(torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device():
    device = default_device()
    assert device.type == "cuda"
    info = describe(device)
    assert info.kind == "cuda" and info.name == torch.cuda.get_device_name(0)
    assert info.label == f"GPU · {info.name}"
    assert info.memory_gb is not None and info.memory_gb > 1
    assert describe("cuda:0") == info
    x = torch.randn(2048, 2048, device=device)
    y = x @ x  # queued asynchronously
    synchronize(device)  # returns once the product is done
    assert torch.isfinite(y).all()
