"""How a scheduler turns scores into a decision: [`SelectionRule`][banditlib.adapters.rlvr.SelectionRule] and the
built-in rules.

A rule sees one score per fresh rollout (the policy's index: the upper confidence bound for LinUCB, a
posterior sample for LinTS) and returns the rows to train on with their loss weights:

* [`TopFraction`][banditlib.adapters.rlvr.TopFraction]: the paper's rule, the best-scored
  ``ceil(keep_fraction * n)`` of each group of ``n`` (a fixed budget: half of the group is dropped whatever it
  holds);
* [`Threshold`][banditlib.adapters.rlvr.Threshold]: every row whose score is at least ``threshold`` (no budget:
  with a value model and an optimistic score, a row is dropped only when it is predicted harmful with
  confidence, so a scheduler that has learned nothing keeps everything);
* [`SoftWeights`][banditlib.adapters.rlvr.SoftWeights]: every row, with weight
  ``clamp(1 + (score - threshold) / width, 0, 1)``: full weight at or above the threshold, linearly less below
  it, dropped at ``threshold - width``.

Write your own by subclassing [`SelectionRule`][banditlib.adapters.rlvr.SelectionRule] and implementing
[`SelectionRule.decide`][banditlib.adapters.rlvr.rules.SelectionRule.decide]; give it a ``config`` and register it by
name (any subclass is registered) so that a saved scheduler can rebuild it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from .groups import GroupLayout, keep_counts, top_per_group

__all__ = ["SelectionRule", "SoftWeights", "Threshold", "TopFraction", "rule_from_config"]

_RULES: dict[str, type[SelectionRule]] = {}


class SelectionRule:
    """Base class of selection rules (stateless; constructor arguments only).

    A subclass implements [`decide`][banditlib.adapters.rlvr.rules.SelectionRule.decide]; a rule without a fixed
    budget also overrides [`passes`][banditlib.adapters.rlvr.rules.SelectionRule.passes] (which buffered rows it
    admits for replay) and a rule with constructor arguments returns them from ``config``. Every subclass is
    registered under its class name, so [`rule_from_config`][banditlib.adapters.rlvr.rules.rule_from_config]
    (and a saved scheduler) can rebuild it.

    Attributes:
        name: a short name (for reports).
        budget_free: whether the rule may keep every row (no fixed per-group budget).

    Examples:
        Keep every rollout with a positive score:

        >>> class KeepPositive(SelectionRule):
        ...     name = "positive"
        ...     def passes(self, scores):
        ...         return scores > 0
        ...     def decide(self, scores, keys, layout):
        ...         rows = torch.nonzero(self.passes(scores)).squeeze(1)
        ...         return rows, torch.ones(rows.shape[0])
        >>> KeepPositive().decide(torch.tensor([0.5, -1.0, 2.0]), torch.arange(3), None)
        (tensor([0, 2]), tensor([1., 1.]))
        >>> rule_from_config({"class": "KeepPositive", "config": {}}, "example")
        KeepPositive()
    """

    name = "rule"
    budget_free = True  # whether the rule may keep every row (no fixed per-group budget)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _RULES[cls.__name__] = cls

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {}

    def decide(
        self, scores: torch.Tensor, keys: torch.Tensor, layout: GroupLayout
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows to keep and their weights.

        Args:
            scores: ``(N,)`` float32 score of each fresh rollout (finite).
            keys: ``(N,)`` int64 ranking keys ordering like ``scores``, exact ties broken at random
                (`rank_keys`).
            layout: the batch's group layout.

        Returns:
            ``(rows, weight)``: ``(n,)`` int64 ascending row indices and ``(n,)`` float32 weights in ``(0, 1]``.
        """
        raise NotImplementedError

    def passes(self, scores: torch.Tensor) -> torch.Tensor:
        """``(M,)`` bool: which candidates (fresh or buffered) the rule would admit on their score alone; the
        replay step of a scheduler picks among them. Budget rules admit everything."""
        return torch.ones_like(scores, dtype=torch.bool)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


class TopFraction(SelectionRule):
    """Keep the ``ceil(keep_fraction * n)`` best-scored rollouts of each group of ``n`` (at least one, so a
    group of one is kept), weight 1.

    Args:
        keep_fraction: in ``(0, 1]``.

    Examples:
        >>> from banditlib.adapters.rlvr.groups import GroupLayout
        >>> scores = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.3, 0.0])
        >>> keys = torch.arange(6) + (scores * 1000).long() * 8
        >>> TopFraction(0.5).decide(scores, keys, GroupLayout.of(torch.tensor([0, 0, 0, 0, 1, 1])))[0].tolist()
        [1, 2, 4]

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026 (top-p% of each group).
    """

    name = "top"
    budget_free = False

    def __init__(self, keep_fraction: float = 0.5) -> None:
        self.keep_fraction = V.check_float(
            keep_fraction, "TopFraction()", "keep_fraction", low=0.0, high=1.0, low_open=True
        )

    @property
    def config(self) -> dict[str, Any]:
        return {"keep_fraction": self.keep_fraction}

    def decide(
        self, scores: torch.Tensor, keys: torch.Tensor, layout: GroupLayout
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = top_per_group(keys, layout.padded, layout.mask, keep_counts(layout.counts, self.keep_fraction))
        return rows, torch.ones(rows.shape[0], device=scores.device)


class Threshold(SelectionRule):
    """Keep every rollout whose score is at least ``threshold``, weight 1 (no budget).

    With a model of each rollout's value (a label whose sign says helpful or harmful) and an optimistic
    score (an upper confidence bound), the default ``threshold = 0`` drops a rollout only when even its
    optimistic value is negative: "keep what is not predicted harmful".

    Args:
        threshold: any finite number.

    Examples:
        >>> from banditlib.adapters.rlvr.groups import GroupLayout
        >>> s = torch.tensor([0.3, -0.2, 0.0])
        >>> Threshold().decide(s, torch.arange(3), GroupLayout.of(torch.zeros(3, dtype=torch.long)))[0].tolist()
        [0, 2]
    """

    name = "threshold"

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = V.check_float(threshold, "Threshold()", "threshold")

    @property
    def config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def passes(self, scores: torch.Tensor) -> torch.Tensor:
        return scores >= self.threshold

    def decide(
        self, scores: torch.Tensor, keys: torch.Tensor, layout: GroupLayout
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.nonzero(self.passes(scores)).squeeze(1)
        return rows, torch.ones(rows.shape[0], device=scores.device)


class SoftWeights(SelectionRule):
    """Weight every rollout by ``clamp(1 + (score - threshold) / width, 0, 1)``; rows of weight 0 are dropped.

    Args:
        threshold: scores at or above it get weight 1.
        width: ``> 0``; a score of ``threshold - width`` or less gets weight 0.

    Examples:
        >>> from banditlib.adapters.rlvr.groups import GroupLayout
        >>> s = torch.tensor([0.5, -0.25, -2.0])
        >>> layout = GroupLayout.of(torch.zeros(3, dtype=torch.long))
        >>> rows, w = SoftWeights(width=1.0).decide(s, torch.arange(3), layout)
        >>> rows.tolist(), w.tolist()
        ([0, 1], [1.0, 0.75])
    """

    name = "soft"

    def __init__(self, threshold: float = 0.0, width: float = 1.0) -> None:
        where = "SoftWeights()"
        self.threshold = V.check_float(threshold, where, "threshold")
        self.width = V.check_float(width, where, "width", low=0.0, low_open=True)

    @property
    def config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "width": self.width}

    def passes(self, scores: torch.Tensor) -> torch.Tensor:
        return scores > self.threshold - self.width

    def decide(
        self, scores: torch.Tensor, keys: torch.Tensor, layout: GroupLayout
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = (1.0 + (scores.to(torch.float32) - self.threshold) / self.width).clamp(0.0, 1.0)
        rows = torch.nonzero(w > 0).squeeze(1)
        return rows, w[rows]


def rule_from_config(spec: Mapping[str, Any], where: str) -> SelectionRule:
    """Rebuild a rule from ``{"class": name, "config": {...}}`` (as saved by a scheduler).

    Args:
        spec: ``"class"``: the rule's class name (any [`SelectionRule`][banditlib.adapters.rlvr.SelectionRule]
            subclass defined so far), ``"config"``: its constructor arguments (its ``config``).
        where: the caller, named at the start of the error message (as ``"RolloutScheduler.load()"``).

    Returns:
        A new rule of that class.

    Raises:
        InvalidInputError: an unknown class name, a ``spec`` without ``"class"`` or ``"config"``, arguments
            the class does not take, or values its constructor rejects.

    Examples:
        >>> rule = SoftWeights(width=2.0)
        >>> rule_from_config({"class": type(rule).__name__, "config": rule.config}, "example")
        SoftWeights(threshold=0.0, width=2.0)
        >>> rule_from_config({"class": "Nope", "config": {}}, "example")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: example: unknown or malformed selection rule {'class': 'Nope', ...}: 'Nope'
    """
    try:
        return _RULES[str(spec["class"])](**spec["config"])
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"{where}: unknown or malformed selection rule {dict(spec)!r}: {exc}") from None
