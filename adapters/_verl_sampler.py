"""verl's V1-trainer replay-buffer hook driven by a banditlib scheduler; re-exported by `banditlib.adapters.verl`.

Nothing here imports verl or TransferQueue at import time: verl's ``ReplayBuffer`` and the ``transfer_queue``
module are imported when a [`BanditReplayBuffer`][banditlib.adapters.verl.BanditReplayBuffer] is built without
stand-ins for them.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from banditlib.errors import InvalidInputError

from . import rlvr
from .rlvr._base import Scheduler
from .rlvr.batch import RolloutBatch

__all__ = ["STATE_FILE", "BanditCheckpointCallback", "BanditReplayBuffer"]

logger = logging.getLogger(__name__)

STATE_FILE = "bandit_scheduler.safetensors"
_KWARGS = ("scheduler", "scheduler_kwargs", "answer_key", "max_response_length", "checkpoint_dir")


def _plain(value: Any) -> Any:
    """An OmegaConf ``DictConfig``/``ListConfig`` (or anything mapping- or list-like) as plain dicts and lists."""
    if isinstance(value, Mapping) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        return {str(k): _plain(value[k]) for k in list(value.keys())}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def _padded(value: Any) -> torch.Tensor:
    """``(N, T)`` rows from a jagged nested tensor (TransferQueue's variable-length fields), a dense tensor or a
    list of 1-D tensors; padding is 0."""
    if isinstance(value, torch.Tensor) and value.is_nested:
        return torch.nested.to_padded_tensor(value, 0.0)
    if isinstance(value, torch.Tensor):
        return value
    rows = [torch.as_tensor(v) for v in value]
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True) if rows else torch.zeros(0, 0)


def _build_scheduler(name: Any, kwargs: Any, where: str) -> Scheduler:
    cls = getattr(rlvr, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise InvalidInputError(
            f"{where}: `sampler_kwargs.scheduler` must name a scheduler class of banditlib.adapters.rlvr "
            f"(RolloutScheduler, DynamicSamplingFilter, ...); got {name!r}."
        )
    if not isinstance(kwargs, dict):
        raise InvalidInputError(f"{where}: `sampler_kwargs.scheduler_kwargs` must be a mapping; got {kwargs!r}.")
    return cls(**kwargs)


class BanditReplayBuffer:
    """The rollouts each verl step trains on, chosen by a banditlib scheduler: verl's replay-buffer hook.

    verl 0.9's V1 trainer (``trainer.use_v1=True``, its default) keeps rollouts in TransferQueue and asks its
    replay buffer for each step's batch, before ``old_log_prob``, advantages and the actor update:
    ``sample(global_steps, partition_id, batch_size)`` returns the ``KVBatchMeta`` (keys
    ``{uid}_{session}_{index}``, one per rollout, and their tags) of ``batch_size`` finished prompt groups.
    Set ``trainer.v1.sampler.custom_sampler`` to ``path=pkg://banditlib.adapters.verl``,
    ``name=BanditReplayBuffer`` and verl builds this class instead. Its ``sample``:

    1. lets verl's own sync ``ReplayBuffer`` wait for and pick the groups (as without the hook);
    2. reads the picked rollouts from TransferQueue into a [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch]
       ([`rollout_batch`][banditlib.adapters.verl.BanditReplayBuffer.rollout_batch]);
    3. calls the scheduler's ``observe`` (the label of the previous step's choice) and ``schedule``;
    4. returns the ``KVBatchMeta`` of the kept rollouts (in verl's order) and clears the others from
       TransferQueue; metrics ``training/bandit/*`` join verl's.

    Validation batches (``partition_id="val"``) pass through unchanged. The trainer computes advantages on the
    kept rows afterwards, so a scheduler that keeps whole groups (DAPO's dynamic sampling, the default
    scheduler's ``mode="group"`` with a group rule) leaves the kept groups' advantages as they were.
    Selection only: schedules with replay or loss weights other than 1 raise (the rows are gone from the store
    and the sampler cannot reach the loss). A schedule that keeps no rollout trains on the whole batch and
    reports ``training/bandit/empty_schedule = 1`` (verl cannot train on an empty batch).

    ``sampler_kwargs`` (``trainer.v1.sampler.sampler_kwargs``): ``scheduler`` (a class name of
    `banditlib.adapters.rlvr`, default ``"RolloutScheduler"``), ``scheduler_kwargs`` (its arguments, default
    ``{"mode": "group"}``), ``answer_key`` (default ``"pred"``, the extracted answer of verl's
    ``math_dapo`` scorer; ``None`` for no answers), ``max_response_length`` (set it to
    ``${actor_rollout_ref.rollout.response_length}``), ``checkpoint_dir`` (set it to
    ``${trainer.default_local_dir}`` together with
    [`BanditCheckpointCallback`][banditlib.adapters.verl.BanditCheckpointCallback]: a run resumed at step ``s``
    loads the scheduler saved with checkpoint ``global_step_{s-1}``).

    Args:
        trainer_mode: ``trainer.v1.trainer_mode``; only ``"sync"`` is supported.
        trainer_config: ``trainer.v1.sync`` (passed on to verl's ``ReplayBuffer``).
        max_off_policy_threshold: passed on to verl's ``ReplayBuffer``.
        max_off_policy_strategy: passed on to verl's ``ReplayBuffer``.
        sampler_kwargs: the options above (a mapping or OmegaConf ``DictConfig``; unknown keys raise).
        refill_fn: the trainer's prompt-refill function, passed on to verl's ``ReplayBuffer``.
        scheduler: a scheduler instance, replacing ``sampler_kwargs.scheduler``/``scheduler_kwargs`` (verl
            never passes it; for code that builds the sampler itself).
        base: the replay buffer that picks the groups (default: verl's
            ``verl.trainer.ppo.v1.replay_buffer.ReplayBuffer`` built with the arguments above).
        store: the object with ``kv_batch_get`` and ``kv_clear`` (default: the ``transfer_queue`` module).

    Raises:
        InvalidInputError: a trainer mode other than ``"sync"``, unknown or malformed ``sampler_kwargs``, a
            name that is no scheduler class, or a scheduler that replays (its ``replays`` flag:
            ``RecencyReplay``, ``PriorityReplay``, a ``RolloutScheduler`` whose mode is not ``"group"``).

    Examples:
        With stand-ins for verl's ``ReplayBuffer`` and TransferQueue (prompts ``p`` and ``q``, two rollouts
        each; every rollout of ``q`` is correct, so DAPO's dynamic sampling drops ``q``):

        >>> from types import SimpleNamespace
        >>> @dataclasses.dataclass
        ... class KVBatchMeta:  # transfer_queue's, with the fields used here
        ...     keys: list
        ...     tags: list
        ...     partition_id: str = "train"
        >>> keys = ["p_0_0", "p_1_0", "q_0_0", "q_1_0"]
        >>> fields = {"response_mask": torch.ones(4, 2, dtype=torch.long),
        ...           "rm_scores": torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])}
        >>> cleared = []
        >>> store = SimpleNamespace(kv_clear=lambda keys, partition_id: cleared.extend(keys),
        ...                         kv_batch_get=lambda keys, partition_id, select_fields: fields)
        >>> base = SimpleNamespace(sample=lambda global_steps, partition_id, batch_size: (
        ...     KVBatchMeta(keys, [{"response_len": 2}] * 4), {}))
        >>> opts = {"scheduler": "DynamicSamplingFilter", "scheduler_kwargs": {}, "answer_key": None}
        >>> buf = BanditReplayBuffer(sampler_kwargs=opts, base=base, store=store)
        >>> meta, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=2)
        >>> meta.keys, cleared, metrics["training/bandit/kept_share"]
        (['p_0_0', 'p_1_0'], ['q_0_0', 'q_1_0'], 0.5)
    """

    def __init__(
        self,
        trainer_mode: str = "sync",
        trainer_config: Any = None,
        max_off_policy_threshold: int | None = None,
        max_off_policy_strategy: str = "drop",
        sampler_kwargs: Any = None,
        refill_fn: Any = None,
        *,
        scheduler: Scheduler | None = None,
        base: Any = None,
        store: Any = None,
    ) -> None:
        where = "BanditReplayBuffer()"
        if trainer_mode != "sync":
            raise InvalidInputError(
                f"{where}: only `trainer.v1.trainer_mode=sync` is supported (the async trainers sample several "
                f"policy versions at once); got {trainer_mode!r}."
            )
        opts = _plain(sampler_kwargs) if sampler_kwargs is not None else {}
        if not isinstance(opts, dict):
            raise InvalidInputError(f"{where}: `sampler_kwargs` must be a mapping; got {opts!r}.")
        if unknown := sorted(set(opts) - set(_KWARGS)):
            raise InvalidInputError(f"{where}: `sampler_kwargs` takes {list(_KWARGS)}; got unknown keys {unknown}.")
        if scheduler is None:
            scheduler = _build_scheduler(
                opts.get("scheduler", "RolloutScheduler"), opts.get("scheduler_kwargs", {"mode": "group"}), where
            )
        elif not isinstance(scheduler, Scheduler):
            raise InvalidInputError(f"{where}: `scheduler` must be a Scheduler; got {type(scheduler).__name__}.")
        if scheduler.replays:
            raise InvalidInputError(
                f"{where}: {type(scheduler).__name__} replays rollouts, which the sampler cannot (the rows leave "
                "TransferQueue); use a selection scheduler (RolloutScheduler(mode='group'), DynamicSamplingFilter, "
                "...)."
            )
        max_len = opts.get("max_response_length")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
            raise InvalidInputError(f"{where}: `max_response_length` must be a positive integer; got {max_len!r}.")
        answer_key = opts.get("answer_key", "pred")
        if answer_key is not None and not isinstance(answer_key, str):
            raise InvalidInputError(f"{where}: `answer_key` must be a string or None; got {answer_key!r}.")
        self.scheduler = scheduler
        self.answer_key: str | None = answer_key
        self.max_response_length: int | None = max_len
        self.checkpoint_dir: str | None = opts.get("checkpoint_dir")
        # Imported by name: verl and TransferQueue are optional, and mypy runs where they are absent.
        if base is None:
            replay_buffer = importlib.import_module("verl.trainer.ppo.v1.replay_buffer")
            base = replay_buffer.ReplayBuffer(
                trainer_mode=trainer_mode, trainer_config=trainer_config, sampler_kwargs={}, refill_fn=refill_fn,
                max_off_policy_threshold=max_off_policy_threshold, max_off_policy_strategy=max_off_policy_strategy,
            )  # fmt: skip
        self.base = base
        self.store = importlib.import_module("transfer_queue") if store is None else store
        self.rounds_ = 0
        self._resumed = False

    def __getattr__(self, name: str) -> Any:
        # verl reads a few attributes of its replay buffer (``poll_interval``): answer them from the wrapped one.
        if name in ("base", "__setstate__") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    # ------------------------------------------------------------------------------------------ state

    def save(self, checkpoint_dir: str | os.PathLike[str]) -> str:
        """Write the scheduler to ``checkpoint_dir/bandit_scheduler.safetensors``.

        Args:
            checkpoint_dir: a verl checkpoint folder (``.../global_step_<s>``).

        Returns:
            The file's path.

        Examples:
            >>> import tempfile
            >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
            >>> buf = BanditReplayBuffer(scheduler=DynamicSamplingFilter(), base=object(), store=object())
            >>> os.path.basename(buf.save(tempfile.mkdtemp()))
            'bandit_scheduler.safetensors'
        """
        path = os.path.join(os.fspath(checkpoint_dir), STATE_FILE)
        self.scheduler.save(path)
        return path

    def load(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        """Replace the scheduler with the one [`save`][banditlib.adapters.verl.BanditReplayBuffer.save] wrote there
        and continue its rounds.

        Args:
            checkpoint_dir: the verl checkpoint folder.

        Raises:
            InvalidInputError: no scheduler file there, a corrupted file, or another scheduler class.

        Examples:
            >>> import tempfile
            >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
            >>> buf = BanditReplayBuffer(scheduler=DynamicSamplingFilter(), base=object(), store=object())
            >>> folder = tempfile.mkdtemp(); _ = buf.save(folder)
            >>> buf.load(folder); buf.rounds_
            0
        """
        path = os.path.join(os.fspath(checkpoint_dir), STATE_FILE)
        if not os.path.exists(path):
            raise InvalidInputError(
                f"BanditReplayBuffer.load(): no {STATE_FILE} in {os.fspath(checkpoint_dir)!r}; was the checkpoint "
                "written with trainer.checkpoint_callback_class=banditlib.adapters.verl.BanditCheckpointCallback?"
            )
        loaded = type(self.scheduler).load(path)
        state = loaded.state_dict()
        self.scheduler = loaded
        self.rounds_ = int(state["last_round"]) + 1 if bool(state["has_round"]) else 0

    # ------------------------------------------------------------------------------------------ sampling

    def rollout_batch(self, meta: Any) -> RolloutBatch:
        """The rollouts of ``meta`` as the scheduler sees them, read from TransferQueue.

        Fields read: ``response_mask``, ``rm_scores`` and, when TransferQueue holds them, ``rollout_log_probs``
        (the rollout engine's, with ``actor_rollout_ref.rollout.calculate_log_probs=True``) and
        ``extra_fields``. Per rollout: group = the ``uid`` of its key ``{uid}_{session}_{index}`` (numbered in
        order of appearance); reward = ``rm_scores`` summed over the response; advantage = GRPO's within the
        group; entropy = ``-mean(rollout_log_probs)`` over the response (the sampled-token estimate), 0 without
        them; length = response tokens; truncated = the tag ``response_len`` reaches ``max_response_length``
        (all ``False`` without it); answer = ids of ``extra_fields["reward_extra_info"][answer_key]`` (equal
        ids for equal answers, ``-1`` for none); round = the training batches sampled before.

        Args:
            meta: a ``KVBatchMeta`` (``keys``, ``tags``, ``partition_id``).

        Returns:
            The batch, float32 statistics on CPU.

        Raises:
            InvalidInputError: no ``rm_scores`` (the reward must be known when the batch is sampled: rule-based
                reward, or ``reward.reward_model.enable_resource_pool=True``), a row count that does not match
                the keys, or non-finite rewards.

        Examples:
            >>> from types import SimpleNamespace
            >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
            >>> data = {"response_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
            ...         "rm_scores": torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),
            ...         "rollout_log_probs": torch.full((2, 3), -0.25)}
            >>> buf = BanditReplayBuffer(scheduler=DynamicSamplingFilter(), base=object(), store=SimpleNamespace(
            ...     kv_batch_get=lambda keys, partition_id, select_fields: data), sampler_kwargs={"answer_key": None})
            >>> b = buf.rollout_batch(SimpleNamespace(keys=["u_0_0", "u_1_0"], tags=[{}, {}], partition_id="train"))
            >>> b.group.tolist(), b.reward.tolist(), b.entropy.tolist(), b.length.tolist(), b.answer is None
            ([0, 0], [1.0, 0.0], [0.25, 0.25], [2.0, 3.0], True)
            >>> [round(a, 3) for a in b.advantage.tolist()]  # GRPO: (r - mean) / (std + 1e-4)
            [0.707, -0.707]
        """
        where = "BanditReplayBuffer.sample()"
        select = ["response_mask", "rm_scores", "rollout_log_probs"]
        if self.answer_key is not None:
            select.append("extra_fields")
        data = self.store.kv_batch_get(keys=list(meta.keys), partition_id=meta.partition_id, select_fields=select)
        present = set(data.keys())
        if "rm_scores" not in present:
            raise InvalidInputError(
                f"{where}: TransferQueue holds no `rm_scores` for the sampled rollouts; the sampler needs the "
                "reward when the batch is sampled (rule-based reward, or reward.reward_model.enable_resource_pool"
                "=True), as verl's own group filtering does."
            )
        mask = _padded(data["response_mask"]).float()
        n = len(meta.keys)
        if mask.shape[0] != n:
            raise InvalidInputError(f"{where}: TransferQueue returned {mask.shape[0]} rows for {n} keys.")
        count = mask.sum(1)
        uids = [str(k).split("_")[0] for k in meta.keys]
        ids = {u: i for i, u in enumerate(dict.fromkeys(uids))}
        entropy = torch.zeros(n)
        if "rollout_log_probs" in present:
            entropy = -(_padded(data["rollout_log_probs"]).float() * mask).sum(1) / count.clamp(min=1.0)
        truncated = None
        if self.max_response_length is not None:
            tags = zip(meta.tags, count.tolist(), strict=True)
            width = torch.tensor([float(t.get("response_len", c)) for t, c in tags])
            truncated = width >= self.max_response_length
        return RolloutBatch.from_tensors(
            group=torch.tensor([ids[u] for u in uids], dtype=torch.long),
            reward=(_padded(data["rm_scores"]).float() * mask).sum(1),
            entropy=entropy, length=count, truncated=truncated, round=self.rounds_, answer=self._answers(data, n),
        )  # fmt: skip

    def _answers(self, data: Any, n: int) -> torch.Tensor | None:
        if self.answer_key is None or "extra_fields" not in set(data.keys()):
            return None
        codes: dict[str, int] = {}
        out = []
        for value in list(data["extra_fields"]):
            extra = getattr(value, "data", value)
            info = extra.get("reward_extra_info", {}) if isinstance(extra, Mapping) else {}
            pred = info.get(self.answer_key) if isinstance(info, Mapping) else None
            out.append(-1 if pred is None or str(pred) == "" else codes.setdefault(str(pred), len(codes)))
        if len(out) != n:
            raise InvalidInputError(f"BanditReplayBuffer.sample(): TransferQueue returned {len(out)} `extra_fields` "
                                    f"for {n} rollouts.")  # fmt: skip
        return torch.tensor(out, dtype=torch.long)

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[Any, dict[str, Any]]:
        """The step's batch: verl's pick of ``batch_size`` finished groups, restricted to the rollouts the
        scheduler keeps.

        Args:
            global_steps: verl's training step (from 1).
            partition_id: ``"train"`` (scheduled) or ``"val"`` (passed through).
            batch_size: prompt groups to pick.

        Returns:
            The ``KVBatchMeta`` of the kept rollouts and verl's metrics plus ``training/bandit/kept_share``,
            ``kept_rollouts``, ``dropped_rollouts``, ``empty_schedule``, ``round`` and, when the scheduler has
            them, ``observed_gain`` and ``predicted_gain``.

        Raises:
            InvalidInputError: rollouts that [`rollout_batch`][banditlib.adapters.verl.BanditReplayBuffer.rollout_batch]
                cannot read (no ``rm_scores``: the reward must be known when the batch is sampled), a schedule
                with replay or weights other than 1, or a resumed run without its scheduler file.

        Examples:
            See [`BanditReplayBuffer`][banditlib.adapters.verl.BanditReplayBuffer].
        """
        if partition_id == "train" and not self._resumed:
            self._resumed = True
            if self.checkpoint_dir is not None and global_steps > 1:
                self.load(os.path.join(self.checkpoint_dir, f"global_step_{global_steps - 1}"))
        meta, metrics = self.base.sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        metrics = dict(metrics)
        if partition_id != "train" or not len(meta.keys):
            return meta, metrics
        batch = self.rollout_batch(meta)
        if self.rounds_ > 0:
            gain = self.scheduler.observe(batch)
            if gain is not None and math.isfinite(gain):
                metrics["training/bandit/observed_gain"] = float(gain)
        decision = self.scheduler.schedule(batch)
        self.rounds_ += 1
        if len(decision.replay):
            raise InvalidInputError(
                "BanditReplayBuffer.sample(): the schedule replays rollouts; the sampler selects only."
            )
        if bool((decision.fresh_weight != 1).any()):
            raise InvalidInputError(
                "BanditReplayBuffer.sample(): the schedule weights rollouts (not 0/1), which the sampler cannot pass "
                "to the loss; use a keep/drop rule (Threshold, TopFraction) or apply_schedule_to_dataproto."
            )
        keep = decision.fresh.tolist()
        empty = not keep
        if empty:
            logger.warning("BanditReplayBuffer: the schedule keeps no rollout of step %d; all kept.", global_steps)
            keep = list(range(len(meta.keys)))
        kept = set(keep)
        dropped = [k for i, k in enumerate(meta.keys) if i not in kept]
        if dropped:
            self.store.kv_clear(keys=dropped, partition_id=meta.partition_id)
        out = dataclasses.replace(meta, keys=[meta.keys[i] for i in keep], tags=[meta.tags[i] for i in keep])
        metrics.update({
            "training/bandit/kept_share": len(keep) / len(meta.keys), "training/bandit/kept_rollouts": len(keep),
            "training/bandit/dropped_rollouts": len(dropped), "training/bandit/empty_schedule": int(empty),
            "training/bandit/round": self.rounds_ - 1,
        })  # fmt: skip
        if math.isfinite(decision.predicted_gain):
            metrics["training/bandit/predicted_gain"] = float(decision.predicted_gain)
        return out, metrics


class BanditCheckpointCallback:
    """verl's checkpoint hook (``trainer.checkpoint_callback_class``): saves the
    [`BanditReplayBuffer`][banditlib.adapters.verl.BanditReplayBuffer]'s scheduler with every checkpoint.

    After verl writes ``global_step_<s>``, ``on_save`` writes ``bandit_scheduler.safetensors`` into it (the
    sampler's ``checkpoint_dir`` then restores it on resume). A trainer whose replay buffer is not a
    ``BanditReplayBuffer`` raises, so a misconfigured run fails at its first checkpoint rather than resuming
    without the scheduler.

    Args:
        config: the full trainer config (verl passes it; unused).

    Examples:
        >>> import tempfile
        >>> from types import SimpleNamespace
        >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
        >>> buf = BanditReplayBuffer(scheduler=DynamicSamplingFilter(), base=object(), store=object())
        >>> folder = tempfile.mkdtemp()
        >>> BanditCheckpointCallback().on_save(SimpleNamespace(replay_buffer=buf), global_step=3, checkpoint_dir=folder)
        >>> os.listdir(folder)
        ['bandit_scheduler.safetensors']
    """

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def on_save(
        self, trainer: Any, global_step: int, checkpoint_dir: str, async_save: bool = False, **kwargs: Any
    ) -> None:
        """Write the trainer's scheduler into ``checkpoint_dir``.

        Args:
            trainer: the verl trainer (its ``replay_buffer`` must be a ``BanditReplayBuffer``).
            global_step: the step checkpointed.
            checkpoint_dir: verl's ``global_step_<s>`` folder.
            async_save: verl's flag (the scheduler file is written synchronously either way).
            **kwargs: verl's reserved extra context.

        Raises:
            InvalidInputError: the trainer's replay buffer is not a ``BanditReplayBuffer``.

        Examples:
            See [`BanditCheckpointCallback`][banditlib.adapters.verl.BanditCheckpointCallback].
        """
        buffer = getattr(trainer, "replay_buffer", None)
        if not isinstance(buffer, BanditReplayBuffer):
            raise InvalidInputError(
                "BanditCheckpointCallback.on_save(): the trainer's replay buffer is "
                f"{type(buffer).__name__}, not BanditReplayBuffer; set trainer.v1.sampler.custom_sampler."
            )
        buffer.save(checkpoint_dir)
