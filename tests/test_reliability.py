"""The reported reliability failures, one test each: odd valid inputs, finite inputs that would commit an
unusable state, ill-conditioning in float32, and what a loaded file must satisfy."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest
import torch

import banditlib
from banditlib import linalg
from banditlib.errors import InvalidInputError, NumericalError


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_odd_valid_inputs_are_converted() -> None:
    p = banditlib.LinUCB(3, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 2, 3))
    want = p.select(np.ascontiguousarray(x[::-1])).scores
    assert torch.equal(p.select(x[::-1]).scores, want)  # negative strides, batched path
    assert torch.equal(p.select(x[:1][::-1]).scores, p.select(x[:1]).scores)  # ... and a single row
    assert torch.allclose(p.select(x.astype(np.longdouble)).scores, p.select(x).scores)
    d = banditlib.LinUCB(3, arms=2, seed=0)
    assert d.select(np.matrix(np.ones((2, 3)))).actions.shape == (2, 1)
    d.update(np.matrix(np.ones((1, 3))), np.array([[1]]), np.matrix([[0.5]]))
    assert int(d.n_updates_[1]) == 1


@pytest.mark.parametrize(
    "bad",
    [lambda: torch.ones(1, 2, 3).to_sparse(), lambda: torch.empty(1, 2, 3, device="meta")],
    ids=["sparse", "meta"],
)
def test_sparse_and_meta_tensors_are_refused_before_anything_changes(bad: object) -> None:
    for policy in (banditlib.LinUCB(3, seed=0), banditlib.NeuralUCB(3, hidden=(4,), seed=0)):
        before = policy.state_dict()
        with pytest.raises(InvalidInputError, match=r"dense tensor|meta tensor"):
            policy.select(bad())  # type: ignore[operator]
        with pytest.raises(InvalidInputError, match=r"dense tensor|meta tensor"):
            policy.update_features(torch.ones(2, 3), torch.ones(2).to_sparse())
        assert same(before, policy.state_dict())


def test_ridge_refuses_an_update_that_would_not_load(tmp_path: pathlib.Path) -> None:
    """The reported failure: one update with [[1e8, 1e8]] was accepted, the file saved next failed to load."""
    for arms, x in ((None, np.array([[[1e8, 1e8]]])), (2, np.array([[1e8, 1e8]]))):
        p = banditlib.LinUCB(2, arms=arms, seed=0)
        before = p.state_dict()
        with pytest.raises(InvalidInputError, match="ill-conditioned"):
            p.update(x, np.array([[0]]), np.array([[1.0]]))
        assert same(before, p.state_dict())
        p.save(tmp_path / "p.st")
        banditlib.LinUCB.load(tmp_path / "p.st")


def test_float32_warns_once_when_it_cannot_hold_the_inverse() -> None:
    """Condition number 1e8 with forgetting: float32 decisions disagreed with float64 without a word."""
    p = banditlib.LinUCB(2, forget=0.99, seed=0)
    x = np.array([[1.0, 0.0]] * 200) * 1e4  # ||x||^2 = 1e8 along one direction, reg 1 along the other
    with pytest.warns(RuntimeWarning, match="condition number"):
        p.update_features(x, np.zeros(200))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.update_features(x[:5], np.zeros(5))  # once only
    q = banditlib.LinUCB(2, forget=0.99, dtype=torch.float64, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q.update_features(x, np.zeros(200))  # float64 holds it


@pytest.mark.parametrize("cls", [banditlib.NeuralUCB, banditlib.NeuralTS])
def test_neural_policies_refuse_inputs_that_overflow_their_statistics(cls: type) -> None:
    """The reported failures: a context of 1e20 committed Z_diag_ = inf; rewards near 1e20 adam_v_ = inf."""
    p = cls(3, hidden=(4,), train_every=1, seed=0)
    before = p.state_dict()
    with pytest.raises(InvalidInputError, match="non-finite"):
        p.update(np.full((1, 2, 3), 1e20), np.array([[0]]), np.array([[0.5]]))
    with pytest.raises((InvalidInputError, NumericalError), match="non-finite"):
        p.update(np.ones((1, 2, 3)), np.array([[0]]), np.array([[1e20]]))
    assert same(before, p.state_dict())
    assert bool(torch.isfinite(p.select(np.ones((1, 2, 3))).scores).all())


def test_loading_checks_the_backend_and_allows_replacing_it(tmp_path: pathlib.Path) -> None:
    p = banditlib.LinUCB(2, seed=0)
    p.save(tmp_path / "p.st")
    from banditlib import _io

    tensors, meta = _io.read_tensors(tmp_path / "p.st", "test")
    meta["config"] = meta["config"].replace('"torch"', '"triton"').replace('"auto"', '"triton"')
    _io.write_tensors(tmp_path / "t.st", tensors, meta)
    with pytest.raises(InvalidInputError, match="backend='triton'"):
        banditlib.LinUCB.load(tmp_path / "t.st")
    back = banditlib.LinUCB.load(tmp_path / "t.st", backend="auto")
    assert back.backend == "auto" and torch.equal(back.A_, p.A_)


@pytest.mark.parametrize("cls", [banditlib.NeuralLinUCB, banditlib.NeuralLinTS])
def test_neural_linear_refuses_features_that_would_not_load(cls: type, tmp_path: pathlib.Path) -> None:
    """Found by the fuzz suite: one update with a context of 1e8 left an A_inv_ that the loader rejected."""
    p = cls(3, arms=4, hidden=(4,), seed=0)
    before = p.state_dict()
    with pytest.raises(InvalidInputError, match="ill-conditioned"):
        p.update(np.array([[0.0, 0.0, 1e8]]), np.array([[0]]), np.array([[0.0]]))
    assert same(before, p.state_dict())
    p.save(tmp_path / "p.st")
    cls.load(tmp_path / "p.st")


def test_whatever_an_update_accepts_saves_and_loads(tmp_path: pathlib.Path) -> None:
    """A float32 inverse at condition number 1e7 (accepted, with the warning) is not mistaken for a corrupted
    one by the loader, whose tolerance grows with the condition number as the rounding error does."""
    p = banditlib.LinUCB(2, seed=0)
    with pytest.warns(RuntimeWarning, match="condition number"):
        p.update_features(np.array([[3000.0, 1000.0]] * 1000), np.zeros(1000))
    p.save(tmp_path / "p.st")
    back = banditlib.LinUCB.load(tmp_path / "p.st")
    assert torch.equal(back.A_inv_, p.A_inv_)


@pytest.mark.parametrize("cls", [banditlib.NeuralLinTS, banditlib.LinTS])
def test_thompson_sampling_survives_a_float32_inverse_that_lost_definiteness(cls: type) -> None:
    """Found by the fuzz suite: an accepted (warned) update with a feature of 1e8 leaves a float32 ``A^-1``
    whose small eigenvalues are lost; sampling then factors ``A^-1`` from the float64 ``A`` instead of failing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the float32 ill-conditioning warning
        if cls is banditlib.NeuralLinTS:
            policy = cls(3, arms=4, hidden=(4,), seed=0)
            policy.update(np.array([[0.0, 0.0, 0.0], [0.0, -1e8, 0.0]]), np.array([[0], [3]]), np.zeros((2, 1)))
            contexts = torch.ones(5, 3)
        else:  # the shared model samples through the factor of A^-1
            policy = cls(3, seed=0)
            policy.update_features(np.array([[1.0, 3e6, 1.0], [1.0, 3e6 * 0.999, 1.0]]), np.zeros(2))
            contexts = torch.ones(5, 4, 3)
    with pytest.raises(banditlib.NumericalError):  # the state the test is about: the stored inverse lost it
        linalg.cholesky_factor(policy.A_inv_)
    sel = policy.select(contexts)
    assert sel.actions.shape == (5, 1) and bool(torch.isfinite(sel.scores).all())
