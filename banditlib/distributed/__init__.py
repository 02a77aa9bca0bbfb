"""Data parallelism: keep one policy consistent across the processes of a ``torch.distributed`` group.

Each rank updates its own copy of a policy on its own data; [`all_reduce_`][banditlib.distributed.all_reduce_] then
makes every rank's copy what one process that saw every rank's updates would hold (exactly for the ridge
policies, by model averaging for the networks), and [`broadcast_`][banditlib.distributed.broadcast_] makes the
ranks start from one state. Per state entry (see docs/distributed.md for the table):

* **summed**: ridge sufficient statistics ``A_``, ``b_`` (float64), the neural ``Z_diag_`` / ``Z_`` (float64) and
  the counters ``n_updates_``: ``base + sum_r (now_r - base)``, where ``base`` is the value every rank held at the
  last sync (before the first: a fresh policy's). Inverses and estimates (``A_inv_``, ``theta_``, ``Z_inv_``)
  are then recomputed exactly from the float64 sums, by the refresh the policy itself uses.
* **averaged**: network parameters and Adam's moments, ``base + mean_r (now_r - base)``; Adam's step count
  ``adam*_t_`` takes the largest increment.
* **per rank**: the generator (``rng_seed``, ``rng_counter``), the histories (``hist_*``, ``n_seen_``) and the
  training schedule (``since_train``, ``train_rounds``).

Every call first exchanges a signature of the policy (class, constructor arguments, dtype, state shapes, the
state at the last sync) with ``all_gather_object`` and raises on every rank before anything is reduced if the
ranks disagree; then a few ``all_reduce`` calls of float64 and int64 tensors (gloo and nccl both have them);
then every rank checks its new state, the ranks agree that all succeeded, and only then is anything written.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from banditlib.distributed._collectives import comm_device, finish, membership, reduce_increments, reduced, unpack
from banditlib.distributed._state import LOCAL, agree, inspect_policy, lock_of
from banditlib.policies.base import Policy

__all__ = ["all_reduce_", "broadcast_"]


def all_reduce_(policy: Policy, group: dist.ProcessGroup | None = None) -> Policy:
    """Sum the ranks' updates since the last sync into every rank's policy, in place.

    Ridge policies ([`LinUCB`][banditlib.LinUCB], [`LinTS`][banditlib.LinTS], [`Greedy`][banditlib.Greedy],
    [`EpsilonGreedy`][banditlib.EpsilonGreedy]) end up exactly as one process that made every rank's updates:

        A = A_base + sum_r (A_r - A_base),   b = b_base + sum_r (b_r - b_base),   A_inv = chol_inv(A),

    with ``A``, ``b`` in float64 and ``n_updates_`` summed alike; only the float64 summation order differs.
    Neural policies average their parameters and Adam's moments (``base + mean_r (p_r - base)``), sum the
    increments of ``Z_diag_`` / ``Z_`` and, for NeuralLinUCB / NeuralLinTS, rebuild ``A``, ``b`` over the union
    of the ranks' histories under the averaged network when any rank trained (summed as above when none did).
    With forgetting (``forget < 1``) every rank must have made the same ``R`` rounds (rows of ``update``) since
    the last sync; the policy then equals one process whose round ``t`` held every rank's row ``t``: each rank's
    increment is taken over the base discounted by ``R`` rounds (``gamma^R (A_base - reg I) + reg I``,
    ``gamma^R b_base``) and the increments are summed; ``n_rounds_`` ends at ``base + R``.
    The generator and the histories stay per rank. The policy's lock is held throughout; on any error, every
    rank's policy is left as it was.

    Args:
        policy: the rank's copy of the policy: the same class, constructor arguments, dtype and state shapes on
            every rank of ``group`` (seeds and devices may differ).
        group: the process group (``None``: the default group); every member must call with its copy.

    Returns:
        ``policy`` itself, synced.

    Raises:
        StateError: no process group is initialised, this process is not in ``group``, or the ranks do not
            share the state of the last sync (neural policies with different seeds, a policy loaded or edited
            since: call [`broadcast_`][banditlib.distributed.broadcast_] first). Raised on every rank.
        InvalidInputError: ``policy`` is not a banditlib [`Policy`][banditlib.Policy] on some rank, the ranks'
            policies differ in class, constructor arguments, dtype or state shapes, a ridge policy with
            ``forget < 1`` made different numbers of rounds on different ranks since the last sync, or the summed
            statistics are too ill-conditioned to factorise. Raised on every rank,
            naming the rank and the field.
        NumericalError: the summed statistics are not finite or not positive definite (every rank raises).

    Examples:
        One process is a group of one (under ``torchrun``, each rank runs the same code on its own data):

        >>> import os, tempfile, torch, torch.distributed as dist, banditlib
        >>> from banditlib.distributed import all_reduce_
        >>> store = os.path.join(tempfile.mkdtemp(), "store")
        >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        >>> policy = banditlib.LinUCB(dim=2, arms=3, seed=0, dtype=torch.float64)
        >>> policy.update(torch.eye(2), torch.tensor([[0], [2]]), torch.tensor([[1.0], [0.5]]))
        >>> all_reduce_(policy) is policy
        True
        >>> policy.n_updates_.tolist(), [round(t, 9) for t in policy.theta_[0].tolist()]
        ([1, 0, 1], [0.5, 0.0])
        >>> dist.destroy_process_group()
    """
    where = "banditlib.distributed.all_reduce_()"
    rank, world = membership(group, where)
    with lock_of(policy):
        signature, view = inspect_policy(policy, where, reduce=True, src=None)
        agree(signature, group, world, where, "reduced")
        if view is None or not any(kind != LOCAL for kind in view.plan.values()):
            return policy  # nothing to sync (Random)
        device = comm_device(group, view.policy.device)
        new, status = reduce_increments(view, group, world, device)
        finish(view, new, status, group, rank, world, device, where)
    return policy


def broadcast_(policy: Policy, src: int = 0, group: dist.ProcessGroup | None = None) -> Policy:
    """Copy rank ``src``'s learned state into every rank's policy, in place, and make it the state of the last
    sync: the next [`all_reduce_`][banditlib.distributed.all_reduce_] sums only what follows.

    Everything but the generator (``rng_seed``, ``rng_counter``), the histories (``hist_*``, ``n_seen_``) and the
    training schedule (``since_train``, ``train_rounds``) is copied bit for bit. Call it once before the first
    update when the ranks' neural policies were built with different seeds (the seed also draws the initial
    network), and after loading a checkpoint (on ``src`` alone, or the same one on every rank: its history stays
    on the ranks that loaded it, so a checkpoint loaded everywhere is then trained on by every rank).

    Args:
        policy: the rank's copy of the policy (the same class, constructor arguments, dtype and state shapes on
            every rank).
        src: the rank of ``group`` whose state is copied; the same on every rank.
        group: the process group (``None``: the default group).

    Returns:
        ``policy`` itself.

    Raises:
        StateError: no process group is initialised, or this process is not in ``group``.
        InvalidInputError: ``policy`` is not a banditlib Policy on some rank, the ranks' policies differ in
            class, constructor arguments, dtype or state shapes, or ``src`` is not a rank of ``group`` (or differs
            between ranks). Raised on every rank before anything is copied.

    Examples:
        >>> import os, tempfile, torch, torch.distributed as dist, banditlib
        >>> from banditlib.distributed import broadcast_
        >>> store = os.path.join(tempfile.mkdtemp(), "store")
        >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        >>> policy = banditlib.NeuralUCB(dim=2, hidden=(4,), seed=dist.get_rank())  # seed = base + rank
        >>> before = policy.net.params.detach().clone()
        >>> broadcast_(policy, src=0) is policy, torch.equal(policy.net.params, before)
        (True, True)
        >>> dist.destroy_process_group()
    """
    where = "banditlib.distributed.broadcast_()"
    rank, world = membership(group, where)
    with lock_of(policy):
        signature, view = inspect_policy(policy, where, reduce=False, src=src)
        if not (type(src) is int and 0 <= src < world):
            signature["problems"].append(("input", f"`src` must be a rank of the group, in [0, {world}); got {src!r}."))
        agree(signature, group, world, where, "copied")
        if view is None:
            return policy
        names = [n for n, kind in view.plan.items() if kind != LOCAL]
        floats = [n for n in names if view.state[n].is_floating_point()]
        ints = [n for n in names if n not in floats]
        device = comm_device(group, view.policy.device)

        def pack(group_names: list[str], dtype: torch.dtype, zero: float) -> torch.Tensor:
            if rank == src:
                parts = [view.state[n].detach().to(dtype).reshape(-1) for n in group_names]
                return torch.cat(parts) if parts else torch.empty(0, dtype=dtype)
            # -0.0 is the exact identity of float addition (x + -0.0 == x bit for bit, also for x = +0.0 and
            # x = -0.0), so the sum over ranks is src's value unchanged: a broadcast out of all_reduce
            return torch.full((sum(view.state[n].numel() for n in group_names),), zero, dtype=dtype)

        summed_f = reduced(pack(floats, torch.float64, -0.0), dist.ReduceOp.SUM, group, device)
        summed_i = reduced(pack(ints, torch.long, 0), dist.ReduceOp.SUM, group, device)
        new = {**unpack(view, floats, summed_f), **unpack(view, ints, summed_i)}
        new = {n: t.to(view.state[n].dtype) for n, t in new.items()}
        finish(view, new, None, group, rank, world, device, where)
    return policy
