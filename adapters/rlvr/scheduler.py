"""The learned rollout scheduler: [`RolloutScheduler`][banditlib.adapters.rlvr.RolloutScheduler].

Each rollout is an arm described by its features ([`RolloutFeaturizer`][banditlib.adapters.rlvr.RolloutFeaturizer]); a
bandit policy scores them; a selection rule ([`rules`][banditlib.adapters.rlvr.rules]) turns the scores into the rows to
train on, within each group and/or over the buffer of recent rounds (historical reuse); a label
([`labels`][banditlib.adapters.rlvr.labels]) computed from the round (and the next one) teaches the policy which
rollouts help. ``preset="paper"`` is CBS as published (a fixed per-group budget, the round's performance gain as the
label); the default is the configuration that measured best across the simulator's verifier-fault worlds (docs/rlvr.md).
"""

from __future__ import annotations

import math
import secrets
import warnings

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError, StateError
from banditlib.policies import LinUCB, Policy

from ._base import Schedule, rank_keys, tie_keys
from ._scheduler_state import _PersistedRolloutScheduler
from .batch import RolloutBatch
from .buffer import RolloutBuffer
from .features import PAPER_FEATURES, RolloutFeaturizer
from .groups import GroupLayout
from .labels import ConsistencyLabel, InfluenceLabel, RolloutLabel, RoundGain
from .reward import GainReward
from .rules import SelectionRule, Threshold, TopFraction

__all__ = ["MODES", "PRESETS", "RolloutScheduler"]

MODES = ("group", "global", "both")
"""The scheduler's modes: ``"group"`` keeps rows of the fresh batch, no replay; ``"global"`` picks over the fresh
batch and the buffer together; ``"both"`` applies the rule to the fresh batch, then adds buffered rollouts
(see [`RolloutScheduler`][banditlib.adapters.rlvr.scheduler.RolloutScheduler], "Modes")."""
REPLAYS = ("score", "priority")
PRESETS = ("default", "paper")
"""``"default"``: the configuration that measured best across the simulator's verifier-fault worlds;
``"paper"``: CBS as published (the paper's ten features, a half-group budget, the round gain label)."""
# The default policy over the default features (five 0/1 indicators + intercept) with the consistency label
# (+1/-1 per rollout): alpha = 1 because the label has unit scale; forget = 0.99 per round follows the drift
# of which indicators mislead as the model trains (docs/rlvr.md, the ablation).
DEFAULT_ALPHA, DEFAULT_FORGET = 1.0, 0.99
# The default replays half as many buffered rollouts as it keeps fresh ones, by |advantage| priority, among
# those its model admits, up to 3 rounds old (buffer_rounds = 4): what measured best across the fault worlds.
DEFAULT_REPLAY_RATIO = 0.5
# The paper preset: LinUCB over the ten normalised features; forget = 0.99 per round remembers about 100
# rounds, long enough to average the noisy gains and short enough to follow the drift of a model in training.
PAPER_ALPHA, PAPER_FORGET = 0.1, 0.99


class RolloutScheduler(_PersistedRolloutScheduler):
    """Choose which rollouts to train on with a contextual bandit that learns which rollouts help.

    **Presets.** ``preset="default"``: per rollout, five 0/1 indicators of a reward that may mislead
    ([`DEFAULT_FEATURES`][banditlib.adapters.rlvr.DEFAULT_FEATURES]: an accepted answer that an identical finished
    answer of its group was rejected for, a truncated rollout pushed down, an accepted rollout in a group that is rarely
    solved, accepted, truncated) and an intercept; a LinUCB model of the self-supervised
    [`ConsistencyLabel`][banditlib.adapters.rlvr.ConsistencyLabel] (does the rollout's reward agree with the verdict on
    identical answers in its group), updated with every labelled rollout, kept or not; the
    [`Threshold`][banditlib.adapters.rlvr.Threshold] rule (keep a rollout unless its upper confidence bound is below 0:
    no fixed budget, so a scheduler that has learned nothing keeps everything); and, in mode ``"both"``, priority
    replay: every kept fresh rollout plus half as many buffered ones (up to 3 rounds old) that the model admits, drawn
        with probability
    proportional to ``sqrt(|advantage|)``. Replayed rows train off-policy against their stored behaviour
    log-probs (``RolloutBatch.logprobs``), so the training loop must carry them (the trainer adapters do);
    pass ``mode="group"`` for no replay. The consistency label needs ``RolloutBatch.answer`` (without it
    nothing is labelled and every fresh rollout is kept; a warning says so once).

    ``preset="paper"``: CBS as published (the ten features of
    [`PAPER_FEATURES`][banditlib.adapters.rlvr.PAPER_FEATURES], normalised; LinUCB with ``alpha = 0.1``; the top half of
    each group; the round's performance gain [`RoundGain`][banditlib.adapters.rlvr.RoundGain] as the label shared by
    every selected rollout; mode ``"group"``). Every argument given explicitly replaces that part of the preset.

    **Modes** (``name`` is ``scheduler`` for the default, ``scheduler-<mode>`` for another mode, ``cbs-<mode>``
    with the paper preset):

    * ``"group"``: the rule keeps rows of the fresh batch; no replay.
    * ``"global"``: pick ``K = N + reuse`` rollouts over the fresh batch *and* the older buffered rollouts
      together, among those the rule admits on their score, best scores first (``N`` = fresh rollouts);
      picked fresh rows go to ``fresh``, picked old rows to ``replay``: the fresh/old mix is learned.
    * ``"both"``: the rule on the fresh batch first, then the pick of ``K = n_kept + reuse`` over the kept
      fresh rows and the admitted older buffered rows (dropped fresh rows stay in the buffer and may be
      replayed later).

    If fewer candidates than ``K`` exist (early rounds), all are taken. Replayed rows have weight 1; fresh
    rows the rule's weight.

    **Replay** (modes ``"global"`` and ``"both"``): ``replay="score"`` (the paper's) takes the ``K`` best
    scores over the candidates as above. ``replay="priority"`` keeps every fresh row the rule keeps (all
    fresh rows it admits in ``"global"`` mode) and adds ``reuse`` buffered rows (``round(replay_ratio * n)``
    with ``replay_ratio``, ``n`` the fresh rows kept) drawn without replacement, among the buffered rows the
    rule admits, with probability proportional to ``(|A| + 1e-6) ** replay_alpha`` (the rule of
    [`PriorityReplay`][banditlib.adapters.rlvr.PriorityReplay]; the age cap is ``buffer_rounds - 1``).

    **Scoring.** One ``policy.select`` call scores every candidate of the round as one row ``(1, M, d)`` (a
    Thompson-sampling policy draws one posterior sample per round); ties are broken by a seeded generator.

    **Learning.** [`observe`][banditlib.adapters.rlvr.Scheduler.observe] asks the label for round ``t``'s values and
    updates the policy with the contexts the rows had when they were scored. Per-rollout labels
    (``label.rows == "all"``) update with every labelled fresh rollout as one decision row ``(1, n, d)`` (a forgetting
    policy discounts once per round). A shared round label updates with the selected rows, weighted by ``weighting``:
    ``"round"`` gives each of the ``n`` rows weight ``1/n`` (features and label scaled by ``1/sqrt(n)``, exact for the
    ridge policies, whose ``weights_by_scaling`` is true: the round counts as one observation); ``"row"`` passes
    rows unscaled (the choice for neural policies); ``"mean"`` updates with the mean feature vector of the
    selection. Default: ``"round"`` for ridge policies with a shared label, ``"row"`` otherwise.

    **Cost.** Vectorised throughout (ring-buffer slices, one scoring call, integer top-k; no Python loop over
    rollouts or groups). On a machine whose cores are all busy, torch's intra-op threads can make these
    mid-sized operations many times slower; ``torch.set_num_threads(1)`` in the scheduling process avoids it.

    Args:
        policy: a shared-parameter banditlib policy with ``dim = featurizer.dim``, or ``None`` for the preset's
            LinUCB.
        mode: ``"group"``, ``"global"`` or ``"both"`` (default: ``"both"``; ``"group"`` with the paper preset).
        keep_fraction: shorthand for ``rule=TopFraction(keep_fraction)``, in ``(0, 1]``.
        reuse: extra rows of budget for the replay pick (``>= 0``; see the modes; default 0, or the default
            preset's ``replay_ratio = 0.5``).
        buffer_rounds: rounds the buffer holds, ``>= 1`` (the current round counts).
        featurizer: the rollout features (default: the preset's).
        reward: shorthand for ``label=RoundGain(reward)``: the paper's gain with its entropy term.
        seed: seed of the tie-breaking generator and of the default policy (``None``: drawn and saved).
        rule: a [`SelectionRule`][banditlib.adapters.rlvr.SelectionRule] (default: the preset's).
        label: a [`RolloutLabel`][banditlib.adapters.rlvr.RolloutLabel] (default: the preset's).
        preset: ``"default"`` or ``"paper"``.
        max_buffer_rollouts: optional cap on buffered rollouts.
        label_decay: shorthand for the round-gain label's standardisation decay, in ``[0, 1)``.
        weighting: ``"round"``, ``"row"``, ``"mean"`` or ``None`` (automatic); ``"round"`` and ``"mean"`` only
            with a shared label.
        replay: ``"score"`` or ``"priority"`` (see above; default: the preset's, ``"priority"`` for the default).
        replay_ratio: with ``replay="priority"``, replayed rows per kept fresh row (``>= 0``; replaces ``reuse``).
        replay_alpha: the priority exponent (``>= 0``).

    Raises:
        InvalidInputError: an argument out of range, a policy that does not fit the featurizer, or shorthands
            that contradict an explicit ``rule``/``label``.

    Examples:
        >>> import torch
        >>> def gen(t):  # 4 prompts x 4 rollouts; answers 0-2, so identical answers meet in a group
        ...     g = torch.Generator().manual_seed(t)
        ...     return RolloutBatch.from_tensors(group=torch.arange(4).repeat_interleave(4),
        ...         reward=torch.rand(16, generator=g).round(), entropy=torch.rand(16, generator=g),
        ...         length=torch.randint(5, 50, (16,), generator=g),
        ...         answer=torch.randint(0, 3, (16,), generator=g), round=t)
        >>> sch = RolloutScheduler(seed=0)
        >>> s = sch.schedule(gen(0)); s.kept_share, len(s.replay)   # nothing learned, nothing buffered yet
        (1.0, 0)
        >>> sch.observe(gen(1)) is not None            # the consistency labels of round 0
        True
        >>> s = sch.schedule(gen(1)); len(s.replay) == round(0.5 * len(s.fresh))   # priority replay
        True
        >>> paper = RolloutScheduler(preset="paper", mode="both", reuse=2, seed=0)
        >>> s = paper.schedule(gen(0)); s.fresh.shape, len(s.replay)   # two of four per group
        (torch.Size([8]), 0)

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026. Li et al. A contextual-bandit approach to personalized news article
        recommendation, WWW 2010 (LinUCB).
    """

    def __init__(
        self,
        policy: Policy | None = None,
        mode: str | None = None,
        keep_fraction: float | None = None,
        reuse: int | None = None,
        buffer_rounds: int = 4,
        featurizer: RolloutFeaturizer | None = None,
        reward: GainReward | None = None,
        seed: int | None = None,
        *,
        rule: SelectionRule | None = None,
        label: RolloutLabel | None = None,
        preset: str = "default",
        max_buffer_rollouts: int | None = None,
        label_decay: float | None = None,
        weighting: str | None = None,
        replay: str | None = None,
        replay_ratio: float | None = None,
        replay_alpha: float = 0.5,
    ) -> None:
        super().__init__()
        where = "RolloutScheduler()"
        if preset not in PRESETS:
            raise InvalidInputError(f"{where}: `preset` must be one of {PRESETS}; got {preset!r}.")
        self.preset = preset
        default = preset == "default"
        mode = ("both" if default else "group") if mode is None else mode
        if mode not in MODES:
            raise InvalidInputError(f"{where}: `mode` must be one of {MODES}; got {mode!r}.")
        self.mode = mode
        self.name = f"cbs-{mode}" if not default else ("scheduler" if mode == "both" else f"scheduler-{mode}")
        replay = ("priority" if default else "score") if replay is None else replay
        if replay not in REPLAYS:
            raise InvalidInputError(f"{where}: `replay` must be one of {REPLAYS}; got {replay!r}.")
        self.replay = replay
        if replay_ratio is not None and replay != "priority":
            raise InvalidInputError(f"{where}: `replay_ratio` sets the priority replay's size; pass replay='priority'.")
        if replay_ratio is not None and reuse is not None:
            raise InvalidInputError(f"{where}: give `reuse` (a count) or `replay_ratio` (a fraction), not both.")
        if replay_ratio is None and reuse is None and default and replay == "priority" and mode != "group":
            replay_ratio = DEFAULT_REPLAY_RATIO
        self.replay_ratio = (
            None if replay_ratio is None else V.check_float(replay_ratio, where, "replay_ratio", low=0.0)
        )
        self.reuse: int = V.check_int(0 if reuse is None else reuse, where, "reuse", low=0)  # type: ignore[assignment]
        self.replay_alpha = V.check_float(replay_alpha, where, "replay_alpha", low=0.0)
        self.buffer = RolloutBuffer(
            V.check_int(buffer_rounds, where, "buffer_rounds"),  # type: ignore[arg-type]
            V.check_int(max_buffer_rollouts, where, "max_buffer_rollouts", allow_none=True),
        )
        # The rule: explicit, or the keep_fraction shorthand, or the preset's.
        if rule is not None and not isinstance(rule, SelectionRule):
            raise InvalidInputError(f"{where}: `rule` must be a SelectionRule or None; got {rule!r:.80}.")
        if rule is not None and keep_fraction is not None:
            raise InvalidInputError(f"{where}: give `rule` or its shorthand `keep_fraction`, not both.")
        if rule is None:
            if keep_fraction is not None:
                rule = TopFraction(keep_fraction)
            else:
                rule = TopFraction(0.5) if preset == "paper" else Threshold(0.0)
        self.rule = rule
        # The label: explicit, or the round-gain shorthands, or the preset's.
        if label is not None and not isinstance(label, RolloutLabel):
            raise InvalidInputError(f"{where}: `label` must be a RolloutLabel or None; got {label!r:.80}.")
        if reward is not None and not isinstance(reward, GainReward):
            raise InvalidInputError(f"{where}: `reward` must be a GainReward or None.")
        gain_args = reward is not None or label_decay is not None
        if label is not None and gain_args:
            raise InvalidInputError(
                f"{where}: `reward` and `label_decay` configure the round-gain label; with an explicit `label` pass "
                "them to it (RoundGain(reward=..., decay=...))."
            )
        if label is None:
            if gain_args or preset == "paper":
                decay = 0.95 if label_decay is None else label_decay
                label = RoundGain(reward, V.check_float(decay, where, "label_decay", low=0.0, high=1.0, high_open=True))
            else:
                label = ConsistencyLabel()
        self.label = label
        if featurizer is not None and not isinstance(featurizer, RolloutFeaturizer):
            raise InvalidInputError(f"{where}: `featurizer` must be a RolloutFeaturizer or None.")
        if featurizer is None:
            featurizer = RolloutFeaturizer(PAPER_FEATURES) if preset == "paper" else RolloutFeaturizer()
        self.featurizer = featurizer
        checked = V.check_seed(seed, where)
        self.seed: int = secrets.randbits(63) if checked is None else checked
        d = self.featurizer.dim
        if policy is None:
            alpha, forget = (PAPER_ALPHA, PAPER_FORGET) if preset == "paper" else (DEFAULT_ALPHA, DEFAULT_FORGET)
            policy = LinUCB(dim=d, alpha=alpha, forget=forget, seed=self.seed)
        if not isinstance(policy, Policy) or policy.arms is not None or policy.dim != d:
            raise InvalidInputError(
                f"{where}: `policy` must be a shared-parameter banditlib policy (arms=None) with dim = "
                f"featurizer.dim = {d}; got {policy!r:.120}."
            )
        self.policy = policy
        ridge = policy.weights_by_scaling  # a round of n rows counts as one observation exactly
        if weighting not in (None, "round", "row", "mean"):
            raise InvalidInputError(f"{where}: `weighting` must be 'round', 'row', 'mean' or None; got {weighting!r}.")
        if weighting in ("round", "mean") and not self.label.shared:
            raise InvalidInputError(
                f"{where}: `weighting={weighting!r}` is for a label shared by the round's rows; {self.label!r} labels "
                "each rollout (use 'row' or None)."
            )
        self.weighting: str = weighting or ("round" if ridge and self.label.shared else "row")
        self._decisions = 0
        self._pend_x = torch.zeros(0, d)
        self._pend_saved: dict[str, torch.Tensor] = {}
        self._warned = False
        empty = torch.zeros(0, dtype=torch.long)
        self._last_pos = (empty, empty)  # buffer positions of the last schedule's fresh and replayed rows

    @property
    def uses_probe(self) -> bool:  # type: ignore[override]
        """Whether the label reads a trusted probe batch (an [`InfluenceLabel`][banditlib.adapters.rlvr.InfluenceLabel]
        that may)."""
        return isinstance(self.label, InfluenceLabel) and self.label.probe != "next"

    @property
    def replays(self) -> bool:  # type: ignore[override]
        """Whether schedules may replay buffered rollouts: modes ``"global"`` and ``"both"``."""
        return self.mode != "group"

    @property
    def keep_fraction(self) -> float | None:
        """The per-group fraction of a [`TopFraction`][banditlib.adapters.rlvr.TopFraction] rule (``None`` for other
        rules)."""
        return self.rule.keep_fraction if isinstance(self.rule, TopFraction) else None

    # ------------------------------------------------------------------------------------------ deciding

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        n = len(batch)
        device = batch.group.device
        feat, buf = self.featurizer, self.buffer
        self.label.check(batch, where)
        self._warn_once(batch)
        layout = GroupLayout.of(batch.group)
        static = feat.static(batch, layout)
        buf.check_compatible(batch, where, static)
        zeros = torch.zeros(n, device=device)
        parts = []
        if self.mode != "group" and len(buf):
            skip = buf.evictions(n)
            n_old = len(buf) - sum(buf.round_counts()[:skip])
            age = (round_ - buf.live_column("round", skip)).to(torch.float32)
            uses = buf.live_column("uses", skip).to(torch.float32)
            parts.append((buf.live_column("features", skip), age, uses))
        else:
            skip, n_old = 0, 0
        parts.append((static, zeros, zeros))
        dyn_age = torch.cat([p[1] for p in parts]) if n_old else zeros
        dyn_uses = torch.cat([p[2] for p in parts]) if n_old else zeros
        stats = feat.merged_parts(static, dyn_age, dyn_uses)
        x = feat.contexts(parts, stats)
        counter = self.policy.rng_counter.clone()
        try:
            sel = self.policy.select(x[None], k=1)
        except BaseException:
            self.policy.rng_counter.copy_(counter)
            raise
        scores = sel.scores[0].to(device=device, dtype=torch.float32)
        mean = sel.mean[0].to(device=device, dtype=torch.float32)
        keys = rank_keys(scores, tie_keys(self.seed, self._decisions, n_old + n, device))
        fresh_w_all = torch.zeros(n, device=device)
        if self.mode == "global":
            admitted = self.rule.passes(scores)
            cand = torch.nonzero(admitted).squeeze(1)
            K = min(n + self.reuse, cand.shape[0])
            fresh_w_all[:] = 1.0
        else:
            kept, kept_w = self.rule.decide(scores[n_old:], keys[n_old:], layout)
            fresh_w_all[kept] = kept_w
            if self.mode == "both":
                old_ok = torch.nonzero(self.rule.passes(scores[:n_old])).squeeze(1)
                cand = torch.cat([old_ok, kept + n_old])
                K = min(kept.shape[0] + self.reuse, cand.shape[0])
        if self.mode == "group":
            chosen_old = torch.zeros(0, dtype=torch.long, device=device)
            chosen_fresh, picked, old_pos = kept, kept, chosen_old
        elif self.replay == "priority":
            # Fresh-anchored: every fresh row the rule keeps, plus old rows the rule admits, drawn without
            # replacement with probability proportional to (|A| + 1e-6) ** alpha.
            fresh_pos = kept + n_old if self.mode == "both" else cand[cand >= n_old]
            old_ok = cand[cand < n_old]
            want = self.reuse if self.replay_ratio is None else round(self.replay_ratio * fresh_pos.shape[0])
            want = min(want, old_ok.shape[0])
            draw = old_ok[:0]
            if want:
                adv = buf.live_column("advantage", skip)[old_ok].abs().double().cpu()
                gen = torch.Generator().manual_seed(
                    int(tie_keys(self.seed, self._decisions, 1, torch.device("cpu"))[0])
                )
                draw = old_ok[torch.multinomial((adv + 1e-6) ** self.replay_alpha, want, generator=gen).to(device)]
            picked = torch.cat([draw.sort().values, fresh_pos])
            if self.mode == "global":
                fresh_w_all[:] = 0.0
                fresh_w_all[fresh_pos - n_old] = 1.0
            is_old = picked < n_old
            chosen_old = buf.slots_of(picked[is_old], skip)
            chosen_fresh = (picked[~is_old] - n_old).sort().values
            old_pos = picked[is_old]
        else:
            picked = cand[torch.topk(keys[cand], K).indices] if K else cand[:0]
            is_old = picked < n_old
            chosen_old = buf.slots_of(picked[is_old], skip)
            chosen_fresh = (picked[~is_old] - n_old).sort().values
            old_pos = picked[is_old]
        replay = buf.rows(chosen_old) if chosen_old.numel() else RolloutBatch.empty_like(batch)
        pred = self._predicted(mean, picked)
        # Commit: nothing below can fail on valid input (the buffer and the label checked the batch above).
        feat.set_stats(stats)
        buf.push(batch, static)
        # Positions in the buffer's live order after the push (the evicted rounds were exactly the skipped
        # ones), stable under save/load; they stay valid until the next push.
        self._last_pos = (chosen_fresh + (len(buf) - n), old_pos.clone())
        buf.add_uses(buf.slots_of(torch.cat(self._last_pos)))
        rows = x[n_old:] if self.label.rows == "all" else x[picked]
        self._pend_x = rows.detach().clone()
        self._pend_saved = self.label.begin(batch, layout, chosen_fresh)
        self._decisions += 1
        return Schedule(
            fresh=chosen_fresh,
            fresh_weight=fresh_w_all[chosen_fresh].clone(),
            replay=replay,
            replay_weight=torch.ones(len(replay), device=device),
            scores=scores[n_old:].clone(),
            predicted_gain=pred,
        )

    def _predicted(self, mean: torch.Tensor, picked: torch.Tensor) -> float:
        """The model's prediction of the round's label: the gain for a shared round label (in gain units),
        the mean predicted value of the trained rows otherwise; NaN when there is nothing to predict."""
        if picked.numel() == 0:
            return math.nan
        m = float(mean[picked].double().mean())
        if isinstance(self.label, RoundGain):
            count, mu, var = self.label.scale
            return mu + math.sqrt(var) * m if count >= 2 and var > 0 else math.nan
        return m

    def _warn_once(self, batch: RolloutBatch) -> None:
        if not self._warned and isinstance(self.label, ConsistencyLabel) and batch.answer is None:
            self._warned = True
            warnings.warn(
                "RolloutScheduler: the batch has no `answer` ids, so the consistency label learns nothing and "
                "every rollout is kept; pass answer ids (RolloutBatch.from_tensors(answer=...), or answer_fn= in "
                "the trainer adapters) or choose another label.",
                stacklevel=4,
            )

    # ------------------------------------------------------------------------------------------ learning

    def _observe(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> float | None:
        self.label.check(batch, where)
        backup = {k: v.clone() for k, v in self.label.state_dict().items()}
        try:
            mask, values = self.label.finish(self._pend_saved, batch, probe, where)
            x = self._pend_x
            if self.label.shared:
                mask, values = mask.expand(x.shape[0]), values.expand(x.shape[0])
            if mask.shape != (x.shape[0],) or values.shape != (x.shape[0],):
                raise InvalidInputError(
                    f"{where}: {self.label!r} returned labels of shape {tuple(values.shape)} for {x.shape[0]} rows."
                )
            y = values[mask].to(torch.float64)
            if not V.all_finite(y):
                raise InvalidInputError(
                    f"{where}: {self.label!r} produced a NaN or infinite label; nothing was learned."
                )
            rows = x[mask.to(x.device)]
            self._update(rows, y)
        except BaseException:
            self.label.load_state_dict(backup, where)
            raise
        self._pend_x, self._pend_saved = x[:0], {}
        if isinstance(self.label, RoundGain):
            return self.label.last_gain
        return float(y.mean()) if y.numel() else None

    def _update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        n = x.shape[0]
        if n == 0:
            return
        dt = self.policy.dtype
        if self.weighting == "mean":
            z = float(y[0])
            self.policy.update(x.mean(dim=0)[None, None], torch.zeros(1, 1, dtype=torch.long), torch.full((1, 1), z))
            return
        w = 1.0 / math.sqrt(n) if self.weighting == "round" else 1.0
        self.policy.update(x[None] * w, torch.arange(n)[None], (y.to(dt) * w)[None])

    def record_clip_ratio(self, fresh: torch.Tensor, replay: torch.Tensor) -> None:
        """Store the clip ratios measured when training on the last schedule's rows, so that the buffered
        copies (their ``clip_ratio`` field and feature) describe their last optimisation, as the feature means.
        Call it after training on a schedule and before the next ``schedule``; optional.

        Args:
            fresh: ``(n_fresh,)`` clip ratios of ``schedule.fresh``, in that order, in ``[0, 1]``.
            replay: ``(n_replay,)`` clip ratios of ``schedule.replay``, in that order.

        Raises:
            StateError: no schedule yet.
            InvalidInputError: wrong shapes, values outside ``[0, 1]`` or not finite; nothing changes.
        """
        where = "RolloutScheduler.record_clip_ratio()"
        if self._last_round is None:
            raise StateError(f"{where}: call schedule() first; there are no selected rollouts to update.")
        vals = []
        for name, value, pos in (("fresh", fresh, self._last_pos[0]), ("replay", replay, self._last_pos[1])):
            v = V.as_real_tensor(value, where, name, dtype=torch.float32, device=torch.device("cpu"))
            if v.shape != pos.shape:
                raise InvalidInputError(
                    f"{where}: `{name}` must have shape {V.fmt_shape(pos.shape)} (one value per {name} row of the "
                    f"last schedule); got {V.fmt_shape(v.shape)}."
                )
            if bool(((v < 0) | (v > 1)).any()):
                raise InvalidInputError(f"{where}: `{name}` must hold clip ratios in [0, 1].")
            vals.append(v)
        slots = self.buffer.slots_of(torch.cat(self._last_pos))
        values = torch.cat(vals)
        self.buffer.assign("clip_ratio", slots, values)
        if "clip_ratio" in self.featurizer.static_names:
            self.buffer.assign("features", slots, values, self.featurizer.static_names.index("clip_ratio"))
