"""Messages, constructor arguments, state loading, and dtype/device moves."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import numpy as np
import pytest
import torch

import banditlib
from banditlib.errors import BackendUnavailableError, BanditError, InvalidInputError, NumericalError


def test_error_classes_are_builtin_too() -> None:
    assert issubclass(InvalidInputError, ValueError) and issubclass(InvalidInputError, BanditError)
    assert issubclass(BackendUnavailableError, RuntimeError)
    assert issubclass(NumericalError, ArithmeticError)


def test_message_names_method_argument_expected_and_received() -> None:
    policy = banditlib.LinUCB(4, arms=3, seed=0)
    with pytest.raises(InvalidInputError) as info:
        policy.update(np.zeros((32, 4)), np.zeros((32, 1), dtype=np.int64), np.zeros(32))
    assert str(info.value) == (
        "LinUCB.update(): `rewards` must have shape (B, k) = (32, 1) to match `actions`; got (32,)."
    )


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"dim": 0}, "dim"),
        ({"dim": 2.5}, "dim"),
        ({"dim": True}, "dim"),
        ({"arms": 0}, "arms"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"reg": 0.0}, "reg"),
        ({"forget": 0.0}, "forget"),
        ({"forget": 1.5}, "forget"),
        ({"refresh_every": 0}, "refresh_every"),
        ({"seed": -1}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"dtype": torch.float16}, "dtype"),
        ({"dtype": torch.bfloat16}, "dtype"),
        ({"backend": "cuda"}, "backend"),
        ({"device": "nonsense"}, "device"),
    ],
)
def test_constructor_arguments_are_validated(kwargs: dict[str, Any], argument: str) -> None:
    args = {"dim": 3, **kwargs}
    with pytest.raises(InvalidInputError, match=f"LinUCB\\(\\): `{argument}`"):
        banditlib.LinUCB(**args)


@pytest.mark.parametrize(
    "cls,kwargs",
    [(banditlib.LinTS, {"scale": -0.1}), (banditlib.EpsilonGreedy, {"epsilon": 1.5})],
)
def test_rule_arguments_are_validated(cls: type, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=f"`{next(iter(kwargs))}`"):
        cls(3, **kwargs)


def test_update_features_is_for_the_shared_model_only() -> None:
    with pytest.raises(InvalidInputError, match=r"update_features\(\).*disjoint"):
        banditlib.LinUCB(3, arms=2).update_features(np.ones((1, 3)), np.ones(1))
    policy = banditlib.LinUCB(3)
    for x, r, arg in [
        (np.ones((2, 2)), np.ones(2), "x"),
        (np.ones((2, 3)), np.ones(3), "rewards"),
        (np.ones((0, 3)), np.ones(0), "x"),
    ]:
        with pytest.raises(InvalidInputError, match=re.escape(f"`{arg}`")):
            policy.update_features(x, r)


def test_load_state_dict_is_checked_and_transactional() -> None:
    policy = banditlib.LinUCB(3, arms=2, seed=0)
    policy.update(np.ones((1, 3)), [[1]], [[2.0]])
    good = {k: v.clone() for k, v in policy.state_dict().items()}
    cases = [
        {k: v for k, v in good.items() if k != "b_"},
        {**good, "extra": torch.zeros(1)},
        {**good, "theta_": torch.zeros(3, 3)},
        {**good, "theta_": torch.full((2, 3), float("nan"))},
        {**good, "n_updates_": torch.full((2,), -1)},
        {**good, "A_": good["A_"] * -1},
        {**good, "n_updates_": torch.zeros(2)},
    ]
    for state in cases:
        with pytest.raises(InvalidInputError, match="load_state_dict"):
            policy.load_state_dict(state)
        assert all(torch.equal(v, policy.state_dict()[k]) for k, v in good.items())
    policy.load_state_dict({k: v.numpy() for k, v in good.items()})


def test_moving_dtype_keeps_statistics_in_float64() -> None:
    policy = banditlib.LinUCB(3, seed=0)
    policy.update_features(np.ones((2, 3)), np.ones(2))
    policy.double()
    assert policy.dtype == torch.float64 and policy.A_inv_.dtype == torch.float64 and policy.A_.dtype == torch.float64
    policy.float()
    assert (
        policy.A_inv_.dtype == torch.float32 and policy.A_.dtype == torch.float64 and policy.b_.dtype == torch.float64
    )
    assert policy.select(np.ones((1, 2, 3))).scores.dtype == torch.float32
    with pytest.raises(InvalidInputError, match="float16"):
        policy.half()


def test_update_that_overflows_raises_numerical_error_and_changes_nothing() -> None:
    for fast in (True, False):
        policy = banditlib.LinUCB(2, arms=2, dtype=torch.float64, seed=0)
        policy._fast_path = fast
        before = {k: v.clone() for k, v in policy.state_dict().items()}
        with pytest.raises(NumericalError):
            policy.update(np.full((1, 2), 1e200), np.array([[0]]), np.array([[1.0]]))
        assert all(torch.equal(v, policy.state_dict()[k]) for k, v in before.items())


def test_single_row_fast_path_falls_back_for_odd_input() -> None:
    policy = banditlib.LinUCB(3, arms=2, seed=0)
    with pytest.raises(InvalidInputError, match="`contexts` must be finite"):
        policy.select(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(InvalidInputError, match="`actions` must be arm indices in \\[0, 2\\)"):
        policy.update(np.ones((1, 3)), [[2]], [[1.0]])
    policy.update(np.ones((1, 3), dtype=np.int64), torch.tensor([[1]], dtype=torch.int32), [[1]])
    assert policy.n_updates_.tolist() == [0, 1]


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without CUDA")
POLICIES = sorted(
    (name, cls)
    for name in banditlib.__all__
    if isinstance(cls := getattr(banditlib, name), type)
    and issubclass(cls, banditlib.Policy)
    and cls is not banditlib.Policy
)


@no_cuda
@pytest.mark.parametrize("name,cls", POLICIES, ids=[n for n, _ in POLICIES])
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_cuda_raises_backend_unavailable(name: str, cls: type, device: Any) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        cls(2, device=device)
    shown = str(torch.device(device))
    assert str(info.value) == (
        f"{name}(): device={shown!r} requested but CUDA is not available (torch.cuda.is_available() is False); "
        "use device='cpu'."
    )
    assert not isinstance(info.value, AssertionError)


@no_cuda
def test_moving_or_loading_onto_missing_cuda_raises_backend_unavailable(tmp_path: Any) -> None:
    policy = banditlib.LinUCB(2, seed=0)
    policy.update_features(np.ones((1, 2)), np.ones(1))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for move in (lambda: policy.to("cuda"), policy.cuda):
        with pytest.raises(BackendUnavailableError, match=r"LinUCB\.to\(\): cannot move the state there"):
            move()
        assert policy.device == torch.device("cpu")
        assert all(torch.equal(v, policy.state_dict()[k]) for k, v in before.items())
    path = tmp_path / "p.bandit"
    policy.save(path)
    with pytest.raises(BackendUnavailableError, match=r"LinUCB\.load\(\): device='cuda' requested but CUDA"):
        banditlib.LinUCB.load(path, device="cuda")


def test_device_check_on_a_machine_whose_cuda_is_faked_away(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs everywhere: with CUDA reported absent, or present with a single GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match=r"device='cuda:1' requested but CUDA is not available"):
        banditlib.LinTS(2, device="cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(BackendUnavailableError, match=r"this machine has 1 CUDA device\(s\) \(cuda:0 to cuda:0\)"):
        banditlib.LinTS(2, device="cuda:1")


@pytest.mark.parametrize("kind", ["mps", "xpu"])
def test_other_unavailable_accelerators_raise_backend_unavailable(kind: str) -> None:
    if getattr(torch, kind).is_available():
        pytest.skip(f"{kind} is available here")
    with pytest.raises(BackendUnavailableError) as info:
        banditlib.Greedy(2, device=kind)
    assert str(info.value) == (
        f"Greedy(): device='{kind}' requested but {kind.upper()} is not available "
        f"(torch.{kind}.is_available() is False); use device='cpu'."
    )


def test_device_types_without_an_availability_check_are_probed() -> None:
    if importlib.util.find_spec("torch_xla") is not None:
        pytest.skip("torch_xla is installed")
    with pytest.raises(BackendUnavailableError, match=r"device='xla' requested but this PyTorch build cannot use it"):
        banditlib.Random(2, device="xla")


@pytest.mark.parametrize("device", ["cuda:x", "nonsense", None, "cpu:zero"])
def test_malformed_device_is_invalid_input(device: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"LinUCB\(\): `device` is not a valid torch device: .*device='cpu'"):
        banditlib.LinUCB(2, device=device)


def test_cpu_and_meta_devices_pass() -> None:
    assert banditlib.LinUCB(2, device="cpu:0").device == torch.device("cpu:0")
    assert banditlib.NeuralUCB(2, device=torch.device("meta")).device.type == "meta"
