"""Session-wide test setup.

The Triton kernel tests run in Triton's interpreter on CPU tensors (CI has no GPU). The variable must be set
before the kernels' modules are first imported (they are imported lazily, on the first Triton call). Tests
marked ``gpu`` run only with ``-m gpu`` on a machine with CUDA; then the kernels compile for the GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Run Triton in its interpreter unless CUDA tests were asked for (``-m gpu``, as benchmarks/gpu_check.sh
    does): the ordinary kernel tests use CPU tensors, which only the interpreter can run, also on a machine
    with a GPU. An explicit ``TRITON_INTERPRET`` in the environment wins."""
    markexpr = str(config.getoption("markexpr", "") or "")
    wants_gpu = "gpu" in markexpr and "not gpu" not in markexpr
    if not torch.cuda.is_available() or not wants_gpu:
        os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test (modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``): their
    tensors are tiny, so intra-op threads only add latency, much more on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
