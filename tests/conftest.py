"""Test-wide settings: one torch/BLAS thread per test worker.

The suite runs as two pytest-xdist workers on a 2-core machine; with torch's default of one
thread per core each worker would oversubscribe the cores, and on a loaded machine that made
forward passes 15-100x slower. Set before torch is imported; the browser tests' Streamlit server
inherits it.
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import torch  # noqa: E402

torch.set_num_threads(1)
