"""Devices the tests run on: the CPU (the crate's emulator) always; CUDA when torch sees a device
and the build embeds the kernels. A CUDA case without one is skipped with the reason, printed in
pytest's summary (-rs)."""

import os

import pytest
import torch

import prefix_attn


def cuda_reason():
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    if not prefix_attn.KERNELS_BUILT:
        return "this build has no CUDA kernels (built without nvcc)"
    return None


DEVICES = ["cpu", "cuda"]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda":
        why = cuda_reason()
        if why is not None:
            if os.environ.get("PREFIX_ATTN_REQUIRE_GPU") == "1":
                pytest.fail(f"PREFIX_ATTN_REQUIRE_GPU=1 but {why}")
            pytest.skip(why)
    return torch.device(request.param)


def pytest_report_header(config):
    why = cuda_reason()
    return [
        f"prefix_attn: torch {torch.__version__}, kernels built: {prefix_attn.KERNELS_BUILT}, "
        f"CUDA: {'yes' if why is None else 'no (' + why + ')'}"
    ]
