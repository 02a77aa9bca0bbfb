"""The round-gain labels of [`labels`][banditlib.adapters.rlvr.labels]: the paper's
[`RoundGain`][banditlib.adapters.rlvr.RoundGain] and [`BaselinedGain`][banditlib.adapters.rlvr.BaselinedGain]
(imported from there; kept apart for the module's size)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

from .batch import RolloutBatch
from .groups import GroupLayout, group_sum
from .labels import _CLIP, RolloutLabel
from .reward import GainReward

__all__ = ["BaselinedGain", "RoundGain"]


class _Standardiser:
    """Exponentially weighted mean and variance of a scalar label stream, ``z = clip((x - m) / s, -5, 5)``."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.stats = (0.0, 0.0, 0.0)  # count, mean, variance

    def push(self, x: float) -> float:
        count, m, v = self.stats
        count += 1
        beta = min(self.decay, 1.0 - 1.0 / count)
        delta = x - m
        m = m + (1.0 - beta) * delta
        v = beta * (v + (1.0 - beta) * delta * delta)
        self.stats = (count, m, v)
        return 0.0 if v <= 0 else max(-_CLIP, min(_CLIP, (x - m) / math.sqrt(v)))

    def state(self) -> torch.Tensor:
        return torch.tensor(self.stats, dtype=torch.float64)

    def load(self, t: Any, where: str) -> None:
        try:
            vals = tuple(float(v) for v in torch.as_tensor(t, dtype=torch.float64).reshape(3))
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: malformed label statistics: {exc}") from None
        if not all(math.isfinite(v) for v in vals) or vals[0] < 0 or vals[2] < 0:
            raise InvalidInputError(f"{where}: the label statistics must be finite with count, variance >= 0.")
        self.stats = vals  # type: ignore[assignment]


class RoundGain(RolloutLabel):
    """The paper's performance gain of a round, shared by every rollout trained on in it.

    ``r_t`` is [`GainReward`][banditlib.adapters.rlvr.GainReward] of the rounds ``t`` and ``t + 1``; it is standardised
    online (exponentially weighted mean and standard deviation with decay ``decay``, exact averages over the first
    rounds, ``z = clip((r - m) / s, -5, 5)``, ``z = 0`` until the gains vary), since gains are differences of
    mean rewards (about ``1e-2``) that drift as training slows.

    Args:
        reward: the gain (default [`GainReward`][banditlib.adapters.rlvr.GainReward] ``()``).
        decay: in ``[0, 1)``.

    Examples:
        >>> lab = RoundGain()
        >>> mk = lambda r, t: RolloutBatch.from_groups([{"reward": r, "entropy": [0.1, 0.1], "length": [3, 3]}],
        ...                                            round=t)
        >>> saved = lab.begin(mk([0.0, 0.0], 0), None, torch.tensor([0, 1]))
        >>> lab.finish(saved, mk([1.0, 0.0], 1), None, "example")[1].tolist()  # first gain: no scale yet
        [0.0]
        >>> lab.last_gain
        0.5

    References:
        Lu et al. Contextual Rollout Bandits for Reinforcement Learning with Verifiable Rewards, arXiv
        2602.08499, 2026.
    """

    name = "round-gain"
    rows = "selected"
    shared = True

    def __init__(self, reward: GainReward | None = None, decay: float = 0.95) -> None:
        if reward is not None and not isinstance(reward, GainReward):
            raise InvalidInputError(f"RoundGain(): `reward` must be a GainReward or None; got {reward!r:.80}.")
        self.reward = reward if reward is not None else GainReward()
        self.decay = V.check_float(decay, "RoundGain()", "decay", low=0.0, high=1.0, high_open=True)
        self._std = _Standardiser(self.decay)
        self.last_gain = math.nan

    @property
    def config(self) -> dict[str, Any]:
        return {"reward": self.reward.config, "decay": self.decay}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RoundGain:
        cfg = dict(config)
        return cls(reward=GainReward(**cfg.pop("reward", {})), **cfg)

    @property
    def scale(self) -> tuple[float, float, float]:
        """``(count, mean, variance)`` of the gains so far."""
        return self._std.stats

    def begin(self, batch: RolloutBatch, layout: GroupLayout, selected: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"stats": torch.tensor(GainReward.round_stats(batch), dtype=torch.float64)}

    def gain(self, saved: Mapping[str, torch.Tensor], batch: RolloutBatch) -> float:
        """The raw gain ``r_t`` (before standardisation)."""
        v_t, e_t = (float(v) for v in saved["stats"])
        return self.reward.gain(v_t, e_t, *GainReward.round_stats(batch))

    def finish(
        self, saved: Mapping[str, torch.Tensor], batch: RolloutBatch, probe: RolloutBatch | None, where: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gain = self.gain(saved, batch)
        z = self._std.push(gain)
        self.last_gain = gain
        return torch.ones(1, dtype=torch.bool), torch.full((1,), z, dtype=torch.float64)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"standardiser": self._std.state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        if "standardiser" not in state:
            raise InvalidInputError(f"{where}: the round-gain label's state needs `standardiser`.")
        std = _Standardiser(self.decay)
        std.load(state["standardiser"], where)
        self._std = std


class BaselinedGain(RoundGain):
    """[`RoundGain`][banditlib.adapters.rlvr.RoundGain] with a per-prompt pass-rate baseline as control variate.

    The round gain ``V_{t+1} - V_t`` is dominated by which prompts were drawn (an easy draw raises ``V``
    whatever was trained). With ``b(p)`` the running mean reward of prompt ``p`` (exponentially weighted over
    its earlier appearances, decay ``prompt_decay``; the running mean reward of all prompts for a prompt not
    seen yet), each round's ``V`` is replaced by its residual ``mean_i (r_i - b(p_i))`` measured against the
    baselines as they stood before the round, so a round of easy prompts no longer looks like progress. The
    entropy term is unchanged.

    Args:
        reward: the gain's entropy term (default [`GainReward`][banditlib.adapters.rlvr.GainReward] ``()``).
        decay: standardisation decay, in ``[0, 1)``.
        prompt_key: payload key of the ``(N,)`` integer prompt ids (stable across rounds).
        prompt_decay: in ``[0, 1)``.

    Raises:
        InvalidInputError: (at ``schedule``/``observe``) a batch without ``payload[prompt_key]`` or with ids that
            are not ``(N,)`` integers.

    Examples:
        >>> lab = BaselinedGain()
        >>> mk = lambda r, p, t: RolloutBatch.from_groups([{"reward": r, "entropy": [0.1, 0.1], "length": [3, 3],
        ...                                                 "payload": {"prompt": [p, p]}}], round=t)
        >>> s = lab.begin(mk([1.0, 1.0], 7, 0), None, torch.tensor([0, 1]))
        >>> _ = lab.finish(s, mk([1.0, 1.0], 7, 1), None, "example")
        >>> lab.last_gain  # prompt 7 was known to be easy: no gain
        0.0
    """

    name = "baselined-gain"

    def __init__(
        self, reward: GainReward | None = None, decay: float = 0.95, prompt_key: str = "prompt",
        prompt_decay: float = 0.5,
    ) -> None:  # fmt: skip
        super().__init__(reward, decay)
        if not isinstance(prompt_key, str) or not prompt_key:
            raise InvalidInputError(f"BaselinedGain(): `prompt_key` must be a non-empty string; got {prompt_key!r}.")
        self.prompt_key = prompt_key
        self.prompt_decay = V.check_float(
            prompt_decay, "BaselinedGain()", "prompt_decay", low=0.0, high=1.0, high_open=True
        )
        self._ids = torch.zeros(0, dtype=torch.long)  # sorted prompt ids
        self._means = torch.zeros(0, dtype=torch.float64)
        self._global = (0.0, 0.0)  # rows seen, their mean reward

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "prompt_key": self.prompt_key, "prompt_decay": self.prompt_decay}

    def check(self, batch: RolloutBatch, where: str) -> None:
        p = batch.payload.get(self.prompt_key)
        if p is None or p.shape != (len(batch),) or p.is_floating_point() or p.dtype == torch.bool:
            raise InvalidInputError(
                f"{where}: BaselinedGain needs `payload[{self.prompt_key!r}]`, (N,) integer prompt ids stable across "
                f"rounds; got {None if p is None else (p.dtype, tuple(p.shape))}."
            )

    def _residual(self, batch: RolloutBatch) -> tuple[float, torch.Tensor, torch.Tensor]:
        """``mean(r - b(p))`` and the round's per-prompt mean rewards (ids, means)."""
        ids = batch.payload[self.prompt_key].long().cpu()
        r = batch.reward.double().cpu()
        uniq, inv = torch.unique(ids, return_inverse=True)
        means = group_sum(r, inv, uniq.shape[0])
        means /= torch.bincount(inv, minlength=uniq.shape[0]).double()
        base = torch.full(
            (uniq.shape[0],), self._global[1] if self._global[0] else float(r.mean()), dtype=torch.float64
        )
        if self._ids.numel():
            pos = torch.searchsorted(self._ids, uniq).clamp(max=self._ids.numel() - 1)
            known = self._ids[pos] == uniq
            base = torch.where(known, self._means[pos], base)
        return float((r - base[inv]).mean()), uniq, means

    def _fold(self, uniq: torch.Tensor, means: torch.Tensor, rows: int, mean_r: float) -> None:
        beta = self.prompt_decay
        if self._ids.numel():
            pos = torch.searchsorted(self._ids, uniq).clamp(max=self._ids.numel() - 1)
            known = self._ids[pos] == uniq
            self._means[pos[known]] = beta * self._means[pos[known]] + (1 - beta) * means[known]
            new_ids, new_means = uniq[~known], means[~known]
        else:
            new_ids, new_means = uniq, means
        ids = torch.cat([self._ids, new_ids])
        order = ids.argsort()
        self._ids, self._means = ids[order], torch.cat([self._means, new_means])[order]
        n0, m0 = self._global
        self._global = (n0 + rows, m0 + (mean_r - m0) * rows / (n0 + rows))

    def begin(self, batch: RolloutBatch, layout: GroupLayout, selected: torch.Tensor) -> dict[str, torch.Tensor]:
        resid, uniq, means = self._residual(batch)
        self._fold(uniq, means, len(batch), float(batch.reward.double().mean()))
        return {"stats": torch.tensor([resid, float(batch.entropy.double().mean())], dtype=torch.float64)}

    def gain(self, saved: Mapping[str, torch.Tensor], batch: RolloutBatch) -> float:
        v_t, e_t = (float(v) for v in saved["stats"])
        v_next, _, _ = self._residual(batch)
        return self.reward.gain(v_t, e_t, v_next, float(batch.entropy.double().mean()))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            **super().state_dict(),
            "prompt_ids": self._ids.clone(),
            "prompt_means": self._means.clone(),
            "global": torch.tensor(self._global, dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        try:
            ids = torch.as_tensor(state["prompt_ids"]).long().reshape(-1).clone()
            means = torch.as_tensor(state["prompt_means"], dtype=torch.float64).reshape(-1).clone()
            glob = tuple(float(v) for v in torch.as_tensor(state["global"], dtype=torch.float64).reshape(2))
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: malformed prompt baselines: {exc}") from None
        if ids.shape != means.shape or not V.all_finite(means) or not all(math.isfinite(g) for g in glob):
            raise InvalidInputError(f"{where}: the prompt baselines must be finite and match their ids.")
        if ids.numel() > 1 and not bool((ids[1:] > ids[:-1]).all()):
            raise InvalidInputError(f"{where}: the prompt ids must be sorted and distinct.")
        super().load_state_dict(state, where)
        self._ids, self._means, self._global = ids, means, glob  # type: ignore[assignment]
