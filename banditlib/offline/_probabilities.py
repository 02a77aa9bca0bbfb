"""The target policy's action probabilities (exact for deterministic and epsilon-greedy rules)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from banditlib import _validation as V
from banditlib.errors import InvalidInputError
from banditlib.offline._common import (
    _ARGMAX_RULES,
    _CHUNK,
    _CPU,
    Target,
)
from banditlib.policies import EpsilonGreedy, LinTS, Policy, Random

# --------------------------------------------------------------------------------- target probabilities


def _argmax_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """Uniform over each row's maximal entries: how an argmax with random tie-breaking plays."""
    top = scores == scores.max(dim=1, keepdim=True).values
    return top.double() / top.sum(dim=1, keepdim=True)


def _epsilon_probabilities(mean: torch.Tensor, available: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``epsilon / K_avail + (1 - epsilon) greedy(a)``: an exploring row of EpsilonGreedy ranks the available arms
    by fresh uniform draws, so the explored arm is uniform over them and may be the greedy one."""
    uniform = available.double() / available.sum(dim=1, keepdim=True)
    greedy = _argmax_probabilities(mean.masked_fill(~available, -math.inf))
    return epsilon * uniform + (1.0 - epsilon) * greedy


def _rule(policy: Policy) -> str:
    """How a policy's action probabilities are computed: ``uniform``, ``epsilon``, ``argmax`` or ``sample``."""
    kind = type(policy)
    if kind is Random:
        return "uniform"
    if kind is EpsilonGreedy:
        return "epsilon"
    if kind in _ARGMAX_RULES or (kind is LinTS and policy.scale == 0.0):
        return "argmax"
    return "sample"  # Thompson sampling, and any policy whose rule this module does not know


def _check_fits(policy: Policy, shared: bool, dim: int, K: int, where: str) -> None:
    model = "shared-parameter (arms=None)" if shared else f"disjoint (arms={K})"
    if policy.dim != dim or (policy.arms is not None) == shared or (not shared and policy.arms != K):
        raise InvalidInputError(
            f"{where}: `target` ({type(policy).__name__}(dim={policy.dim}, arms={policy.arms})) does not fit the "
            f"log: it needs a {model} policy with dim = {dim}."
        )


def _probabilities(
    target: Any, x: torch.Tensor, mask: torch.Tensor | None, K: int, samples: int, where: str
) -> torch.Tensor:
    """``(N, K)`` float64 probabilities of every arm under ``target`` (a policy, never mutated, or a function)."""
    N = x.shape[0]
    available = torch.ones(N, K, dtype=torch.bool) if mask is None else mask
    samples = V.check_int(samples, where, "samples")  # type: ignore[assignment]
    if isinstance(target, Policy):
        _check_fits(target, x.dim() == 3, x.shape[-1], K, where)
        policy, rule = copy.deepcopy(target), _rule(target)
        out = torch.empty(N, K, dtype=torch.float64)
        for lo in range(0, N, _CHUNK):
            rows = slice(lo, min(lo + _CHUNK, N))
            m = None if mask is None else mask[rows]
            sel = policy.select(x[rows], mask=m)
            given = getattr(sel, "propensity", None)  # planned: the policy's own (B, K) probabilities
            if isinstance(given, torch.Tensor) and tuple(given.shape) == (rows.stop - lo, K):
                out[rows] = given.detach().to(_CPU, torch.float64)
            elif rule == "uniform":
                out[rows] = available[rows].double() / available[rows].sum(dim=1, keepdim=True)
            elif rule == "epsilon":
                eps = float(target.epsilon)  # type: ignore[arg-type]
                out[rows] = _epsilon_probabilities(sel.mean.detach().to(_CPU, torch.float64), available[rows], eps)
            elif rule == "argmax":
                out[rows] = _argmax_probabilities(sel.scores.detach().to(_CPU, torch.float64))
            else:
                counts = torch.zeros(rows.stop - lo, K, dtype=torch.float64)
                for s in range(samples):
                    if s:
                        sel = policy.select(x[rows], mask=m)
                    counts[torch.arange(rows.stop - lo), sel.actions[:, 0].to(_CPU)] += 1.0
                out[rows] = counts / samples
        return out
    if not callable(target):
        raise InvalidInputError(
            f"{where}: `target` must be a banditlib Policy or a function contexts -> (N, K) action probabilities; "
            f"got {type(target).__name__}."
        )
    probs = V.as_real_tensor(target(x), where, "target(contexts)", dtype=torch.float64, device=_CPU)
    if tuple(probs.shape) != (N, K):
        raise InvalidInputError(
            f"{where}: `target(contexts)` must return (N, K) = {V.fmt_shape((N, K))} probabilities; "
            f"got {V.fmt_shape(probs.shape)}."
        )
    if bool((probs < 0).any()) or bool(((probs.sum(dim=1) - 1).abs() > 1e-6).any()):
        raise InvalidInputError(f"{where}: the rows of `target(contexts)` must be probabilities: >= 0, summing to 1.")
    if bool((probs[~available] > 1e-12).any()):
        raise InvalidInputError(f"{where}: `target(contexts)` gives probability to arms that `mask` marks unavailable.")
    return probs


def action_probabilities(target: Target, contexts: Any, mask: Any = None, *, samples: int = 200) -> torch.Tensor:
    """Every arm's probability under ``target`` in every round, without changing ``target``.

    For a [`Policy`][banditlib.Policy] the rule is read off its class (``select`` runs on a deep copy):

    * ``Random``: uniform over the available arms;
    * ``EpsilonGreedy``: ``epsilon / K_avail + (1 - epsilon) 1[a greedy]`` (the explored arm is uniform over the
      available arms, the greedy one included);
    * ``LinUCB``, ``Greedy``, ``NeuralUCB``, ``NeuralLinUCB``, ``EENet``, and ``LinTS`` with ``scale = 0``:
      deterministic, the argmax of ``scores`` with exact ties shared equally (they break ties uniformly);
    * anything else (``LinTS``, ``NeuralTS``, ``NeuralLinTS``, subclasses, new policies): Monte Carlo, the
      frequencies of ``samples`` independent selections (successive decisions of the counter-based generator),
      each entry within ``sqrt(p (1 - p) / samples)`` (at most ``0.5 / sqrt(samples)``) of the truth.

    A ``Selection`` with a ``propensity`` field of shape ``(B, K)`` (planned) is used instead when present.

    Args:
        target: a policy (``k = 1`` decisions) or a function contexts -> ``(N, K)`` probabilities.
        contexts: ``(N, d)`` (disjoint arms) or ``(N, K, d)``.
        mask: optional ``(N, K)`` bool availability.
        samples: selections per round for the Monte Carlo rule.

    Returns:
        ``(N, K)`` float64 CPU tensor, rows summing to 1, zero on unavailable arms.

    Raises:
        InvalidInputError: bad contexts or mask, a policy of another arm model or dimension, a function that
            does not return probabilities.

    Examples:
        >>> import torch, banditlib
        >>> from banditlib.offline import action_probabilities
        >>> policy = banditlib.EpsilonGreedy(dim=2, arms=4, epsilon=0.2, seed=0)
        >>> policy.update(torch.ones(1, 2), torch.tensor([[3]]), torch.tensor([[1.0]]))
        >>> action_probabilities(policy, torch.ones(1, 2)).tolist()
        [[0.05, 0.05, 0.05, 0.8500000000000001]]
    """
    where = "action_probabilities()"
    x = V.as_real_tensor(contexts, where, "contexts", dtype=torch.float64, device=_CPU)
    if x.dim() == 3:
        K = x.shape[1]
    elif x.dim() == 2 and isinstance(target, Policy) and target.arms is not None:
        K = target.arms
    elif x.dim() == 2 and mask is not None:
        K = V.as_bool_tensor(mask, where, "mask", device=_CPU).shape[-1]
    else:
        raise InvalidInputError(
            f"{where}: `contexts` must be (N, K, d), or (N, d) with a disjoint policy or a mask giving K; "
            f"got {V.fmt_shape(x.shape)}."
        )
    if x.shape[0] == 0 or x.shape[-1] == 0 or K == 0:
        raise InvalidInputError(f"{where}: `contexts` must hold N >= 1 rounds, K >= 1 arms and d >= 1 features; "
                                f"got {V.fmt_shape(x.shape)}.")  # fmt: skip
    m = None
    if mask is not None:
        m = V.as_bool_tensor(mask, where, "mask", device=_CPU)
        V.check_mask(m, where, batch=x.shape[0], num_arms=K, k=1)
    return _probabilities(target, x, m, K, samples, where)
