"""The collectives of a sync and what is computed between them: reduce, recompute, agree, commit."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from banditlib import linalg
from banditlib.distributed._state import BASES, COUNT, MAX, MEAN, ROUNDS, SUM, View, capture
from banditlib.errors import BanditError, InvalidInputError, NumericalError, StateError
from banditlib.policies.neural import GradientEstimator
from banditlib.policies.neural_linear import NeuralLinearEstimator
from banditlib.policies.ridge import RidgeEstimator

ERRORS: list[type[BanditError]] = [InvalidInputError, NumericalError, StateError]


def membership(group: Any, where: str) -> tuple[int, int]:
    """This process's rank in ``group`` and the group's size; raise where no collective can be made."""
    if not (dist.is_available() and dist.is_initialized()):
        raise StateError(
            f"{where}: no torch.distributed process group is initialised; call torch.distributed."
            "init_process_group() first (under torchrun: init_process_group('gloo') or ('nccl'))."
        )
    # new_group() hands the processes outside the group this marker instead of a group
    outside = group is dist.GroupMember.NON_GROUP_MEMBER
    if group is not None and not outside and not isinstance(group, dist.ProcessGroup):
        raise InvalidInputError(
            f"{where}: `group` must be a torch.distributed ProcessGroup or None; got {group!r}. Nothing was done: "
            "the policy is unchanged."
        )
    rank = -1 if outside else dist.get_rank(group)
    if rank < 0:
        raise StateError(
            f"{where}: this process is not a member of `group`; only the group's ranks may call it. Nothing was "
            "done: the policy is unchanged."
        )
    return rank, dist.get_world_size(group)


def comm_device(group: Any, device: torch.device) -> torch.device:
    """Where the reduced tensors must live: on a GPU for nccl, on the CPU for gloo."""
    backend = str(dist.get_backend(group)).lower()
    if "nccl" not in backend or ("gloo" in backend and device.type != "cuda"):
        return torch.device("cpu")
    return device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())


def reduced(t: torch.Tensor, op: Any, group: Any, device: torch.device) -> torch.Tensor:
    """``t`` reduced over the group (a copy on ``t``'s device; ``t`` itself is not changed)."""
    buf = t.to(device, copy=True)
    if buf.numel():
        dist.all_reduce(buf, op=op, group=group)
    return buf.to(t.device)


def unpack(view: View, names: list[str], flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for n in names:
        t = view.state[n]
        out[n] = flat[offset : offset + t.numel()].view(t.shape).to(t.device)
        offset += t.numel()
    return out


def reduce_increments(
    view: View, group: Any, world: int, device: torch.device
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The reduced source entries (float64 / int64), and the ranks' failure flags of a second round, if any."""
    if view.base is None:  # inspect_policy captures one for every reducible policy: a bug if missing
        raise StateError("all_reduce_(): internal error: no synced starting state was captured for this policy.")
    state, base, plan = view.state, dict(view.base.tensors), view.plan
    f64 = torch.float64
    if view.rounds is not None:
        # Forgetting: every rank made the same R rounds, and R rounds discount the base alike on every rank,
        # gamma^R (A_base - reg I) + reg I and gamma^R b_base; each rank's increment over that discounted base is
        # its own discounted data, and their sum is the data of one process whose round t held every rank's rows.
        policy = view.policy
        if not isinstance(policy, RidgeEstimator):  # inspect_policy counts rounds for ridge policies only
            raise StateError("all_reduce_(): internal error: rounds counted for a policy without forgetting.")
        scale = policy.forget**view.rounds
        eye = torch.eye(policy.dim, dtype=f64, device=base["A_"].device)
        base["A_"] = (base["A_"].to(f64) - policy.reg * eye) * scale + policy.reg * eye
        base["b_"] = base["b_"].to(f64) * scale
    floats = [n for n, kind in plan.items() if kind in (SUM, MEAN)]
    counts = [n for n, kind in plan.items() if kind == COUNT or (kind == ROUNDS and view.rounds is None)]
    maxes = [n for n, kind in plan.items() if kind == MAX]

    def increments(names: list[str], dtype: torch.dtype) -> torch.Tensor:
        parts = [(state[n].detach().to(dtype) - base[n].to(state[n].device, dtype)).reshape(-1) for n in names]
        return torch.cat(parts) if parts else torch.empty(0, dtype=dtype)

    policy = view.policy
    refit = isinstance(policy, NeuralLinearEstimator)
    # whether the rank's network changed since the last sync (then its A_, b_ are over other features)
    changed = refit and not torch.equal(state["net.params"].detach(), base["net.params"].to(policy.device))
    trained = torch.tensor([int(changed)], device=policy.device)
    summed = reduced(increments(floats, f64), dist.ReduceOp.SUM, group, device)
    counted = reduced(torch.cat([increments(counts, torch.long), trained]), dist.ReduceOp.SUM, group, device)
    largest = reduced(increments(maxes, torch.long), dist.ReduceOp.MAX, group, device)
    new: dict[str, torch.Tensor] = {}
    for n, inc in unpack(view, floats, summed).items():
        b64 = base[n].to(inc.device, f64)
        if plan[n] == SUM:
            new[n] = b64 + inc
        else:
            mean = b64 + inc / world
            # a mean of non-negative second moments, in increment form, can round a hair below zero
            new[n] = mean.clamp_min(0.0) if n.endswith("_v_") else mean
    for n, inc in unpack(view, counts, counted[:-1]).items():
        new[n] = base[n].to(inc.device) + inc
    for n, inc in unpack(view, maxes, largest).items():
        new[n] = base[n].to(inc.device) + inc
    if view.rounds is not None:  # the combined process made the same R rounds
        new["n_rounds_"] = state["n_rounds_"].detach().clone()
    status = None
    if refit and int(counted[-1]) > 0:
        new["A_"], new["b_"], status = refit_union(view, new, group, device)
    return new, status


def refit_union(
    view: View, new: dict[str, torch.Tensor], group: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NeuralLin*'s ``A = reg I + sum phi phi^T``, ``b = sum phi r`` over the union of the ranks' histories, under
    the averaged network (what the policy's own refit computes over one history)."""
    policy = view.policy
    if not isinstance(policy, NeuralLinearEstimator):  # only NeuralLin* policies are rebuilt from histories
        raise StateError(f"all_reduce_(): internal error: {type(policy).__name__} has no history refit.")
    q = policy.A_.shape[0]
    failed = 0
    try:
        x, r = policy._history()
        params = new["net.params"].to(policy.dtype)
        h = x
        with torch.no_grad():
            for W, c in policy.net.layers(params)[:-1]:  # MLP.features, at the averaged parameters
                h = policy.net.act(torch.nn.functional.linear(h, W, c))
        phi = torch.cat([h, torch.ones_like(h[:, :1])], dim=1).to(torch.float64)
        local = torch.cat([(phi.T @ phi).reshape(-1), phi.T @ r.to(torch.float64)])
    except (RuntimeError, ValueError, ArithmeticError):
        failed, local = 1, torch.zeros(q * q + q, dtype=torch.float64, device=policy.A_.device)
    # the failure flag travels with the sums, so a rank that failed cannot leave the others waiting
    total = reduced(torch.cat([local, torch.tensor([float(failed)], device=local.device)]),
                        dist.ReduceOp.SUM, group, device)  # fmt: skip
    eye = torch.eye(q, dtype=torch.float64, device=total.device)
    return policy.reg * eye + total[: q * q].view(q, q), total[q * q : -1].clone(), total[-1:].to(torch.long)


def derive(view: View, new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The full new state: source entries cast back, inverses and estimates recomputed as the policy does."""
    policy = view.policy
    out = {n: t.to(view.state[n].device, view.state[n].dtype) for n, t in new.items()}
    if isinstance(policy, (RidgeEstimator, NeuralLinearEstimator)) and "A_" in out:
        A, b = out["A_"], out["b_"]
        A3, b2 = (A, b) if isinstance(policy, RidgeEstimator) else (A[None], b[None])
        if not (bool(torch.isfinite(A3).all()) and bool(torch.isfinite(b2).all())):
            raise NumericalError("the summed statistics `A_`, `b_` are not finite.")
        try:
            policy._check_conditioning(A3, policy.reg)
        except InvalidInputError as exc:  # its message speaks of update(): keep what follows the method's name
            raise InvalidInputError(f"the summed statistics were refused: {str(exc).split(': ', 1)[-1]}") from None
        A_inv = linalg.refresh_inverse(A3, policy.dtype)
        theta = linalg.ridge_solution(A_inv, b2, policy.dtype)
        if isinstance(policy, RidgeEstimator):
            out.update(A_inv_=A_inv, theta_=theta, refresh_counter=torch.zeros_like(view.state["refresh_counter"]))
        else:
            out.update(A_inv_=A_inv[0], theta_=theta[0])
    if isinstance(policy, GradientEstimator) and "Z_" in out:
        out["Z_inv_"] = linalg.refresh_inverse(out["Z_"][None], policy.dtype)[0]
    return out


def finish(
    view: View,
    new: dict[str, torch.Tensor],
    status: torch.Tensor | None,
    group: Any,
    rank: int,
    world: int,
    device: torch.device,
    where: str,
) -> None:
    """Check the new state on every rank, agree that every rank succeeded, then commit and record the base."""
    policy, error, code = view.policy, None, 0
    try:
        if status is not None and int(status[0]) > 0:
            raise NumericalError("a rank could not compute its history's statistics under the averaged network.")
        if view.base is not None:  # all_reduce_: recompute what derives from the reduced entries
            new = derive(view, new)
        policy._check_state({**view.state, **new}, where)
    except (BanditError, RuntimeError, ArithmeticError) as exc:
        error = exc
        code = next((i + 1 for i, cls in enumerate(ERRORS) if isinstance(exc, cls)), 2)
    codes = torch.zeros(world, dtype=torch.long)
    codes[rank] = code
    codes = reduced(codes, dist.ReduceOp.SUM, group, device)
    if bool(codes.any()):
        tail = " Nothing was changed on any rank."
        if error is not None:
            raise ERRORS[code - 1](f"{where}: rank {rank}: {str(error).rstrip('.')}.{tail}") from error
        r = int(torch.nonzero(codes)[0])
        raise ERRORS[int(codes[r]) - 1](f"{where}: rank {r} could not complete the sync (see its error).{tail}")
    with torch.no_grad():
        for n, t in new.items():
            view.state[n].copy_(t)
    policy._invalidate_caches()
    BASES[policy] = capture(policy, view.plan)
