"""Reward models for the doubly robust estimator."""

from __future__ import annotations

from typing import Any

import torch

from banditlib import _validation as V
from banditlib.errors import InvalidInputError, StateError
from banditlib.offline._common import (
    _CPU,
    BanditLog,
    RewardFn,
    _check_log,
)

# ---------------------------------------------------------------------------------------- reward model


class RidgeRewardModel:
    """Ridge regression of the reward on ``[x, 1]``, in closed form in float64: one model per arm (disjoint
    logs) or one over the played arms' feature vectors (shared-parameter logs); the default reward model of
    [`doubly_robust`][banditlib.offline.doubly_robust].

    Per model ``coef = (Z^T Z + reg I)^-1 Z^T r`` over its rounds' ``z = [x, 1]`` (the intercept is penalised
    like the other coefficients). A disjoint arm with no logged round predicts 0.

    Args:
        reg: ridge regulariser ``> 0``.

    Raises:
        InvalidInputError: ``reg`` not a positive number.

    Examples:
        >>> import torch
        >>> from banditlib.offline import BanditLog, RidgeRewardModel
        >>> log = BanditLog(torch.tensor([[1.0], [2.0], [1.0]]), [0, 0, 1], [2.0, 4.0, -1.0], [0.5] * 3, arms=2)
        >>> model = RidgeRewardModel(reg=1e-9).fit(log)
        >>> model(torch.tensor([[3.0], [3.0]]), torch.tensor([0, 1])).round(decimals=3).tolist()
        [6.0, -2.0]
    """

    coef_: torch.Tensor

    def __init__(self, reg: float = 1.0) -> None:
        self.reg = V.check_float(reg, "RidgeRewardModel()", "reg", low=0.0, low_open=True)
        self._shared = False

    def fit(self, log: BanditLog) -> RidgeRewardModel:
        """Fit on a log: ``coef_`` ``(M, d + 1)`` float64 (``M = K`` disjoint, 1 shared); returns ``self``.

        Args:
            log: the rounds to fit on.

        Returns:
            ``self``, fitted.

        Examples:
            >>> import torch
            >>> from banditlib.offline import BanditLog, RidgeRewardModel
            >>> log = BanditLog(torch.ones(2, 3, 2), [0, 2], [1.0, 1.0], [1 / 3, 1 / 3])
            >>> RidgeRewardModel().fit(log).coef_.shape
            torch.Size([1, 3])
        """
        log = _check_log(log, "RidgeRewardModel.fit()")
        N, d = len(log), log.dim
        x = log.contexts[torch.arange(N), log.actions] if log.shared else log.contexts
        z = torch.cat([x, torch.ones(N, 1, dtype=torch.float64)], dim=1)
        groups = (
            [torch.arange(N)]
            if log.shared
            else [torch.nonzero(log.actions == a).flatten() for a in range(log.num_arms)]
        )
        eye = self.reg * torch.eye(d + 1, dtype=torch.float64)
        self.coef_ = torch.stack([torch.linalg.solve(z[g].T @ z[g] + eye, z[g].T @ log.rewards[g]) for g in groups])
        self._shared = log.shared
        return self

    def __call__(self, contexts: Any, actions: Any) -> torch.Tensor:
        """Predicted rewards ``(N,)`` float64 of arms ``actions`` ``(N,)`` given ``(N, d)`` or ``(N, K, d)`` contexts
        (the arm model of the log it was fitted on).

        Raises:
            StateError: called before [`fit`][banditlib.offline.RidgeRewardModel.fit].
            InvalidInputError: contexts or actions of the wrong shape or range.
        """
        where = "RidgeRewardModel()"
        if not hasattr(self, "coef_"):
            raise StateError(f"{where}: call fit(log) before predicting.")
        x = V.as_real_tensor(contexts, where, "contexts", dtype=torch.float64, device=_CPU)
        a = V.as_index_tensor(actions, where, "actions", device=_CPU)
        M, d = self.coef_.shape[0], self.coef_.shape[1] - 1
        want = "(N, K, d)" if self._shared else "(N, d)"
        if x.dim() != (3 if self._shared else 2) or x.shape[-1] != d or tuple(a.shape) != (x.shape[0],):
            raise InvalidInputError(
                f"{where}: `contexts` must be {want} with d = {d} and `actions` (N,); got {V.fmt_shape(x.shape)} and "
                f"{V.fmt_shape(a.shape)}."
            )
        K = x.shape[1] if self._shared else M
        if a.numel() and (int(a.min()) < 0 or int(a.max()) >= K):
            raise InvalidInputError(f"{where}: `actions` must be arm indices in [0, {K}).")
        if self._shared:
            x = x[torch.arange(x.shape[0]), a]
        coef = self.coef_[torch.zeros_like(a) if self._shared else a]
        return (x * coef[:, :-1]).sum(dim=1) + coef[:, -1]


def _predict_all(model: RewardFn, log: BanditLog, where: str) -> torch.Tensor:
    """``q(x_i, a)`` for every round and arm: ``(N, K)`` float64."""
    N = len(log)
    cols = []
    for a in range(log.num_arms):
        out = model(log.contexts, torch.full((N,), a, dtype=torch.long))
        q = V.as_real_tensor(out, where, "reward_model(contexts, actions)", dtype=torch.float64, device=_CPU)
        if tuple(q.shape) != (N,):
            raise InvalidInputError(
                f"{where}: `reward_model(contexts, actions)` must return (N,) = ({N},) predicted rewards; "
                f"got {V.fmt_shape(q.shape)}."
            )
        cols.append(q)
    return torch.stack(cols, dim=1)


def _reward_table(log: BanditLog, reward_model: Any, cross_fit: bool, reg: float, where: str) -> torch.Tensor:
    if isinstance(reward_model, str):
        if reward_model != "ridge":
            raise InvalidInputError(f"{where}: `reward_model` must be 'ridge' or a callable; got {reward_model!r}.")
        reg = V.check_float(reg, where, "reg", low=0.0, low_open=True)
        if not cross_fit or len(log) < 2:
            return _predict_all(RidgeRewardModel(reg).fit(log), log, where)
        # Two folds, even and odd rows (balanced over time when the logger adapted): each half is predicted by
        # the model fitted on the other, so no reward corrects a prediction that was fitted to it.
        q = torch.empty(len(log), log.num_arms, dtype=torch.float64)
        index = torch.arange(len(log))
        for fold in (0, 1):
            fit_rows, pred_rows = index[index % 2 != fold], index[index % 2 == fold]
            model = RidgeRewardModel(reg).fit(log._rows(fit_rows))
            q[pred_rows] = _predict_all(model, log._rows(pred_rows), where)
        return q
    if not callable(reward_model):
        raise InvalidInputError(f"{where}: `reward_model` must be 'ridge' or a callable; got {reward_model!r}.")
    if cross_fit:
        raise InvalidInputError(
            f"{where}: `cross_fit=True` refits the reward model on each half of the log, which needs "
            "reward_model='ridge'; a callable is used as given (fit it on other data instead)."
        )
    return _predict_all(reward_model, log, where)
