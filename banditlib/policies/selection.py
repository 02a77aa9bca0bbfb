"""What a policy returns: the [`Selection`][banditlib.Selection] of ``select`` and the
[`Prediction`][banditlib.Prediction] of ``predict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from banditlib import _random
from banditlib.errors import StateError
from banditlib.kernels import masked_topk
from banditlib.policies import _propensity

__all__ = ["Prediction", "Selection", "top_k"]


@dataclass(frozen=True)
class Selection:
    """What [`Policy.select`][banditlib.Policy.select] returns.

    Attributes:
        actions: ``(B, k)`` int64 chosen arm indices per row, best first.
        scores: ``(B, K)`` the index the rule ranks by (UCB, sampled value, ...); ``-inf`` where masked.
        mean: ``(B, K)`` predicted reward.
        bonus: ``(B, K)`` exploration term, ``scores = mean + bonus`` where unmasked (zero for greedy rules).
        propensity: ``(B, k)`` float64, the probability with which each chosen arm was chosen (for ``k > 1``: of
            being among the ``k`` chosen), computed when first read: exact for the argmax rules (ties included),
            Random and EpsilonGreedy, a Monte Carlo estimate for Thompson sampling (see
            [`Policy.propensity_rule`][banditlib.Policy.propensity_rule]). For that, a Thompson-sampling
            selection keeps what its draw was made from: the ``(B, K)`` standard deviations, or for the
            shared-feature rules the contexts (LinTS) or the ``(B, K, q)`` learned features (NeuralLinTS),
            until the selection is dropped.

    Examples:
        >>> import torch, banditlib
        >>> sel = banditlib.LinUCB(dim=2, seed=0).select(torch.eye(2).expand(3, 2, 2), k=1)
        >>> sel.actions.shape, sel.scores.shape, bool(torch.equal(sel.scores, sel.mean + sel.bonus))
        (torch.Size([3, 1]), torch.Size([3, 2]), True)
        >>> sel.propensity.tolist()  # the two arms tie before any update: each is chosen with probability 1/2
        [[0.5], [0.5], [0.5]]
    """

    actions: torch.Tensor
    scores: torch.Tensor
    mean: torch.Tensor
    bonus: torch.Tensor

    @property
    def propensity(self) -> torch.Tensor:
        """``(B, k)`` float64 probability of each chosen arm (see the class docstring)."""
        cached = self.__dict__.get("_propensity")
        if cached is None:
            raw = self.__dict__.get("_how")
            if raw is None:
                raise StateError(
                    "Selection.propensity: only a Selection returned by Policy.select knows how its arms were chosen; "
                    "this one was constructed directly."
                )
            how = _propensity.How(*raw)
            if how.rule is None:
                raise StateError(
                    f"Selection.propensity: {how.owner} does not say how it chooses its arms; set its class "
                    f"attribute `propensity_rule` to one of {', '.join(map(repr, _propensity.RULES))} (see "
                    "Policy.propensity_rule)."
                )
            cached = _propensity.propensity(how, self.actions, self.scores, self.mean)
            self.__dict__["_propensity"] = cached
        return cached


class Prediction(NamedTuple):
    """What [`Policy.predict`][banditlib.Policy.predict] returns: the estimator's posterior at the contexts.

    Attributes:
        mean: ``(B, K)`` predicted reward.
        var: ``(B, K)`` non-negative variance factor (see [`Policy.predict`][banditlib.Policy.predict]).

    Examples:
        >>> import torch, banditlib
        >>> mean, var = banditlib.LinTS(dim=2, seed=0).predict(torch.ones(1, 3, 2))
        >>> mean.shape, var.tolist()  # before any update: mean 0, var x^T I x = 2
        (torch.Size([1, 3]), [[2.0, 2.0, 2.0]])
    """

    mean: torch.Tensor
    var: torch.Tensor


def _selection(
    actions: torch.Tensor, scores: torch.Tensor, mean: torch.Tensor, bonus: torch.Tensor, how: tuple[Any, ...]
) -> Selection:
    """``Selection(actions, scores, mean, bonus)`` without the frozen dataclass's per-field ``__setattr__``
    (the same object: the class has no ``__post_init__`` and no slots), with what ``propensity`` needs: the
    fields of a `banditlib.policies._propensity.How` as a plain tuple (cheaper to make on every call)."""
    sel = object.__new__(Selection)
    sel.__dict__.update(actions=actions, scores=scores, mean=mean, bonus=bonus, _how=how)
    return sel


def top_k(scores: torch.Tensor, k: int, rows: torch.Tensor, seed: int, backend: str) -> torch.Tensor:
    """Top-``k`` of ``scores`` ``(B, K)`` per row, best first; exact ties ordered uniformly at random by the
    generator ``seed`` at decision ``rows`` ``(B,)``."""
    K = scores.shape[1]
    if k == 1 and not scores.is_cuda:
        # One max and a count of the rows' top value: the same decisions as the top-2 below (a row is tied
        # exactly when its top value occurs twice), at about half the cost of torch.topk on a CPU.
        top_vals, idx = scores.max(dim=1, keepdim=True)
        vals = top_vals
        tied = (scores == top_vals).sum(dim=1) > 1
    else:
        vals, idx = masked_topk(scores, min(k + 1, K), backend=backend)
        tied = (vals[:, 1:] == vals[:, :-1]).any(dim=1)
        idx = idx[:, :k]
    if bool(tied.any()):
        t = torch.nonzero(tied).squeeze(1)
        keys = _random.uniform(seed, _random.STREAM_TIES, rows[t], K)
        if k == 1:  # the tied best arm with the smallest key, in O(K): what the sort below picks first
            top = scores[t] == vals[t, :1]
            idx = idx.clone()
            idx[t] = torch.where(top, keys, torch.inf).argmin(dim=1, keepdim=True)
            return idx
        perm = keys.argsort(dim=1)
        order = scores[t].gather(1, perm).sort(dim=1, descending=True, stable=True).indices[:, :k]
        idx = idx.clone()
        idx[t] = perm.gather(1, order)
    return idx
