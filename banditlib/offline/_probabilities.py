"""The target policy's action probabilities (exact for deterministic and epsilon-greedy rules)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from banditlib import _validation as V
from banditlib.errors import InvalidInputError
from banditlib.offline._common import _CHUNK, _CPU, Target
from banditlib.policies import Policy, _propensity

# --------------------------------------------------------------------------------- target probabilities


def _arm_probabilities(policy: Policy, sel: Any, samples: int) -> torch.Tensor | None:
    """``(B, K)`` float64 probabilities of every arm for a ``k = 1`` selection by ``policy`` (its declared
    `Policy.propensity_rule`), or ``None`` when the policy declares none."""
    if policy.propensity_rule is None:
        return None
    how = _propensity.How(*sel.__dict__["_how"])
    return _propensity.inclusion(how, sel.actions, sel.scores, sel.mean, samples=samples).to(_CPU)


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
        policy = copy.deepcopy(target)
        out = torch.empty(N, K, dtype=torch.float64)
        for lo in range(0, N, _CHUNK):
            rows = slice(lo, min(lo + _CHUNK, N))
            m = None if mask is None else mask[rows]
            sel = policy.select(x[rows], mask=m)
            declared = _arm_probabilities(policy, sel, samples)
            if declared is not None:
                out[rows] = declared
                continue
            # a policy that does not say how it chooses: the frequencies of `samples` successive decisions
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

    For a [`Policy`][banditlib.Policy] the probabilities are those of
    [`Selection.propensity`][banditlib.Selection] over every arm (``select`` runs on a deep copy), by the
    policy's [`propensity_rule`][banditlib.Policy.propensity_rule]:

    * ``Random``: uniform over the available arms;
    * ``EpsilonGreedy``: ``epsilon / K_avail + (1 - epsilon) 1[a greedy]`` (the explored arm is uniform over the
      available arms, the greedy one included);
    * ``LinUCB``, ``Greedy``, ``NeuralUCB``, ``NeuralLinUCB``, ``EENet``, and ``LinTS`` with ``scale = 0``:
      deterministic, the argmax of ``scores`` with exact ties shared equally (they break ties uniformly);
    * Thompson sampling (``LinTS``, ``NeuralTS``, ``NeuralLinTS``): Monte Carlo over ``samples`` fresh draws of
      the posterior plus the one decided with, each entry within about ``sqrt(p (1 - p) / samples)`` (at most
      ``0.5 / sqrt(samples)``) of the truth;
    * a policy whose ``propensity_rule`` is ``None`` (a subclass that does not say how it chooses): the
      frequencies of ``samples`` successive selections (successive decisions of its generator), with the same
      error.

    Args:
        target: a policy (``k = 1`` decisions) or a function contexts -> ``(N, K)`` probabilities.
        contexts: ``(N, d)`` (disjoint arms) or ``(N, K, d)``.
        mask: optional ``(N, K)`` bool availability.
        samples: posterior draws (or selections) per round for the Monte Carlo rules.

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
