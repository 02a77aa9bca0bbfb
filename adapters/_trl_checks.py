"""Checks behind ``banditlib.adapters.trl.BanditGRPOTrainer``: what the adapter supports, and the checkpoint
files it writes and reads back.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from typing import Any

import torch
import torch.distributed as dist

from banditlib.errors import InvalidInputError

__all__ = [
    "ENTROPY_MODES",
    "SCHEDULER_FILE",
    "STATE_FILE",
    "STATE_FORMAT",
    "SUPPORTED_LOSS_TYPES",
    "check_entropy",
    "check_grad_sketch",
    "check_same_on_all_ranks",
    "check_supported",
    "config_of",
    "load_scheduler",
    "read_trainer_state",
    "write_trainer_state",
]

SUPPORTED_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")
# How the per-rollout entropy statistic is obtained (see BanditGRPOTrainer's `entropy`).
ENTROPY_MODES = ("auto", "exact", "sampled")
SCHEDULER_FILE = "scheduler.safetensors"
STATE_FILE = "bandit_trainer_state.json"
STATE_FORMAT = "banditlib.trl.trainer-state"


def config_of(scheduler: Any) -> Any:
    """The scheduler's constructor arguments as JSON values (``{}`` for a scheduler without ``config``)."""
    return json.loads(json.dumps(getattr(scheduler, "config", {}), default=str))


def read_trainer_state(path: str, where: str) -> dict[str, Any]:
    """``bandit_trainer_state.json``, checked: a JSON object with a non-negative integer ``round``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(1 << 20)
        state = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{where}: {path!r} is not a readable trainer-state file: {exc}") from None
    if not isinstance(state, dict) or state.get("format", STATE_FORMAT) != STATE_FORMAT:
        raise InvalidInputError(f"{where}: {path!r} is not a BanditGRPOTrainer trainer-state file.")
    rnd = state.get("round")
    if not isinstance(rnd, int) or isinstance(rnd, bool) or rnd < 0:
        raise InvalidInputError(f"{where}: {path!r} must hold a non-negative integer `round`; got {rnd!r}.")
    return state


def check_grad_sketch(grad_sketch: Any) -> int | None:
    """``sqrt(grad_sketch)`` (the side ``k1 = k2`` of the sketch), or None; raise for anything else."""
    if grad_sketch is None:
        return None
    ok = isinstance(grad_sketch, numbers.Integral) and not isinstance(grad_sketch, bool) and int(grad_sketch) >= 4
    if not ok or math.isqrt(int(grad_sketch)) ** 2 != int(grad_sketch):
        raise InvalidInputError(
            "BanditGRPOTrainer(): `grad_sketch` must be None or the sketch width k = k1 * k2 with k1 = k2, a perfect "
            f"square >= 4 (16, 64, 256 ...); got {grad_sketch!r}."
        )
    return math.isqrt(int(grad_sketch))


def check_same_on_all_ranks(scheduler: Any) -> None:
    """Every rank decides on the same global batch, so every rank's scheduler must start identical."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    digest = hashlib.sha256(json.dumps(getattr(scheduler, "config", {}), sort_keys=True, default=str).encode())
    for key, value in sorted(scheduler.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest.hexdigest())
    if len(set(digests)) > 1:
        raise InvalidInputError(
            "BanditGRPOTrainer(): the `scheduler` differs between processes (pass the same `seed` on every rank; "
            "`seed=None` draws a different one in each process); ranks must decide identically on the global view."
        )


def check_supported(*, loss_type: str, tools: bool, vlm: bool, rollout_func: bool) -> None:
    """Raise [`InvalidInputError`][banditlib.InvalidInputError] for a configuration the adapter cannot honour."""
    where = "BanditGRPOTrainer()"
    if loss_type not in SUPPORTED_LOSS_TYPES:
        raise InvalidInputError(
            f"{where}: `loss_type` must be one of {SUPPORTED_LOSS_TYPES} (their normalisations are handled when "
            f"rows are removed or replayed); got {loss_type!r}."
        )
    if tools:
        raise InvalidInputError(
            f"{where}: `tools` / `environment_factory` are not supported: the `tool_mask` of multi-turn "
            "completions is not carried through selection and replay."
        )
    if vlm:
        raise InvalidInputError(f"{where}: vision-language models (a processor with images) are not supported.")
    if rollout_func:
        raise InvalidInputError(f"{where}: a custom `rollout_func` is not supported.")


def check_entropy(entropy: Any) -> str:
    """``entropy``, checked: one of ``ENTROPY_MODES``."""
    if not isinstance(entropy, str) or entropy not in ENTROPY_MODES:
        raise InvalidInputError(
            f"BanditGRPOTrainer(): `entropy` must be one of {ENTROPY_MODES} (how each completion's entropy statistic "
            f"is obtained); got {entropy!r}."
        )
    return entropy


GATHER_MODES = ("rows", "statistics")


def check_gather(gather: Any, scheduler: Any) -> str:
    """``gather``, checked: one of ``GATHER_MODES``; ``"statistics"`` only for a scheduler that does not replay."""
    if not isinstance(gather, str) or gather not in GATHER_MODES:
        raise InvalidInputError(
            f"BanditGRPOTrainer(): `gather` must be one of {GATHER_MODES} (what the ranks exchange each round); got "
            f"{gather!r}."
        )
    if gather == "statistics" and getattr(scheduler, "replays", None) is not False:
        raise InvalidInputError(
            f"BanditGRPOTrainer(): gather='statistics' keeps each row on the rank that generated it, so it needs a "
            f"scheduler that only selects (`replays` False); {type(scheduler).__name__} replays rows (or does not "
            "say): use gather='rows'."
        )
    return gather


def write_trainer_state(folder: str, state: dict[str, Any]) -> None:
    """Write ``bandit_trainer_state.json`` into ``folder`` atomically (like the scheduler file)."""
    target = os.path.join(folder, STATE_FILE)
    with open(target + ".tmp", "w") as fh:
        json.dump({"format": STATE_FORMAT, **state}, fh)
    os.replace(target + ".tmp", target)


def load_scheduler(scheduler: Any, checkpoint: str, expected: dict[str, Any]) -> int:
    """Restore ``scheduler`` from a checkpoint folder and return the round to continue from.

    Both files are read and checked completely before anything changes. ``expected`` holds the trainer's values
    of the settings a checkpoint must agree with (``grad_sketch``, ``entropy``, ``payload``); a setting the
    checkpoint does not record (written by an older version) is not checked.

    Raises:
        InvalidInputError: a missing, unreadable or foreign file, or a checkpoint of another scheduler class,
            other scheduler arguments or other settings; the scheduler is unchanged.
    """
    path, state_path = os.path.join(checkpoint, SCHEDULER_FILE), os.path.join(checkpoint, STATE_FILE)
    if not (os.path.exists(path) and os.path.exists(state_path)):
        raise InvalidInputError(
            f"BanditGRPOTrainer: checkpoint {checkpoint!r} has no {SCHEDULER_FILE} / {STATE_FILE}; it was not "
            "written by BanditGRPOTrainer, so the scheduler cannot resume."
        )
    where = "BanditGRPOTrainer (resume)"
    state = read_trainer_state(state_path, where)
    name = type(scheduler).__name__
    if state.get("scheduler_class", name) != name:
        raise InvalidInputError(
            f"{where}: {state_path!r} was written for a {state['scheduler_class']}, but the trainer's scheduler "
            f"is a {name}."
        )
    if "scheduler_config" in state and state["scheduler_config"] != config_of(scheduler):
        raise InvalidInputError(
            f"{where}: the checkpoint's scheduler was configured {state['scheduler_config']}, the trainer's is "
            f"{config_of(scheduler)}; resume with the same scheduler arguments."
        )
    for key, value in expected.items():
        if key in state and state[key] != value:
            raise InvalidInputError(
                f"{where}: the checkpoint was written with {key}={state[key]!r}, the trainer has {key}={value!r}"
                + (" (the replayed rows' fields follow `beta`, `use_vllm` and the vLLM importance-sampling settings)."
                   if key == "payload" else ".")
            )  # fmt: skip
    # Into the user's scheduler (it may hold objects a file cannot rebuild, e.g. a custom featurizer): the file's
    # format, class and constructor arguments are checked first, and a state that does not fit changes nothing.
    restore = getattr(scheduler, "restore", None)
    if not callable(restore):
        raise InvalidInputError(
            f"{where}: the trainer's scheduler ({name}) has no `restore`, so it cannot resume in place; subclass "
            "banditlib.adapters.rlvr.Scheduler."
        )
    restore(path)
    return int(state["round"])
