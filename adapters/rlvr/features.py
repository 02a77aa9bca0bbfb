"""The context of a rollout: [`RolloutFeaturizer`][banditlib.adapters.rlvr.RolloutFeaturizer].

Three lists of built-in features:

- [`DEFAULT_FEATURES`][banditlib.adapters.rlvr.DEFAULT_FEATURES], what
[`RolloutScheduler`][banditlib.adapters.rlvr.RolloutScheduler] uses by default: five 0/1 indicators
  of a reward that may mislead (``answer_conflict``, ``truncated_negative``, ``low_pass_accepted``,
  ``accepted``, ``truncated``), left unnormalised, so a linear model learns, per indicator, how much harm it
  signals in the world at hand;
- [`PAPER_FEATURES`][banditlib.adapters.rlvr.PAPER_FEATURES], the ten of CBS (Lu et al. 2026), used by
``preset="paper"``; - [`CONSISTENCY_FEATURES`][banditlib.adapters.rlvr.CONSISTENCY_FEATURES], answer and reward
consistency within the group (needs ``answer``; zero
  without it), the log-prob of the sequence, and an interaction.

The ten of CBS, in this order:

- ``age``: rounds since the rollout was generated (0 for fresh rollouts);
- ``uses``: times it was already selected for training;
- ``entropy``: mean token entropy;
- ``clip_ratio``: fraction of tokens clipped at its last optimisation (0 until a rollout has been trained on,
  so it informs only the choice among buffered rollouts);
- ``truncated``: 1 if cut off at the maximum length;
- ``length``: completion length in tokens;
- ``reward``: verifier reward;
- ``advantage``: advantage;
- ``group_mean_reward``: mean reward of its group (pass rate for 0/1 rewards);
- ``group_reward_std``: reward standard deviation of its group (population; 0 for a group of one).

The consistency features (see [`AnswerStats`][banditlib.adapters.rlvr.AnswerStats]; *accepted* means ``reward >
accept_threshold``, *finished* means not truncated):

- ``accepted``: 1 if accepted;
- ``answer_conflict``: 1 if accepted while another finished rollout of its group with the same answer was
  rejected (the signature of a noisy verifier's false positive);
- ``truncated_negative``: 1 if truncated with a negative advantage (a correct answer cut off is pushed down:
  the case of DAPO's overlong filtering);
- ``low_pass_accepted``: 1 if accepted in a group whose pass rate is at most ``low_pass`` (lucky guesses live
  in groups the policy rarely solves);
- ``answer_share``: share of the group with the same answer; ``answer_agreement``: share of the group's
  accepted rollouts with the same answer; ``accepted_answers``: distinct accepted answers in the group;
  ``reward_deviation``: reward minus the mean reward of the group's identical answers;
- ``seq_logprob``: the sum of the behaviour log-probs (finite entries; 0 without ``logprobs``);
- ``reward_x_pass``: reward times the group's mean reward, the interaction a linear score needs to treat the
  positives of low-pass and high-pass groups differently.

``age`` and ``uses`` change while a rollout sits in the buffer (they are *dynamic*); the others are fixed when
the rollout is generated (*static*), so the buffer stores them once. Features are normalised online,
``z = clip((x - mean) / sqrt(var + 1e-8), -clip, clip)``, with a running mean and variance per feature (exact
pooled statistics in float64, saved with the state): a static feature counts every rollout once, when it is
fresh; ``age`` and ``uses`` count every candidate scored, as they change. A constant ``intercept`` column of
ones is appended: it absorbs the average gain, so the feature weights only explain differences between
selections. Features that only take the values 0 and 1 are never normalised when ``normalize`` is left at
its automatic setting and every feature is binary ([`DEFAULT_FEATURES`][banditlib.adapters.rlvr.DEFAULT_FEATURES]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from .batch import RolloutBatch
from .consistency import AnswerStats
from .groups import GroupLayout, group_moments

__all__ = ["ALL_FEATURES", "CONSISTENCY_FEATURES", "DEFAULT_FEATURES", "PAPER_FEATURES", "RolloutFeaturizer"]

PAPER_FEATURES = (
    "age",
    "uses",
    "entropy",
    "clip_ratio",
    "truncated",
    "length",
    "reward",
    "advantage",
    "group_mean_reward",
    "group_reward_std",
)
"""The ten features of the CBS paper (Lu et al. 2026), in its order: the rollout's age and reuse count in the
buffer, mean token entropy, clip ratio, truncation flag, length, reward, advantage, and its group's mean reward
and reward standard deviation."""
CONSISTENCY_FEATURES = (
    "accepted",
    "answer_conflict",
    "truncated_negative",
    "low_pass_accepted",
    "answer_share",
    "answer_agreement",
    "accepted_answers",
    "reward_deviation",
    "seq_logprob",
    "reward_x_pass",
)
"""Features of answer/reward consistency within a group (they need ``RolloutBatch.answer``; without answers
they are constant): the 0/1 indicators ``accepted``, ``answer_conflict`` (accepted while a finished copy of the
same answer was rejected), ``truncated_negative``, ``low_pass_accepted`` (accepted in a group with pass rate
``<= 0.25``); the share of the group with the same answer and the share of its accepted rollouts that gave it;
the number of distinct accepted answers; the reward's deviation from identical answers' mean; the sequence log-prob; and
reward times the group's pass rate."""
DEFAULT_FEATURES = ("answer_conflict", "truncated_negative", "low_pass_accepted", "accepted", "truncated")
"""The default scheduler's features: five 0/1 indicators, used unnormalised (docs/rlvr.md, "How the default
works")."""
ALL_FEATURES = (*PAPER_FEATURES, *CONSISTENCY_FEATURES)
"""Every built-in feature name: ``PAPER_FEATURES`` then ``CONSISTENCY_FEATURES``."""
BINARY = frozenset({"accepted", "answer_conflict", "truncated_negative", "low_pass_accepted", "truncated"})
DYNAMIC = ("age", "uses")
_ANSWER = {
    "accepted": lambda s: s.accepted.float(),
    "answer_conflict": lambda s: s.conflict.float(),
    "answer_share": lambda s: s.answer_share,
    "answer_agreement": lambda s: s.agreement,
    "accepted_answers": lambda s: s.accepted_answers,
    "reward_deviation": lambda s: s.reward_deviation,
}
_EPS = 1e-8


def _group_stats(batch: RolloutBatch, layout: GroupLayout | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row mean and population std of the rewards of its group: each ``(N,)`` float32."""
    layout = layout if layout is not None else GroupLayout.of(batch.group)
    mean, var = group_moments(batch.reward.to(torch.float64), layout.inverse, layout.counts)
    return mean[layout.inverse].float(), var.sqrt()[layout.inverse].float()


_BUILTIN: dict[str, Callable[[RolloutBatch], torch.Tensor]] = {
    "entropy": lambda b: b.entropy,
    "clip_ratio": lambda b: b.clip_ratio,
    "truncated": lambda b: b.truncated.float(),
    "length": lambda b: b.length,
    "reward": lambda b: b.reward,
    "advantage": lambda b: b.advantage,
    "truncated_negative": lambda b: (b.truncated & (b.advantage < 0)).float(),
    "seq_logprob": lambda b: (
        torch.zeros(len(b), device=b.group.device)
        if b.logprobs is None
        else torch.where(torch.isfinite(b.logprobs), b.logprobs, 0.0).sum(1)
    ),
}


class RolloutFeaturizer:
    """Raw features of rollouts and their online normalisation.

    Args:
        features: names of the built-in features to use, in order (default:
            [`DEFAULT_FEATURES`][banditlib.adapters.rlvr.DEFAULT_FEATURES]).
        add: extra *static* features, name -> function of a [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch]
            returning ``(N,)`` values; appended after ``features``.
        drop: names to remove from ``features`` (handy with the default list).
        normalize: whether to standardise with the running statistics (``False``: raw values); ``None``
            (default): standardise unless every feature is a built-in 0/1 indicator.
        intercept: whether to append a constant column of ones (not normalised).
        clip: bound on the absolute value of a normalised feature (``> 0``).
        accept_threshold: a rollout counts as accepted when ``reward > accept_threshold``.
        low_pass: the pass-rate bound of ``low_pass_accepted``, in ``[0, 1]``.

    Attributes:
        names: ``(d,)`` names of the context columns, ``intercept`` last when present.
        dim: ``d``.

    Examples:
        >>> import torch
        >>> RolloutFeaturizer().names
        ('answer_conflict', 'truncated_negative', 'low_pass_accepted', 'accepted', 'truncated', 'intercept')
        >>> f = RolloutFeaturizer(PAPER_FEATURES, drop=["length"])
        >>> f.dim, f.names[-2:], f.normalize
        (10, ('group_reward_std', 'intercept'), True)
        >>> b = RolloutBatch.from_groups([{"reward": [1.0, 0.0], "entropy": [0.2, 0.4], "length": [5, 7]}])
        >>> raw = f.raw(b)
        >>> raw[:, f.names.index("group_mean_reward")].tolist()
        [0.5, 0.5]
        >>> f.update(raw); [round(v, 3) for v in f.transform(raw)[:, f.names.index("entropy")].tolist()]
        [-1.0, 1.0]

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026 (the ten features); Yu et al. DAPO, arXiv 2503.14476, 2025 (overlong filtering).
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        *,
        add: Mapping[str, Callable[[RolloutBatch], torch.Tensor]] | None = None,
        drop: Sequence[str] = (),
        normalize: bool | None = None,
        intercept: bool = True,
        clip: float = 5.0,
        accept_threshold: float = 0.5,
        low_pass: float = 0.25,
    ) -> None:
        where = "RolloutFeaturizer()"
        if isinstance(features, str):
            raise InvalidInputError(f"{where}: `features` must be a sequence of names, not the string {features!r}.")
        names = list(DEFAULT_FEATURES if features is None else features)
        known = set(ALL_FEATURES)
        for name in [*names, *drop]:
            if name not in known:
                raise InvalidInputError(
                    f"{where}: unknown feature {name!r}; built-in features are {list(ALL_FEATURES)} (use `add=` "
                    f"for your own)."
                )
        if len(set(names)) != len(names):
            raise InvalidInputError(f"{where}: `features` must not repeat a name; got {names}.")
        names = [n for n in names if n not in set(drop)]
        extra = dict(add or {})
        for name, fn in extra.items():
            if name in known or name == "intercept" or not callable(fn):
                raise InvalidInputError(
                    f"{where}: `add` must map new names (not built-in ones or 'intercept') to functions; got {name!r}."
                )
        self.feature_names: tuple[str, ...] = (*names, *extra)
        if not self.feature_names:
            raise InvalidInputError(f"{where}: at least one feature is needed; all were dropped.")
        self.extra = extra
        if normalize is None:
            normalize = not all(n in BINARY for n in self.feature_names)
        self.normalize = bool(normalize)
        self.accept_threshold = V.check_float(accept_threshold, where, "accept_threshold")
        self.low_pass = V.check_float(low_pass, where, "low_pass", low=0.0, high=1.0)
        self.intercept = bool(intercept)
        self.clip = V.check_float(clip, where, "clip", low=0.0, low_open=True)
        self.names: tuple[str, ...] = (*self.feature_names, "intercept") if self.intercept else self.feature_names
        self.dim = len(self.names)
        self.static_names: tuple[str, ...] = tuple(n for n in self.feature_names if n not in DYNAMIC)
        F = len(self.feature_names)
        self._age_col = self.feature_names.index("age") if "age" in self.feature_names else -1
        self._uses_col = self.feature_names.index("uses") if "uses" in self.feature_names else -1
        self._static_cols = torch.tensor([i for i, n in enumerate(self.feature_names) if n not in DYNAMIC])
        self.count_ = torch.zeros(F, dtype=torch.float64)
        self.mean_ = torch.zeros(F, dtype=torch.float64)
        self.m2_ = torch.zeros(F, dtype=torch.float64)

    @property
    def config(self) -> dict[str, object]:
        """Constructor arguments (built-in part), JSON-serialisable; ``extra`` names custom features."""
        return {
            "features": [n for n in self.feature_names if n not in self.extra],
            "extra": list(self.extra),
            "normalize": self.normalize,
            "intercept": self.intercept,
            "clip": self.clip,
            "accept_threshold": self.accept_threshold,
            "low_pass": self.low_pass,
        }

    # ------------------------------------------------------------------------------------------ raw features

    def static(self, batch: RolloutBatch, layout: GroupLayout | None = None) -> torch.Tensor:
        """The static raw features of a batch: ``(N, S)`` float32, columns in `static_names` order
        (``layout``: the batch's group layout, if already computed).

        Raises:
            InvalidInputError: a custom feature returned the wrong shape or non-finite values.
        """
        cols = []
        stats: tuple[torch.Tensor, torch.Tensor] | None = None
        answers: AnswerStats | None = None
        for name in self.static_names:
            if name in ("group_mean_reward", "group_reward_std", "reward_x_pass"):
                if stats is None:
                    stats = _group_stats(batch, layout)
                if name == "reward_x_pass":
                    cols.append(batch.reward * stats[0])
                else:
                    cols.append(stats[0] if name == "group_mean_reward" else stats[1])
            elif name in _ANSWER or name == "low_pass_accepted":
                if answers is None:
                    answers = AnswerStats.of(batch, layout, self.accept_threshold)
                if name == "low_pass_accepted":
                    cols.append((answers.accepted & (answers.pass_rate <= self.low_pass)).float())
                else:
                    cols.append(_ANSWER[name](answers))
            elif name in _BUILTIN:
                cols.append(_BUILTIN[name](batch))
            else:
                where = f"RolloutFeaturizer: custom feature {name!r}"
                v = V.as_real_tensor(
                    self.extra[name](batch), where, name, dtype=torch.float32, device=batch.group.device
                )
                if v.shape != (len(batch),):
                    raise InvalidInputError(f"{where} must return shape ({len(batch)},); got {V.fmt_shape(v.shape)}.")
                cols.append(v)
        if not cols:
            return torch.zeros(len(batch), 0, device=batch.group.device)
        return torch.stack(cols, dim=1)

    def assemble(self, static: torch.Tensor, age: torch.Tensor, uses: torch.Tensor) -> torch.Tensor:
        """Raw feature vectors from static features ``(M, S)`` and dynamic ``age``, ``uses`` ``(M,)``: ``(M, F)``."""
        M = static.shape[0]
        out = torch.empty(M, len(self.feature_names), dtype=torch.float32, device=static.device)
        if self._static_cols.numel():
            out[:, self._static_cols.to(static.device)] = static
        if self._age_col >= 0:
            out[:, self._age_col] = age
        if self._uses_col >= 0:
            out[:, self._uses_col] = uses
        return out

    def raw(
        self, batch: RolloutBatch, age: torch.Tensor | None = None, uses: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw feature vectors of a batch ``(N, F)``; ``age`` and ``uses`` default to zeros (fresh rollouts)."""
        zeros = torch.zeros(len(batch), device=batch.group.device)
        return self.assemble(self.static(batch), zeros if age is None else age, zeros if uses is None else uses)

    # ------------------------------------------------------------------------------------------ normalisation

    def merged(
        self, raw: torch.Tensor | None = None, *, columns: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The running statistics after also seeing ``raw`` ``(M, C)``, the values of feature ``columns``
        (default: all ``F``), by Chan et al.'s pooled update per column; no change to ``self`` (commit with
        [`set_stats`][banditlib.adapters.rlvr.features.RolloutFeaturizer.set_stats]). Each column keeps its own
        count."""
        count, mean, m2 = self.count_.clone(), self.mean_.clone(), self.m2_.clone()
        if raw is None or raw.shape[0] == 0 or raw.shape[1] == 0:
            return count, mean, m2
        cols = torch.arange(raw.shape[1]) if columns is None else torch.as_tensor(columns, dtype=torch.long)
        x = raw.to(torch.float64)
        m = float(x.shape[0])
        ones = torch.ones(1, x.shape[0], dtype=torch.float64, device=x.device)
        # Column sums by a matrix product: a reduction over dim 0 of a narrow row-major tensor is slow on CPU.
        mean_b = (ones @ x)[0].cpu() / m
        m2_b = ((ones @ (x * x))[0].cpu() - m * mean_b * mean_b).clamp_min(0.0)
        n = count[cols]
        total = n + m
        delta = mean_b - mean[cols]
        mean[cols] = mean[cols] + delta * (m / total)
        m2[cols] = m2[cols] + m2_b + delta**2 * (n * m / total)
        count[cols] = total
        return count, mean, m2

    def merged_parts(
        self, static: torch.Tensor, age: torch.Tensor, uses: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[`merged`][banditlib.adapters.rlvr.features.RolloutFeaturizer.merged] for static features ``(n, S)`` of the
        fresh rows and the dynamic features of all ``M`` candidates ``(M,)`` each: each rollout's static features are
        counted once, when it is fresh."""
        count, mean, m2 = self.merged(static, columns=self._static_cols.tolist())
        for col, values in ((self._age_col, age), (self._uses_col, uses)):
            if col < 0 or values.numel() == 0:
                continue
            v = values.to(torch.float64)
            m = float(v.shape[0])
            mean_b = float(v.sum()) / m
            m2_b = max(float(v.dot(v)) - m * mean_b * mean_b, 0.0)
            n = float(count[col])
            delta = mean_b - float(mean[col])
            mean[col] += delta * m / (n + m)
            m2[col] += m2_b + delta * delta * n * m / (n + m)
            count[col] = n + m
        return count, mean, m2

    def set_stats(self, stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        """Commit statistics computed by [`merged`][banditlib.adapters.rlvr.features.RolloutFeaturizer.merged]."""
        self.count_, self.mean_, self.m2_ = stats

    def update(self, raw: torch.Tensor) -> None:
        """Fold raw feature vectors ``(M, F)`` into the running mean and variance."""
        self.set_stats(self.merged(raw))

    def _affine(
        self, stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        count, mean, m2 = stats if stats is not None else (self.count_, self.mean_, self.m2_)
        if not self.normalize:
            return None
        var = m2 / count.clamp_min(1.0)
        scale = torch.where(count > 0, 1.0 / (var + _EPS).sqrt(), 1.0)
        shift = torch.where(count > 0, mean, 0.0)
        return shift.to(device, torch.float32), scale.to(device, torch.float32)

    def transform(
        self, raw: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Normalised contexts ``(M, d)`` float32 from raw features ``(M, F)`` (with the given or current stats)."""
        x = raw.to(torch.float32)
        aff = self._affine(stats, raw.device)
        if aff is not None:
            x = ((x - aff[0]) * aff[1]).clamp_(-self.clip, self.clip)
        if self.intercept:
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        return x

    def contexts(
        self,
        parts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Normalised contexts ``(M, d)`` written straight into one tensor from several blocks of rows, each
        ``(static (m, S), age (m,), uses (m,))``: equal to ``transform(cat(assemble(*part)))``, without the
        intermediate copies."""
        device = parts[0][0].device
        M = sum(p[0].shape[0] for p in parts)
        out = torch.empty(M, self.dim, dtype=torch.float32, device=device)
        aff = self._affine(stats, device)
        sc = self._static_cols.tolist()
        lo = sc[0] if sc else 0
        block: slice | torch.Tensor = (
            slice(lo, lo + len(sc)) if sc == list(range(lo, lo + len(sc))) else self._static_cols.to(device)
        )
        scale = bias = None
        if aff is not None:  # z = x * scale + bias, one fused pass per block of contiguous values
            scale, bias = aff[1], -aff[0] * aff[1]

        def norm(values: torch.Tensor, cols: slice | torch.Tensor | int) -> torch.Tensor:
            if scale is None or bias is None:
                return values
            return torch.addcmul(bias[cols], values, scale[cols]).clamp_(-self.clip, self.clip)

        start = 0
        for static, age, uses in parts:
            rows = slice(start, start + static.shape[0])
            if sc:
                out[rows, block] = norm(static, block)
            if self._age_col >= 0:
                out[rows, self._age_col] = norm(age, self._age_col)
            if self._uses_col >= 0:
                out[rows, self._uses_col] = norm(uses, self._uses_col)
            start = rows.stop
        if self.intercept:
            out[:, len(self.feature_names)] = 1.0
        return out

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Running statistics per feature: ``count``, ``mean`` and ``m2`` ``(F,)`` float64 (copies)."""
        return {"count": self.count_.clone(), "mean": self.mean_.clone(), "m2": self.m2_.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load statistics saved by [`state_dict`][banditlib.adapters.rlvr.features.RolloutFeaturizer.state_dict]; on
        error nothing changes.

        Raises:
            InvalidInputError: missing entries, wrong shapes, negative or non-finite values.
        """
        where = "RolloutFeaturizer.load_state_dict()"
        F = len(self.feature_names)
        try:
            count = torch.as_tensor(state["count"], dtype=torch.float64).clone()
            mean = torch.as_tensor(state["mean"], dtype=torch.float64).clone()
            m2 = torch.as_tensor(state["m2"], dtype=torch.float64).clone()
        except (KeyError, RuntimeError, TypeError) as exc:
            raise InvalidInputError(f"{where}: the state needs `count`, `mean` and `m2`: {exc}") from None
        if count.shape != (F,) or mean.shape != (F,) or m2.shape != (F,):
            raise InvalidInputError(f"{where}: `count`, `mean` and `m2` must have shape ({F},) for {F} features.")
        if not (V.all_finite(count) and bool((count >= 0).all()) and V.all_finite(mean) and V.all_finite(m2)):
            raise InvalidInputError(f"{where}: the statistics must be finite with a non-negative count.")
        if bool((m2 < 0).any()):
            raise InvalidInputError(f"{where}: `m2` must be non-negative.")
        self.count_, self.mean_, self.m2_ = count, mean, m2
