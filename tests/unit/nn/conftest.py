import pytest
import torch

from rnnlab.nn import kernels


@pytest.fixture(params=["cpp", "python"])
def backend(request, monkeypatch):
    """Run a kernel test on both backends: the compiled C++ loop and its torch-ops twin
    (the CUDA and no-compiler path), forced through RNNLAB_KERNEL."""
    monkeypatch.setenv("RNNLAB_KERNEL", request.param)
    kernels.reset_backend()
    assert kernels.backend_for(torch.zeros(1)) == request.param
    yield request.param
    kernels.reset_backend()
