"""CBS, the contextual rollout bandit: :class:`RolloutScheduler`.

Each rollout is an arm described by its features (:class:`~.features.RolloutFeaturizer`); a bandit policy
scores them; the scheduler keeps the best-scored rollouts of each group (noise-aware intra-group selection)
and/or picks the best-scored rollouts over the buffer of recent rounds (historical reuse). One round later
the performance gain of the round (:class:`~.reward.GainReward`) arrives and becomes the reward of every
rollout that was selected.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from typing import Any

import torch

from banditlib import _validation as V
from banditlib.errors import InvalidInputError, StateError
from banditlib.policies import LinTS, LinUCB, Policy
from banditlib.policies.base import registered_policies

from ._base import Schedule, Scheduler, keep_counts, rank_keys, tie_keys, top_per_group
from .batch import GroupLayout, RolloutBatch
from .buffer import RolloutBuffer
from .features import RolloutFeaturizer
from .reward import GainReward

__all__ = ["MODES", "RolloutScheduler"]

MODES = ("group", "global", "both")
# Default policy: LinUCB over the normalised features, see the class docstring for alpha; forget = 0.99 per
# round remembers about 100 rounds, long enough to average the noisy gains and short enough to follow the
# drift of a model in training.
DEFAULT_ALPHA = 0.1
DEFAULT_FORGET = 0.99
_LABEL_CLIP = 5.0


class RolloutScheduler(Scheduler):
    """CBS: choose which rollouts to train on with a contextual bandit, rewarded by the round's gain.

    **Modes** (``name`` is ``cbs-<mode>``):

    * ``"group"``: keep the ``ceil(keep_fraction * n_g)`` best-scored rollouts of each group (at least one,
      so a group of one is kept); no replay.
    * ``"global"``: no per-group filter; pick ``K = N + reuse`` rollouts over the fresh batch *and* the older
      buffered rollouts together (``N`` = fresh rollouts). Picked fresh rows go to ``fresh``, picked old rows
      to ``replay``: the fresh/old mix is learned. ``reuse = 0`` keeps plain GRPO's number of training rows
      (equal backward passes) and only learns the mix; ``reuse > 0`` adds that many rows of budget.
    * ``"both"``: the group step first, then the global pick of ``K = n_kept + reuse`` over the kept fresh
      rows and the older buffered rows (the fresh rows the group step dropped are not candidates this round;
      they stay in the buffer and may be replayed later).

    If fewer candidates than ``K`` exist (early rounds), all are taken. Every kept row has weight 1.

    **Scoring.** One ``policy.select`` call scores every candidate of the round as one row ``(1, M, d)``: a
    Thompson-sampling policy then draws one posterior sample per round, so the whole selection explores
    coherently (the round's single label judges it as a whole); the per-group and global top-k are taken
    from those scores by the scheduler (ragged groups need a different ``k`` per group), ties broken by a
    seeded generator.

    **Learning.** :meth:`observe` computes ``r_t`` from the next round and updates the policy with the
    features the selected rollouts had when they were selected, all labelled ``r_t``:

    * *Label scale.* Gains are differences of mean rewards (about ``1e-2``) and drift as training slows, so
      the label is standardised online, ``z = clip((r - m) / s, -5, 5)``, with an exponentially weighted mean
      ``m`` and standard deviation ``s`` of the gains (decay ``label_decay``, exact averages over the first
      rounds; ``z = 0`` until the gains vary). A unit-scale label is what makes ``alpha = 1`` meaningful.
    * *One round, one discount.* The rows of a round go to ``policy.update`` as one decision row
      ``(1, n, d)``, so a forgetting policy discounts once per round, not once per rollout.
    * *Weighting.* ``weighting="round"`` gives each of the ``n`` rows weight ``1/n`` (features and label
      scaled by ``1/sqrt(n)``, which is exact for the ridge policies LinUCB and LinTS): the ``n`` rows share a
      single noisy label, so the round counts as one observation and the confidence bonus shrinks with
      rounds, not rollouts. ``"row"`` passes rows unscaled (the only sensible choice for neural policies,
      whose inputs must not be rescaled); the default is ``"round"`` for ridge policies, ``"row"`` otherwise.
      ``"mean"`` updates with one row per round, the mean feature vector of the selection: the exact
      least-squares model of a shared label ``r_t = mean_i x_i^T theta`` for linear policies (the per-row
      updates add the within-round covariance to ``A``, which shrinks ``theta`` but not its direction).

    **Cost.** Vectorised throughout (ring-buffer slices, one scoring call, integer top-k; no Python loop over
    rollouts or groups). For 512 prompts x 16 rollouts and a 65,536-rollout buffer, one CPU thread: about 3 ms
    in ``"group"`` mode and 10 ms in ``"global"`` / ``"both"``, of which about 4 ms is LinUCB scoring the
    73,728 candidates. On a machine whose cores are all busy, torch's intra-op threads can make these
    mid-sized operations many times slower; ``torch.set_num_threads(1)`` in the scheduling process avoids it.

    **Default policy** (``policy=None``): ``LinUCB(alpha=0.1, forget=0.99)`` over the featurizer's columns.
    With ten features, one noisy label per round and a few hundred rounds in a run, a linear model is what
    the data can support; its update and scoring take well under a millisecond, where the neural bandits
    (NeuralUCB, NeuralLinUCB) train a network and would spend the 10 ms budget of ``schedule`` on scoring 65k
    buffered rollouts. ``alpha = 0.1`` because each round's fresh rollouts are new random draws, so the
    selection's features vary from round to round without help (free exploration); on a synthetic stream
    where shorter rollouts caused larger gains (noisy labels, 60 rounds, 4 seeds) ``alpha = 0.1`` kept
    0.81-0.96 of the right half of each group where ``alpha = 1`` kept 0.52-0.72 (0.5 is chance). Pass
    ``policy=banditlib.NeuralUCB(dim=featurizer.dim, ...)`` or a ``LinTS`` to use another.

    Args:
        policy: a shared-parameter banditlib policy with ``dim = featurizer.dim``, or ``None``.
        mode: ``"group"``, ``"global"`` or ``"both"``.
        keep_fraction: fraction of each group kept by the group step, in ``(0, 1]``.
        reuse: extra rows of budget for the global pick (``>= 0``; see the modes).
        buffer_rounds: rounds the buffer holds, ``>= 1`` (the current round counts).
        featurizer: the rollout features (default :class:`RolloutFeaturizer` ``()``: ten features + intercept).
        reward: the gain (default :class:`GainReward` ``()``).
        seed: seed of the tie-breaking generator and of the default policy (``None``: drawn and saved).
        max_buffer_rollouts: optional cap on buffered rollouts.
        label_decay: decay of the label's running mean and variance, in ``[0, 1)``.
        weighting: ``"round"``, ``"row"`` or ``None`` (automatic).

    Raises:
        InvalidInputError: an argument out of range, or a policy that does not fit the featurizer.

    Example:
        >>> import torch
        >>> def gen(t):
        ...     g = torch.Generator().manual_seed(t)
        ...     return RolloutBatch.from_tensors(group=torch.arange(4).repeat_interleave(4),
        ...         reward=torch.rand(16, generator=g).round(), entropy=torch.rand(16, generator=g),
        ...         length=torch.randint(5, 50, (16,), generator=g), round=t)
        >>> sch = RolloutScheduler(mode="both", keep_fraction=0.5, reuse=2, seed=0)
        >>> s = sch.schedule(gen(0))
        >>> s.fresh.shape, len(s.replay)        # two of four per group; nothing older yet
        (torch.Size([8]), 0)
        >>> gain = sch.observe(gen(1))
        >>> s = sch.schedule(gen(1)); s.fresh.shape[0] + len(s.replay)
        10

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026. Li et al. A contextual-bandit approach to personalized news article
        recommendation, WWW 2010 (LinUCB).
    """

    def __init__(
        self,
        policy: Policy | None = None,
        mode: str = "group",
        keep_fraction: float = 0.5,
        reuse: int = 0,
        buffer_rounds: int = 4,
        featurizer: RolloutFeaturizer | None = None,
        reward: GainReward | None = None,
        seed: int | None = None,
        *,
        max_buffer_rollouts: int | None = None,
        label_decay: float = 0.95,
        weighting: str | None = None,
    ) -> None:
        super().__init__()
        where = "RolloutScheduler()"
        if mode not in MODES:
            raise InvalidInputError(f"{where}: `mode` must be one of {MODES}; got {mode!r}.")
        self.mode = mode
        self.name = f"cbs-{mode}"
        self.keep_fraction = V.check_float(keep_fraction, where, "keep_fraction", low=0.0, high=1.0, low_open=True)
        self.reuse: int = V.check_int(reuse, where, "reuse", low=0)  # type: ignore[assignment]
        self.buffer = RolloutBuffer(
            V.check_int(buffer_rounds, where, "buffer_rounds"),  # type: ignore[arg-type]
            V.check_int(max_buffer_rollouts, where, "max_buffer_rollouts", allow_none=True),
        )
        if featurizer is not None and not isinstance(featurizer, RolloutFeaturizer):
            raise InvalidInputError(f"{where}: `featurizer` must be a RolloutFeaturizer or None.")
        if reward is not None and not isinstance(reward, GainReward):
            raise InvalidInputError(f"{where}: `reward` must be a GainReward or None.")
        self.featurizer = featurizer if featurizer is not None else RolloutFeaturizer()
        self.reward = reward if reward is not None else GainReward()
        checked = V.check_seed(seed, where)
        self.seed: int = secrets.randbits(63) if checked is None else checked
        self.label_decay = V.check_float(label_decay, where, "label_decay", low=0.0, high=1.0, high_open=True)
        d = self.featurizer.dim
        if policy is None:
            policy = LinUCB(dim=d, alpha=DEFAULT_ALPHA, forget=DEFAULT_FORGET, seed=self.seed)
        if not isinstance(policy, Policy) or policy.arms is not None or policy.dim != d:
            raise InvalidInputError(
                f"{where}: `policy` must be a shared-parameter banditlib policy (arms=None) with dim = "
                f"featurizer.dim = {d}; got {policy!r:.120}."
            )
        self.policy = policy
        ridge = isinstance(policy, (LinUCB, LinTS))
        if weighting not in (None, "round", "row", "mean"):
            raise InvalidInputError(f"{where}: `weighting` must be 'round', 'row' or None; got {weighting!r}.")
        self.weighting: str = weighting or ("round" if ridge else "row")
        self._decisions = 0
        self._label = (0.0, 0.0, 0.0)  # count, mean, variance of the gains
        self._pend_x = torch.zeros(0, d)
        self._pend_stats = (0.0, 0.0)  # (V_t, E_t) of the round awaiting its label
        empty = torch.zeros(0, dtype=torch.long)
        self._last_pos = (empty, empty)  # buffer positions of the last schedule's fresh and replayed rows

    @property
    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "keep_fraction": self.keep_fraction,
            "reuse": self.reuse,
            "buffer_rounds": self.buffer.rounds,
            "seed": self.seed,
            "max_buffer_rollouts": self.buffer.max_rollouts,
            "label_decay": self.label_decay,
            "weighting": self.weighting,
            "reward": self.reward.config,
            "featurizer": self.featurizer.config,
        }

    # ------------------------------------------------------------------------------------------ deciding

    def _schedule(self, batch: RolloutBatch, round_: int, where: str) -> Schedule:
        n = len(batch)
        device = batch.group.device
        feat, buf = self.featurizer, self.buffer
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
        if self.mode == "global":
            pool = torch.arange(n, device=device)
        else:
            keep = keep_counts(layout.counts, self.keep_fraction)
            pool = top_per_group(keys[n_old:], layout.padded, layout.mask, keep)
        if self.mode == "group":
            chosen_old, chosen_fresh, picked = torch.zeros(0, dtype=torch.long, device=device), pool, pool
            old_pos = chosen_old
        else:
            if self.mode == "global":  # every candidate competes
                K = min(n + self.reuse, n_old + n)
                picked = torch.topk(keys, K).indices
            else:
                cand = torch.cat([torch.arange(n_old, device=device), pool + n_old])
                K = min(pool.shape[0] + self.reuse, cand.shape[0])
                picked = cand[torch.topk(keys[cand], K).indices]
            is_old = picked < n_old
            chosen_old = buf.slots_of(picked[is_old], skip)
            chosen_fresh = (picked[~is_old] - n_old).sort().values
            old_pos = picked[is_old]
        replay = buf.rows(chosen_old) if chosen_old.numel() else RolloutBatch.empty_like(batch)
        pred = math.nan
        count, m, v = self._label
        if count >= 2 and v > 0:
            pred = m + math.sqrt(v) * float(mean[picked].double().mean())
        # Commit: nothing below can fail on valid input (the buffer checked the batch above).
        feat.set_stats(stats)
        buf.push(batch, static)
        # Positions in the buffer's live order after the push (the evicted rounds were exactly the skipped
        # ones), stable under save/load; they stay valid until the next push.
        self._last_pos = (chosen_fresh + (len(buf) - n), old_pos.clone())
        buf.add_uses(buf.slots_of(torch.cat(self._last_pos)))
        self._pend_x = x[picked].detach().clone()
        self._pend_stats = GainReward.round_stats(batch)
        self._decisions += 1
        ones = torch.ones(chosen_fresh.shape[0], device=device)
        return Schedule(
            fresh=chosen_fresh,
            fresh_weight=ones,
            replay=replay,
            replay_weight=torch.ones(len(replay), device=device),
            scores=scores[n_old:].clone(),
            predicted_gain=pred,
        )

    # ------------------------------------------------------------------------------------------ learning

    def _observe(self, batch: RolloutBatch, round_: int, where: str) -> float:
        v_next, e_next = GainReward.round_stats(batch)
        gain = self.reward.gain(*self._pend_stats, v_next, e_next)
        count, m, v = self._label
        count += 1
        beta = min(self.label_decay, 1.0 - 1.0 / count)
        delta = gain - m
        m = m + (1.0 - beta) * delta
        v = beta * (v + (1.0 - beta) * delta * delta)
        z = 0.0 if v <= 0 else max(-_LABEL_CLIP, min(_LABEL_CLIP, (gain - m) / math.sqrt(v)))
        x = self._pend_x
        n = x.shape[0]
        if n and self.weighting == "mean":
            self.policy.update(x.mean(dim=0)[None, None], torch.zeros(1, 1, dtype=torch.long), torch.full((1, 1), z))
        elif n:
            w = 1.0 / math.sqrt(n) if self.weighting == "round" else 1.0
            actions = torch.arange(n)[None]
            self.policy.update(x[None] * w, actions, torch.full((1, n), z * w))
        self._label = (count, m, v)
        self._pend_x = x[:0]
        return gain

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

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        f64 = torch.float64
        state.update(
            seed=torch.tensor(self.seed, dtype=torch.long),
            decisions=torch.tensor(self._decisions, dtype=torch.long),
            label=torch.tensor(self._label, dtype=f64),
            pending_x=self._pend_x.detach().to("cpu", torch.float32).clone(),
            pending_stats=torch.tensor(self._pend_stats, dtype=f64),
            last_fresh_pos=self._last_pos[0].cpu().clone(),
            last_replay_pos=self._last_pos[1].cpu().clone(),
        )
        state.update({f"policy.{k}": v.detach().clone() for k, v in self.policy.state_dict().items()})
        state.update({f"featurizer.{k}": v for k, v in self.featurizer.state_dict().items()})
        state.update({f"buffer.{k}": v for k, v in self.buffer.state_dict().items()})
        return state

    def _load_extra(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}

        try:
            seed = int(state["seed"])
            decisions = int(state["decisions"])
            label = tuple(float(v) for v in torch.as_tensor(state["label"]).reshape(3))
            pend_x = torch.as_tensor(state["pending_x"], dtype=torch.float32)
            pend_stats = tuple(float(v) for v in torch.as_tensor(state["pending_stats"]).reshape(2))
            last_pos = (
                torch.as_tensor(state["last_fresh_pos"]).long().reshape(-1),
                torch.as_tensor(state["last_replay_pos"]).long().reshape(-1),
            )
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: missing or malformed scheduler entries: {exc}") from None
        if pend_x.dim() != 2 or pend_x.shape[1] != self.featurizer.dim or decisions < 0 or label[0] < 0:
            raise InvalidInputError(f"{where}: the scheduler entries do not fit this scheduler's featurizer.")
        backups = (self.policy.state_dict(), self.featurizer.state_dict(), self.buffer.state_dict())
        backups = tuple({k: v.clone() for k, v in b.items()} for b in backups)  # type: ignore[assignment]
        try:
            self.policy.load_state_dict(part("policy."))
            self.featurizer.load_state_dict(part("featurizer."))
            self.buffer.load_state_dict(part("buffer."))
        except BaseException:
            self.policy.load_state_dict(backups[0])
            self.featurizer.load_state_dict(backups[1])
            self.buffer.load_state_dict(backups[2])
            raise
        self.seed, self._decisions = seed, decisions
        self._label = label  # type: ignore[assignment]
        self._pend_x = pend_x.to(self.policy.device)
        self._pend_stats = pend_stats  # type: ignore[assignment]
        self._last_pos = last_pos

    def _meta(self) -> dict[str, str]:
        return {
            "policy_class": type(self.policy).__name__,
            "policy_config": json.dumps(self.policy.config),
            "policy_dtype": str(self.policy.dtype).removeprefix("torch."),
        }

    @classmethod
    def _from_saved(
        cls, config: dict[str, Any], tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str],
        kwargs: dict[str, Any], where: str,
    ) -> Scheduler:  # fmt: skip
        try:
            cfg = dict(config)
            fcfg, rcfg = cfg.pop("featurizer"), cfg.pop("reward")
            if "featurizer" not in kwargs:
                if fcfg.get("extra"):
                    raise InvalidInputError(
                        f"{where}: the scheduler used custom features {fcfg['extra']}; pass the same "
                        "`featurizer=` to load()."
                    )
                fcfg.pop("extra", None)
                kwargs["featurizer"] = RolloutFeaturizer(**fcfg)
            kwargs.setdefault("reward", GainReward(**rcfg))
            if "policy" not in kwargs:
                target = registered_policies().get(meta.get("policy_class", ""))
                if target is None:
                    raise InvalidInputError(f"{where}: unknown policy class {meta.get('policy_class')!r}.")
                kwargs["policy"] = target(
                    **json.loads(meta["policy_config"]), seed=0, dtype=meta.get("policy_dtype", "float32")
                )
            return cls(**{**cfg, **kwargs})
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{where}: the file's arguments do not fit {cls.__name__}: {exc}") from None
