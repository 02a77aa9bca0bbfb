"""Backend resolution: auto, explicit torch, explicit triton and every way the latter can be unavailable."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.errors import BackendUnavailableError, InvalidInputError
from banditlib.kernels import dispatch


def test_auto_runs_torch_on_cpu_and_torch_is_torch() -> None:
    x = torch.zeros(2, 3)
    assert dispatch.resolve_backend("auto", x) == "torch"
    assert dispatch.resolve_backend("torch", x) == "torch"
    assert dispatch.resolve_backend("triton", x) == "triton"  # under TRITON_INTERPRET=1 (tests/conftest.py)


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match=r"CUDA tensors.*TRITON_INTERPRET=1"):
        dispatch.resolve_backend("triton", torch.zeros(2), what="shared_score")
    policy = banditlib.LinUCB(3, backend="triton")  # constructing is fine: triton imports
    with pytest.raises(BackendUnavailableError, match="shared_score"):
        policy.select(np.ones((2, 4, 3)))


def test_triton_refuses_float64() -> None:
    with pytest.raises(BackendUnavailableError, match="float32 or bfloat16"):
        dispatch.resolve_backend("triton", torch.zeros(2, dtype=torch.float64))
    assert dispatch.resolve_backend("auto", torch.zeros(2, dtype=torch.float64)) == "torch"


def test_missing_triton_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, *args: Any) -> Any:
        if name == "triton":
            raise ImportError("No module named 'triton'")
        return real(name, *args)

    dispatch._triton_import_error.cache_clear()
    monkeypatch.setattr(importlib, "import_module", fake)
    try:
        assert not dispatch.triton_available()
        assert dispatch.resolve_backend("auto", torch.zeros(2)) == "torch"
        with pytest.raises(BackendUnavailableError, match="triton does not import"):
            banditlib.LinUCB(3, backend="triton")
    finally:
        dispatch._triton_import_error.cache_clear()


def test_unknown_backend_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="`backend`"):
        banditlib.LinTS(3, backend="cuda")
