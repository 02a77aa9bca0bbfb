"""Session-wide test setup.

CI has no GPU, so the Triton kernels run in Triton's interpreter on CPU tensors. The variable must be set
before the kernels' modules are first imported (they are imported lazily, on the first Triton call). On a
machine with CUDA the kernels compile for the GPU, and tests marked ``gpu`` run.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
