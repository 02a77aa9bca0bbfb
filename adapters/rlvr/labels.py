"""What a scheduler learns from: [`RolloutLabel`][banditlib.adapters.rlvr.RolloutLabel] and the built-in labels.

A label turns one round's rollouts, and what followed them, into target values for the scheduler's model.
The protocol has two halves, because some labels need the next round:

* [`RolloutLabel.begin`][banditlib.adapters.rlvr.labels.RolloutLabel.begin] runs in ``schedule()`` on round
  ``t``'s fresh rollouts and returns the tensors the label must remember (saved with the scheduler);
* [`RolloutLabel.finish`][banditlib.adapters.rlvr.labels.RolloutLabel.finish] runs in ``observe()`` with round
  ``t + 1``'s fresh rollouts (and an optional trusted probe batch) and returns, for the rows the scheduler
  stored, which of them are labelled and with what value.

``rows = "all"`` labels score every fresh rollout of round ``t`` (full information: a dropped rollout's
label is as informative as a kept one's, so the model is not biased by its own selection); ``rows =
"selected"`` labels only the rollouts that were trained on (the paper's round gain, shared by all of them).

Built in:

* [`RoundGain`][banditlib.adapters.rlvr.RoundGain]: the paper's
  ``r_t = (V_{t+1} - V_t) - w_e 1[E_t > e_min] (E_{t+1} - E_t)``, shared by every selected rollout,
  standardised online. The reference; in our measurements it is mostly noise.
* [`BaselinedGain`][banditlib.adapters.rlvr.BaselinedGain]: the same gain with a per-prompt pass-rate baseline
  as a control variate, which removes most of the variance that comes from which prompts were drawn.
* [`InfluenceLabel`][banditlib.adapters.rlvr.InfluenceLabel]: per rollout, the first-order influence
  ``A_i <g_i, d>`` of training on it on a probe objective, from gradient sketches (``RolloutBatch.grad``); the
  probe direction ``d`` comes from the next round's fresh batch or from a small trusted probe batch scored by
  a strict verifier.
* [`ConsistencyLabel`][banditlib.adapters.rlvr.ConsistencyLabel]: self-supervised, per rollout: ``+1`` when its
  reward agrees with the majority verdict of the *other* finished rollouts of its group that gave the same
  answer, ``-1`` when it does not; unlabelled when no other finished rollout gave that answer.

Every label raises [`InvalidInputError`][banditlib.InvalidInputError] for input it cannot use (missing ``answer``
or ``grad`` where required, a probe of another round) before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from .batch import RolloutBatch
from .consistency import AnswerStats
from .groups import GroupLayout

__all__ = ["BaselinedGain", "ConsistencyLabel", "InfluenceLabel", "RolloutLabel", "RoundGain", "label_from_config"]

_LABELS: dict[str, type[RolloutLabel]] = {}
_CLIP = 5.0


class RolloutLabel:
    """Base class of labels. Subclasses set ``rows`` and ``shared``, and implement
    [`begin`][banditlib.adapters.rlvr.labels.RolloutLabel.begin] and
    [`finish`][banditlib.adapters.rlvr.labels.RolloutLabel.finish] (and
    [`state_dict`][banditlib.adapters.rlvr.labels.RolloutLabel.state_dict] /
    [`load_state_dict`][banditlib.adapters.rlvr.labels.RolloutLabel.load_state_dict] when they keep running
    statistics).

    A label with constructor arguments returns them from ``config``, and one that needs more than every batch
    has (``answer``, ``grad``, a payload entry) raises in [`check`][banditlib.adapters.rlvr.labels.RolloutLabel.check].
    Every subclass is registered under its class name, so
    [`label_from_config`][banditlib.adapters.rlvr.labels.label_from_config] (and a saved scheduler) can rebuild it.

    Attributes:
        name: a short name (for reports).
        rows: ``"all"``: every fresh rollout of the round is labelled; ``"selected"``: only the trained ones.
        shared: whether one value is shared by every labelled row (a round-level label).

    Examples:
        Label every fresh rollout by its own reward, known at once (``begin`` keeps it for ``finish``):

        >>> class OwnReward(RolloutLabel):
        ...     name = "own-reward"
        ...     def begin(self, batch, layout, selected):
        ...         return {"reward": batch.reward.double()}
        ...     def finish(self, saved, batch, probe, where):
        ...         return torch.ones_like(saved["reward"], dtype=torch.bool), saved["reward"]
        >>> lab = OwnReward()
        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.1, 0.1], "length": [3, 3]}])
        >>> lab.finish(lab.begin(b, GroupLayout.of(b.group), torch.arange(2)), b, None, "example")
        (tensor([True, True]), tensor([1., 0.], dtype=torch.float64))
    """

    name = "label"
    rows = "all"  # "all": every fresh rollout of the round is labelled; "selected": only the trained ones
    shared = False  # one value shared by every labelled row (a round-level label)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _LABELS[cls.__name__] = cls

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RolloutLabel:
        """A new label from its ``config`` (the default: the constructor's keyword arguments as they are)."""
        return cls(**config)

    def check(self, batch: RolloutBatch, where: str) -> None:
        """Raise [`InvalidInputError`][banditlib.InvalidInputError] if ``batch`` lacks what the label needs."""

    def begin(self, batch: RolloutBatch, layout: GroupLayout, selected: torch.Tensor) -> dict[str, torch.Tensor]:
        """What to remember of round ``t`` (``selected``: ``(n,)`` indices of the fresh rows trained on).

        Returns:
            Named tensors (saved with the scheduler's state; may be empty).
        """
        return {}

    def finish(
        self, saved: Mapping[str, torch.Tensor], batch: RolloutBatch, probe: RolloutBatch | None, where: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The labels of round ``t``'s rows from round ``t + 1``'s fresh ``batch`` (and ``probe``).

        Returns:
            ``(mask, values)``, both ``(M,)`` with ``M`` the rows stored at ``begin`` (every fresh row for
            ``rows = "all"``, the selected ones otherwise), or both ``(1,)`` for a ``shared`` label: which rows
            are labelled, and their float64 values (finite where labelled).
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Running statistics (copies)."""
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        """Load [`state_dict`][banditlib.adapters.rlvr.labels.RolloutLabel.state_dict]'s output; on error nothing
        changes."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


class InfluenceLabel(RolloutLabel):
    """Per-rollout first-order influence on a probe objective, from gradient sketches.

    Training on rollout ``i`` moves the parameters along ``A_i g_i``, with ``g_i`` the gradient of its mean
    token log-prob (``RolloutBatch.grad`` holds a fixed projection of it) and ``A_i`` its advantage. To first
    order its effect on a probe objective with ascent direction ``d`` is proportional to ``A_i <g_i, d>``. The
    probe direction is ``d = mean_j A_j g_j`` over

    * the ``probe`` batch passed to ``observe`` when there is one: rollouts of a small trusted prompt set
      scored by a strict verifier, or the prompts' reference answers with advantage 1 (an SFT direction, as
      I-PPO's validation gradient); the only signal that can expose a reward hack which the training verifier
      itself rewards (GradAlign);
    * otherwise the next round's fresh batch, scored by the same verifier as the training data (its noise
      averages out across prompts, its systematic faults do not).

    Values are divided by the round's mean absolute influence and clipped to ``[-5, 5]``: a label of unit
    scale whose sign says helpful (``> 0``) or harmful. The sketch is taken where the rollout was generated and
    the probe one round later, a one-step-stale first-order estimate (the one GradAlign and I-PPO make).

    Args:
        probe: ``"auto"`` (the trusted probe when given, else the next batch), ``"next"`` or ``"trusted"``
            (a probe batch is then required).

    Raises:
        InvalidInputError: (at ``schedule``/``observe``) a batch without ``grad``; sketches of different widths;
            ``probe="trusted"`` without a probe batch.

    Examples:
        >>> lab = InfluenceLabel()
        >>> mk = lambda g, t: RolloutBatch.from_tensors(group=[0, 0], reward=[1.0, 0.0], entropy=[0.1, 0.1],
        ...                                            length=[3, 3], grad=g, round=t)
        >>> saved = lab.begin(mk([[1.0, 0.0], [0.0, 1.0]], 0), None, torch.tensor([0, 1]))
        >>> mask, y = lab.finish(saved, mk([[1.0, 0.0], [0.0, 1.0]], 1), None, "example")
        >>> y.tolist()  # both rows push towards the next round's direction
        [1.0, 1.0]

    References:
        Pruthi et al. Estimating training data influence by tracing gradient descent (TracIn), NeurIPS 2020;
        Yang et al. GradAlign: gradient-aligned data selection for LLM reinforcement learning, arXiv 2602.21492,
        2026; Shu et al. I-PPO, arXiv 2604.01597, 2026.
    """

    name = "influence"

    def __init__(self, probe: str = "auto") -> None:
        if probe not in ("auto", "next", "trusted"):
            raise InvalidInputError(f"InfluenceLabel(): `probe` must be 'auto', 'next' or 'trusted'; got {probe!r}.")
        self.probe = probe

    @property
    def config(self) -> dict[str, Any]:
        return {"probe": self.probe}

    def check(self, batch: RolloutBatch, where: str) -> None:
        if batch.grad is None:
            raise InvalidInputError(
                f"{where}: the influence label needs per-rollout gradient sketches (`RolloutBatch.grad`); the batch "
                "has none (see banditlib.adapters.rlvr.influence for how to compute them)."
            )

    def begin(self, batch: RolloutBatch, layout: GroupLayout, selected: torch.Tensor) -> dict[str, torch.Tensor]:
        if batch.grad is None:  # check() refuses such a batch before the scheduler gets here
            raise InvalidInputError("InfluenceLabel.begin(): the batch has no gradient sketches (`RolloutBatch.grad`).")
        return {"direction": (batch.advantage[:, None] * batch.grad).detach().to(torch.float32).clone()}

    def finish(
        self, saved: Mapping[str, torch.Tensor], batch: RolloutBatch, probe: RolloutBatch | None, where: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        src = probe if probe is not None and self.probe != "next" else batch
        if self.probe == "trusted" and probe is None:
            raise InvalidInputError(f"{where}: InfluenceLabel(probe='trusted') needs a `probe` batch in observe().")
        if src.grad is None:
            raise InvalidInputError(
                f"{where}: the influence label needs gradient sketches (`grad`) on the "
                f"{'probe' if src is probe else 'next round'}'s batch; it has none."
            )
        s = saved["direction"].to(src.grad.device, torch.float64)
        if src.grad.shape[1] != s.shape[1]:
            raise InvalidInputError(
                f"{where}: the gradient sketches changed width from {s.shape[1]} to {src.grad.shape[1]}; use the same "
                "projection in every round."
            )
        d = (src.advantage.double()[:, None] * src.grad.double()).mean(0)
        infl = s @ d
        scale = infl.abs().mean()
        if not bool(scale > 0) or not bool(torch.isfinite(scale)):
            return torch.zeros_like(infl, dtype=torch.bool).cpu(), torch.zeros_like(infl).cpu()
        y = (infl / scale).clamp(-_CLIP, _CLIP)
        return torch.ones_like(y, dtype=torch.bool).cpu(), y.cpu()


class ConsistencyLabel(RolloutLabel):
    """Self-supervised: does a rollout's reward agree with the verdict on identical answers in its group?

    For rollout ``i`` with an answer, let ``F`` be the other *finished* rollouts of its group with the same
    answer (truncated ones are no evidence: they are rejected for being cut off). When ``F`` is not empty the
    answer's verdict is *accepted* if a strict majority of ``F`` was accepted, *rejected* otherwise (a tie
    counts as rejected: a verifier that sometimes lets a wrong answer through is the commoner fault than
    one that sometimes fails a right one), and the label is ``+1`` if ``i``'s own acceptance agrees, ``-1``
    if not. Rollouts without an answer or without such copies are unlabelled. So a lucky pass of a wrong
    answer (rejected elsewhere) and a correct answer cut off while its finished copies passed both get
    ``-1``; the model then learns which features predict a misleading reward in this world, and applies it
    to rollouts that have no copies.

    Without ``answer`` nothing is labelled (the scheduler then keeps learning nothing, and says so once).

    Args:
        accept_threshold: a rollout counts as accepted when ``reward > accept_threshold``.

    Examples:
        >>> b = RolloutBatch.from_tensors(group=[0, 0, 0, 0], reward=[1.0, 0.0, 0.0, 1.0], entropy=[0.1] * 4,
        ...                               length=[3] * 4, answer=[7, 7, 7, 5])
        >>> lab = ConsistencyLabel()
        >>> mask, y = lab.finish(lab.begin(b, GroupLayout.of(b.group), torch.arange(4)), b, None, "example")
        >>> mask.tolist(), y[mask].tolist()  # the lone pass of answer 7 disagrees with its two rejections
        ([True, True, True, False], [-1.0, 1.0, 1.0])
    """

    name = "consistency"

    def __init__(self, accept_threshold: float = 0.5) -> None:
        self.accept_threshold = V.check_float(accept_threshold, "ConsistencyLabel()", "accept_threshold")

    @property
    def config(self) -> dict[str, Any]:
        return {"accept_threshold": self.accept_threshold}

    def begin(self, batch: RolloutBatch, layout: GroupLayout, selected: torch.Tensor) -> dict[str, torch.Tensor]:
        s = AnswerStats.of(batch, layout, self.accept_threshold)
        labelled = s.has_answer & (s.others_finished >= 1)
        verdict = s.others_accepted > s.others_finished / 2
        y = torch.where(s.accepted == verdict, 1.0, -1.0).to(torch.float64)
        return {"mask": labelled.cpu(), "values": torch.where(labelled, y, 0.0).cpu()}

    def finish(
        self, saved: Mapping[str, torch.Tensor], batch: RolloutBatch, probe: RolloutBatch | None, where: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return saved["mask"].bool(), saved["values"].to(torch.float64)


def label_from_config(spec: Mapping[str, Any], where: str) -> RolloutLabel:
    """Rebuild a label from ``{"class": name, "config": {...}}`` (as saved by a scheduler).

    The running statistics are not part of the spec: load them with ``load_state_dict``.

    Args:
        spec: ``"class"``: the label's class name (any [`RolloutLabel`][banditlib.adapters.rlvr.RolloutLabel]
            subclass defined so far), ``"config"``: its constructor arguments (its ``config``; for
            [`RoundGain`][banditlib.adapters.rlvr.RoundGain] and its subclasses ``"reward"`` holds the
            [`GainReward`][banditlib.adapters.rlvr.GainReward]'s arguments).
        where: the caller, named at the start of the error message (as ``"RolloutScheduler.load()"``).

    Returns:
        A new label of that class.

    Raises:
        InvalidInputError: an unknown class name, a ``spec`` without ``"class"`` or ``"config"``, arguments
            the class does not take, or values its constructor rejects.

    Examples:
        >>> lab = RoundGain(decay=0.9)
        >>> label_from_config({"class": type(lab).__name__, "config": lab.config}, "example")
        RoundGain(reward={'entropy_weight': 0.1, 'entropy_threshold': 0.3}, decay=0.9)
        >>> label_from_config({"class": "Nope", "config": {}}, "example")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: example: unknown or malformed label {'class': 'Nope', ...}: 'Nope'
    """
    try:
        return _LABELS[str(spec["class"])].from_config(dict(spec["config"]))
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"{where}: unknown or malformed label {dict(spec)!r}: {exc}") from None


# The round-gain labels live in _gain_labels.py (this module would exceed 500 lines); they are part of this module's
# API, imported here once RolloutLabel, which they subclass, is defined.
from ._gain_labels import BaselinedGain, RoundGain  # noqa: E402
