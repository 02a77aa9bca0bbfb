"""``Selection.propensity``: the probability with which each chosen arm was chosen.

A policy declares how it chooses in its class attribute ``propensity_rule``:

* ``"argmax"``: the top ``k`` of deterministic scores, exact ties ordered uniformly at random (LinUCB, Greedy,
  NeuralUCB, NeuralLinUCB, EENet). An arm strictly above the ``k``-th largest score is chosen with probability
  1; when ``m`` arms tie at the ``k``-th score for the ``r`` places left, each of them with ``r / m``.
* ``"uniform"``: a uniformly random ``k``-subset of the available arms (Random): ``k / K_avail``.
* ``"epsilon"``: with probability ``epsilon`` a uniformly random subset, otherwise the argmax rule on the mean
  (EpsilonGreedy): ``epsilon k / K_avail + (1 - epsilon) p_argmax(mean)``.
* ``"gaussian"``: the top ``k`` of Gaussian draws around the mean (LinTS, NeuralTS, NeuralLinTS), estimated by
  Monte Carlo from `SAMPLES` fresh draws of the same distribution plus the draw the decision was made with:
  ``p = (1[chosen] + #{draws choosing it}) / (SAMPLES + 1)``. Each estimate has a standard error of at most
  ``sqrt(p (1 - p) / SAMPLES)`` (0.016 at worst) and leans toward the decision actually made by at most
  ``1 / (SAMPLES + 1)``, which keeps every chosen arm's propensity ``>= 1 / (SAMPLES + 1)`` (an
  inverse-propensity weight is never infinite). The draws come from the policy's counter-based generator on a
  stream of their own, so the estimate is deterministic and the policy's later decisions are unchanged.
  With a posterior scale of zero the rule is the argmax rule.

For ``k > 1`` the propensity of a chosen arm is its probability of being among the ``k`` chosen (its inclusion
probability); each row's probabilities over all ``K`` arms sum to ``k``. Masked arms have probability 0.
Probabilities are float64 and computed when ``propensity`` is first read, from what ``select`` saw (Thompson
sampling over shared arm features reads the contexts it was given: change them in place only after that).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from banditlib import _random

__all__: list[str] = []

SAMPLES = 1000
STREAM_PROPENSITY = 5
RULES = ("argmax", "uniform", "epsilon", "gaussian")
_WORK = 1 << 22  # draws held at once by the Monte Carlo estimate


class Noise(NamedTuple):
    """The random part of a Gaussian rule's scores: ``scores = mean + sd * z`` with ``z ~ N(0, I_K)``
    (``factor is None``; ``sd`` ``(B, K)``), or ``scores = mean + scale * factor @ (chol @ z)`` with
    ``z ~ N(0, I_q)`` shared by the row's arms (``factor`` ``(B, K, q)``, ``chol`` ``(q, q)``). Tensors or numpy
    arrays, held as they are (the factor is the contexts ``select`` was given, not a copy)."""

    sd: Any = None
    factor: Any = None
    chol: Any = None
    scale: float = 1.0


class How(NamedTuple):
    """What ``Selection.propensity`` needs besides the selection itself (a named tuple: one is made per ``select``
    call, on the single-row path too)."""

    rule: str | None
    k: int
    seed: int
    first_row: int
    epsilon: float = 0.0
    noise: Noise | None = None
    owner: str = ""


def _as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    return t.to(device=device, dtype=torch.float64)


def argmax_inclusion(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, K)`` float64 probability that each arm is among the top ``k`` of ``scores`` ``(B, K)`` (``-inf``
    where masked) when exact ties are ordered uniformly at random."""
    s = scores.to(torch.float64)
    kth = torch.topk(s, k, dim=1).values[:, -1:]  # the k-th largest score of each row
    above = s > kth
    at = s == kth
    left = (k - above.sum(dim=1, keepdim=True)).to(torch.float64)  # places left for the arms tied at kth
    return above.to(torch.float64) + at.to(torch.float64) * left / at.sum(dim=1, keepdim=True)


def uniform_inclusion(available: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, K)``: ``k / K_avail`` on the available arms of each row, 0 elsewhere."""
    avail = available.to(torch.float64)
    return avail * (k / avail.sum(dim=1, keepdim=True))


def gaussian_inclusion(
    mean: torch.Tensor, noise: Noise, available: torch.Tensor, actions: torch.Tensor, how: How, samples: int
) -> torch.Tensor:
    """``(B, K)`` Monte Carlo inclusion probabilities of a Gaussian rule (see the module docstring)."""
    B, K = mean.shape
    device = mean.device
    mu = mean.to(torch.float64)
    sd = None if noise.sd is None else _as_tensor(noise.sd, device)
    factor = None if noise.factor is None else _as_tensor(noise.factor, device)
    chol = None if noise.chol is None else _as_tensor(noise.chol, device)
    width = K if factor is None else factor.shape[-1]
    counts = torch.zeros(B, K, dtype=torch.float64, device=device)
    counts.scatter_(1, actions, 1.0)  # the decision that was made counts as one draw
    step = max(1, _WORK // max(1, samples * max(width, K)))
    for lo in range(0, B, step):
        hi = min(B, lo + step)
        rows = torch.arange(how.first_row + lo, how.first_row + hi, device=device)
        z = _random.normal(how.seed, STREAM_PROPENSITY, rows, samples * width).view(hi - lo, samples, width)
        if factor is None:
            draws = mu[lo:hi, None, :] + sd[lo:hi, None, :] * z  # type: ignore[index]
        else:
            delta = (z @ chol.T) * noise.scale  # type: ignore[union-attr]
            draws = mu[lo:hi, None, :] + delta @ factor[lo:hi].transpose(1, 2)
        draws = draws.masked_fill(~available[lo:hi, None, :], -torch.inf)
        top = torch.topk(draws, how.k, dim=2).indices  # (b, samples, k)
        counts[lo:hi] += torch.nn.functional.one_hot(top, K).sum(dim=(1, 2)).to(torch.float64)
    return counts / (samples + 1)


def inclusion(
    how: How, actions: torch.Tensor, scores: torch.Tensor, mean: torch.Tensor, samples: int = SAMPLES
) -> torch.Tensor:
    """``(B, K)`` float64: each arm's probability of being among the ``k`` chosen, for a selection made by the
    rule ``how`` (``scores`` ``-inf`` where masked)."""
    available = scores > -torch.inf
    if how.rule == "uniform":
        return uniform_inclusion(available, how.k)
    if how.rule == "epsilon":
        greedy = argmax_inclusion(mean.masked_fill(~available, -torch.inf), how.k)
        return how.epsilon * uniform_inclusion(available, how.k) + (1.0 - how.epsilon) * greedy
    if how.rule == "gaussian" and how.noise is not None:
        return gaussian_inclusion(mean, how.noise, available, actions, how, samples)
    return argmax_inclusion(scores, how.k)


def propensity(how: How, actions: torch.Tensor, scores: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``(B, k)`` float64: the inclusion probability of each chosen arm."""
    return torch.gather(inclusion(how, actions, scores, mean), 1, actions)
