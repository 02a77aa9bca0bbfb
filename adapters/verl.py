"""verl: a replay-buffer hook for verl's V1 trainer, and two thin functions over ``DataProto``, all around
`banditlib.adapters.rlvr`.

**The trainer hook** (verl 0.9, ``trainer.use_v1=True``, verl's default):
[`BanditReplayBuffer`][banditlib.adapters.verl.BanditReplayBuffer] is a ``trainer.v1.sampler.custom_sampler``:
verl asks it for each step's batch of finished rollouts (in TransferQueue) and a banditlib scheduler decides
which of them the step trains on; [`BanditCheckpointCallback`][banditlib.adapters.verl.BanditCheckpointCallback]
(``trainer.checkpoint_callback_class``) saves the scheduler with each checkpoint. See ``docs/verl.md``.

**The functions**, for code that holds a step's ``DataProto`` (the legacy ``RayPPOTrainer.fit`` loop, or a
trainer subclass): verl keeps a step's rollouts in a ``DataProto``: ``batch`` (a TensorDict of ``(B, ...)``
tensors: ``responses``, ``response_mask``, ``old_log_probs``, ``advantages``, ``token_level_scores``, ...),
``non_tensor_batch`` (numpy arrays, ``uid`` = the prompt's group id) and ``meta_info``. Call, after
``compute_advantage`` and before the actor update::

    batch = rollout_batch_from_dataproto(data, round=step)
    if step > 0:
        scheduler.observe(batch)
    data = apply_schedule_to_dataproto(data, scheduler.schedule(batch))

Selection either removes rows (``DataProto.select_idxs``) or, with ``use_weights=True``, keeps the batch shape
and writes per-token ``rollout_is_weights`` (0 for unselected rows), which verl multiplies into the policy
loss. Replayed rows are rebuilt from the payload (every tensor of ``data.batch``; verl pads prompts and
responses to fixed widths, so rows of different steps line up) with their stored ``old_log_probs``.

Importing this module imports neither verl nor TransferQueue: the functions use only the attributes and
methods named above, and the hook imports verl's ``ReplayBuffer`` when it is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from banditlib.errors import InvalidInputError

from ._verl_sampler import STATE_FILE, BanditCheckpointCallback, BanditReplayBuffer
from .rlvr.batch import RolloutBatch

__all__ = [
    "STATE_FILE",
    "BanditCheckpointCallback",
    "BanditReplayBuffer",
    "apply_schedule_to_dataproto",
    "rollout_batch_from_dataproto",
]


def _response_mask(batch: Any) -> torch.Tensor:
    keys = set(batch.keys())
    if "response_mask" in keys:
        return batch["response_mask"]
    width = batch["responses"].shape[1]
    return batch["attention_mask"][:, -width:]


def rollout_batch_from_dataproto(
    data: Any, *, round: int, reward_key: str = "token_level_scores", entropy_key: str | None = None,
    answer: Any = None,
) -> RolloutBatch:  # fmt: skip
    """The step's rollouts as a [`RolloutBatch`][banditlib.adapters.rlvr.RolloutBatch] (CPU), every tensor of
    ``data.batch`` in the payload.

    * group: ``non_tensor_batch["uid"]`` mapped to integers (``0, 1, ...`` in sorted order of the uids as
      strings); reward: ``batch[reward_key]`` summed over the response tokens;
    * advantage: masked mean of ``batch["advantages"]`` ``(B, T)`` (constant per row for GRPO);
    * entropy: masked mean of ``batch[entropy_key]`` when given, else ``-mean(old_log_probs)``, the
      sampled-token estimate of the mean entropy;
    * length: response tokens; truncated: the response fills the last column (hit the maximum length).

    The response mask is ``batch["response_mask"]``, else the last ``T`` columns of ``batch["attention_mask"]``
    (``T`` the width of ``batch["responses"]``). Every statistic is float32, on CPU.

    Args:
        data: a verl ``DataProto`` after advantages are computed.
        round: the training step.
        reward_key: per-token reward tensor of ``data.batch``.
        entropy_key: optional per-token entropy tensor of ``data.batch``.
        answer: optional ``(B,)`` integer answer ids in row order (``RolloutBatch.answer``: equal ids within a
            group for identical final answers, ``-1`` for none), from your verifier's answer extraction; the
            default scheduler's consistency label needs them.

    Returns:
        The batch, with ``logprobs`` = ``old_log_probs``.

    Raises:
        InvalidInputError: a required field is missing (``responses``, ``old_log_probs``, ``advantages`` or
            ``reward_key`` in ``data.batch``, ``uid`` in ``data.non_tensor_batch``), or an ``answer`` that is
            not ``(B,)`` integer ids ``>= -1``.

    Examples:
        Any object with ``batch`` and ``non_tensor_batch`` will do; here a stand-in for verl's ``DataProto``
        (two prompts of two rollouts, responses of up to 3 tokens, the reward on the last real token):

        >>> from types import SimpleNamespace
        >>> mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
        >>> scores = torch.zeros(4, 3); scores[[0, 2, 3], [2, 2, 0]] = 1.0
        >>> data = SimpleNamespace(non_tensor_batch={"uid": np.array(["a", "a", "b", "b"], dtype=object)}, batch={
        ...     "responses": torch.zeros(4, 3, dtype=torch.long), "response_mask": mask, "token_level_scores": scores,
        ...     "old_log_probs": -0.5 * mask, "advantages": torch.tensor([[0.5], [-0.5], [0.0], [0.0]]) * mask})
        >>> batch = rollout_batch_from_dataproto(data, round=0)
        >>> batch.group.tolist(), batch.reward.tolist(), batch.advantage.tolist(), batch.entropy.tolist()
        ([0, 0, 1, 1], [1.0, 0.0, 1.0, 1.0], [0.5, -0.5, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5])
        >>> batch.length.tolist(), batch.truncated.tolist(), sorted(batch.payload)[:2]
        ([3.0, 2.0, 3.0, 1.0], [True, False, True, False], ['advantages', 'old_log_probs'])
    """
    b = data.batch
    keys = set(b.keys())
    need = {"responses", "old_log_probs", "advantages", reward_key}
    if missing := sorted(need - keys):
        raise InvalidInputError(f"rollout_batch_from_dataproto(): `data.batch` lacks {missing}.")
    if "uid" not in data.non_tensor_batch:
        raise InvalidInputError("rollout_batch_from_dataproto(): `data.non_tensor_batch` lacks 'uid' (group ids).")
    mask = _response_mask(b).float().cpu()
    count = mask.sum(1).clamp(min=1.0)
    _, group = np.unique(np.asarray(data.non_tensor_batch["uid"]).astype(str), return_inverse=True)
    logp = b["old_log_probs"].float().cpu()
    if entropy_key is not None:
        entropy = (b[entropy_key].float().cpu() * mask).sum(1) / count
    else:
        entropy = -(logp * mask).sum(1) / count
    return RolloutBatch.from_tensors(
        group=torch.as_tensor(group, dtype=torch.long).reshape(-1),
        reward=(b[reward_key].float().cpu() * mask).sum(1),
        advantage=(b["advantages"].float().cpu() * mask).sum(1) / count,
        entropy=entropy,
        length=mask.sum(1),
        truncated=mask[:, -1] > 0,
        round=round,
        logprobs=logp,
        payload={k: b[k].detach().cpu() for k in sorted(keys)},
        answer=answer,
    )


def apply_schedule_to_dataproto(data: Any, schedule: Any, *, use_weights: bool = False) -> Any:
    """The ``DataProto`` the actor should train on under ``schedule``.

    Args:
        data: the step's ``DataProto`` (the one
            [`rollout_batch_from_dataproto`][banditlib.adapters.verl.rollout_batch_from_dataproto] read).
        schedule: the scheduler's decision for it.
        use_weights: keep every row and write ``rollout_is_weights`` ``(B, T)`` = the row's weight (0 when
            unselected) times any existing weights, instead of removing rows. Replay needs row removal mode.

    Returns:
        With ``use_weights``: ``data`` itself, updated. Otherwise a new ``DataProto``: the selected rows
        (``select_idxs``; advantages scaled by their weights) followed by the replayed rows rebuilt with
        ``from_dict`` (their ``uid`` is ``"replay-<round>-<group>"``; other non-tensor fields are None).

    Raises:
        InvalidInputError: replay requested with ``use_weights=True``, or negative weights.

    Examples:
        A stand-in for verl's ``DataProto`` with the one method row removal uses (replay also uses the
        ``from_dict`` and ``concat`` class methods):

        >>> from types import SimpleNamespace
        >>> from banditlib.adapters.rlvr import DynamicSamplingFilter
        >>> class DataProto(SimpleNamespace):
        ...     def select_idxs(self, idx):
        ...         return DataProto(batch={k: v[idx] for k, v in self.batch.items()}, meta_info=self.meta_info,
        ...                          non_tensor_batch={k: v[idx.numpy()] for k, v in self.non_tensor_batch.items()})
        >>> mask, reward = torch.ones(4, 2), torch.tensor([1.0, 0.0, 1.0, 1.0])
        >>> adv = torch.tensor([[1.0], [-1.0], [0.0], [0.0]]) * mask
        >>> data = DataProto(meta_info={}, non_tensor_batch={"uid": np.array(["a", "a", "b", "b"], dtype=object)},
        ...                  batch={"responses": torch.zeros(4, 2, dtype=torch.long), "response_mask": mask,
        ...                         "old_log_probs": -0.5 * mask, "advantages": adv,
        ...                         "token_level_scores": torch.stack([torch.zeros(4), reward], dim=1)})
        >>> schedule = DynamicSamplingFilter().schedule(rollout_batch_from_dataproto(data, round=0))
        >>> out = apply_schedule_to_dataproto(data, schedule)  # prompt "b" has no reward spread: dropped
        >>> out.batch["responses"].shape, list(out.non_tensor_batch["uid"])
        (torch.Size([2, 2]), ['a', 'a'])
        >>> apply_schedule_to_dataproto(data, schedule, use_weights=True).batch["rollout_is_weights"][:, 0].tolist()
        [1.0, 1.0, 0.0, 0.0]
    """
    fresh, fw = schedule.fresh.long().cpu(), schedule.fresh_weight.float().cpu()
    replay: RolloutBatch = schedule.replay
    rw = schedule.replay_weight.float().cpu()
    if bool((fw < 0).any()) or bool((rw < 0).any()):
        raise InvalidInputError("apply_schedule_to_dataproto(): the schedule has negative weights.")
    b = data.batch
    n = b["responses"].shape[0]
    if use_weights:
        if len(replay):
            raise InvalidInputError("apply_schedule_to_dataproto(): replay needs `use_weights=False` (rows are added).")
        mask = _response_mask(b)
        w = torch.zeros(n)
        w[fresh] = fw
        weights = w.to(mask.device)[:, None] * mask.float()
        if "rollout_is_weights" in set(b.keys()):
            weights = weights * b["rollout_is_weights"]
        b["rollout_is_weights"] = weights
        return data
    out = data.select_idxs(fresh)
    out.batch["advantages"] = out.batch["advantages"] * fw.to(out.batch["advantages"].device)[:, None]
    if not len(replay):
        return out
    device = b["responses"].device
    keys = list(b.keys())  # TensorDict or dict
    tensors = {k: replay.payload[k].to(device) for k in keys}
    tensors["advantages"] = tensors["advantages"] * rw.to(device)[:, None]
    uid = np.array([f"replay-{r}-{g}" for r, g in zip(replay.round.tolist(), replay.group.tolist(), strict=True)],
                   dtype=object)  # fmt: skip
    non_tensors = {k: np.full(len(replay), None, dtype=object) for k in data.non_tensor_batch if k != "uid"}
    non_tensors["uid"] = uid
    old = type(data).from_dict(tensors=tensors, non_tensors=non_tensors, meta_info=dict(data.meta_info))
    return type(data).concat([out, old])
