"""The saved state of [`RolloutScheduler`][banditlib.adapters.rlvr.RolloutScheduler]: what it writes, how a file
rebuilds it (the policy from its own class and arguments, the rule, label and featurizer from their configs) and
the upgrade of format-1 files. A base class of the scheduler, apart from its decisions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError
from banditlib.extend import parse_json
from banditlib.policies import Policy
from banditlib.policies.base import build_for_state, registered_policies

from ._base import Scheduler
from .buffer import RolloutBuffer
from .features import RolloutFeaturizer
from .labels import RolloutLabel, label_from_config
from .rules import SelectionRule, rule_from_config

__all__: list[str] = []


class _PersistedRolloutScheduler(Scheduler):
    """State, file metadata and rebuilding of the rollout scheduler (its decisions are in ``scheduler.py``)."""

    policy: Policy
    featurizer: RolloutFeaturizer
    buffer: RolloutBuffer
    label: RolloutLabel
    seed: int
    _decisions: int
    _pend_x: torch.Tensor
    _pend_saved: dict[str, torch.Tensor]
    _last_pos: tuple[torch.Tensor, torch.Tensor]
    preset: str
    mode: str
    reuse: int
    replay: str
    replay_ratio: float | None
    replay_alpha: float
    weighting: str
    rule: SelectionRule

    @property
    def config(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "mode": self.mode,
            "reuse": None if self.replay_ratio is not None else self.reuse,
            "buffer_rounds": self.buffer.rounds,
            "seed": self.seed,
            "max_buffer_rollouts": self.buffer.max_rollouts,
            "weighting": self.weighting,
            "replay": self.replay,
            "replay_ratio": self.replay_ratio,
            "replay_alpha": self.replay_alpha,
            "rule": {"class": type(self.rule).__name__, "config": self.rule.config},
            "label": {"class": type(self.label).__name__, "config": self.label.config},
            "featurizer": self.featurizer.config,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state.update(
            seed=torch.tensor(self.seed, dtype=torch.long),
            decisions=torch.tensor(self._decisions, dtype=torch.long),
            pending_x=self._pend_x.detach().to("cpu", torch.float32).clone(),
            last_fresh_pos=self._last_pos[0].cpu().clone(),
            last_replay_pos=self._last_pos[1].cpu().clone(),
        )
        state.update({f"pending.{k}": v.detach().cpu().clone() for k, v in self._pend_saved.items()})
        state.update({f"label.{k}": v.detach().cpu().clone() for k, v in self.label.state_dict().items()})
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
            pend_x = torch.as_tensor(state["pending_x"], dtype=torch.float32)
            last_pos = (
                torch.as_tensor(state["last_fresh_pos"]).long().reshape(-1),
                torch.as_tensor(state["last_replay_pos"]).long().reshape(-1),
            )
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: missing or malformed scheduler entries: {exc}") from None
        if pend_x.dim() != 2 or pend_x.shape[1] != self.featurizer.dim or decisions < 0:
            raise InvalidInputError(f"{where}: the scheduler entries do not fit this scheduler's featurizer.")
        pending = {k: torch.as_tensor(v).clone() for k, v in part("pending.").items()}
        if not V.all_finite(pend_x) or not all(V.all_finite(v) for v in pending.values() if v.is_floating_point()):
            raise InvalidInputError(f"{where}: the pending contexts and label inputs must be finite.")
        if any(int(p.min()) < 0 for p in last_pos if p.numel()):
            raise InvalidInputError(f"{where}: `last_fresh_pos` / `last_replay_pos` must be non-negative.")
        backups = (
            self.policy.state_dict(), self.featurizer.state_dict(), self.buffer.state_dict(), self.label.state_dict()
        )  # fmt: skip
        backups = tuple({k: v.clone() for k, v in b.items()} for b in backups)  # type: ignore[assignment]
        try:
            self.policy.load_state_dict(part("policy."))
            self.featurizer.load_state_dict(part("featurizer."))
            self.buffer.load_state_dict(part("buffer."))
            self.label.load_state_dict(part("label."), where)
        except BaseException:
            self.policy.load_state_dict(backups[0])
            self.featurizer.load_state_dict(backups[1])
            self.buffer.load_state_dict(backups[2])
            self.label.load_state_dict(backups[3], where)
            raise
        self.seed, self._decisions = seed, decisions
        self._pend_x = pend_x.to(self.policy.device)
        self._pend_saved = pending
        self._last_pos = last_pos

    def _file_metadata(self) -> dict[str, str]:
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
        cfg = dict(config)
        try:
            fcfg = cfg.pop("featurizer")
            if "featurizer" not in kwargs:
                if fcfg.get("extra"):
                    raise InvalidInputError(
                        f"{where}: the scheduler used custom features {fcfg['extra']}; pass the same "
                        "`featurizer=` to load()."
                    )
                fcfg.pop("extra", None)
                kwargs["featurizer"] = RolloutFeaturizer(**fcfg)
            if "rule" not in kwargs:
                kwargs["rule"] = rule_from_config(cfg.pop("rule"), where)
            else:
                cfg.pop("rule", None)
            if "label" not in kwargs:
                kwargs["label"] = label_from_config(cfg.pop("label"), where)
            else:
                cfg.pop("label", None)
            if "policy" not in kwargs:
                target = registered_policies().get(meta.get("policy_class", ""))
                if target is None:
                    raise InvalidInputError(f"{where}: unknown policy class {meta.get('policy_class')!r}.")
                pconf = parse_json(meta["policy_config"], "the policy's constructor arguments")
                if not isinstance(pconf, dict):
                    raise InvalidInputError(f"{where}: the policy's constructor arguments are unreadable.")
                state = {k.removeprefix("policy."): v for k, v in tensors.items() if k.startswith("policy.")}
                kwargs["policy"] = build_for_state(
                    target, pconf, meta.get("policy_dtype", "float32"), "cpu", state, where
                )
            return cls(**{**cfg, **kwargs})
        except (KeyError, TypeError, ValueError, RecursionError, AttributeError) as exc:
            raise InvalidInputError(f"{where}: the file's arguments do not fit {cls.__name__}: {exc}") from None

    @classmethod
    def _upgrade(
        cls, version: str, config: dict[str, Any], tensors: dict[str, torch.Tensor], where: str
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Files written before the rule/label redesign (format 1) held CBS as published: they load as
        ``preset="paper"`` with their top fraction, their round-gain label and its running statistics."""
        if version != "1":
            return config, tensors
        try:
            cfg = dict(config)
            keep = cfg.pop("keep_fraction")
            reward, decay = cfg.pop("reward"), cfg.pop("label_decay")
            cfg.update(
                preset="paper",
                rule={"class": "TopFraction", "config": {"keep_fraction": keep}},
                label={"class": "RoundGain", "config": {"reward": reward, "decay": decay}},
            )
            out = {k: v for k, v in tensors.items() if k not in ("label", "pending_stats")}
            out["label.standardiser"] = tensors["label"]
            if bool(tensors["pending"]):
                out["pending.stats"] = tensors["pending_stats"]
        except KeyError as exc:
            raise InvalidInputError(
                f"{where}: a format-1 scheduler file without {exc}; it cannot be upgraded."
            ) from None
        return cfg, out
