"""banditlib.distributed: two and three gloo processes on the CPU, each updating on its own slice of one data set,
against ONE process that updated on all of it; bad input refused on every rank; torchrun on the documented example.

The ranks run tests/_distributed_worker.py (one launch per group size, shared by every test here) and write what
they saw; the checks below read it.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import _distributed_worker as W
import pytest
import torch
import torch.distributed as dist

import banditlib
from banditlib.distributed import _state, all_reduce_, broadcast_
from banditlib.policies.base import registered_policies

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
LOCAL = {"rng_seed", "rng_counter", "n_seen_", "since_train", "train_rounds"}


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def _launch(suite: str, world: int, out: Path) -> list[dict[str, Any]]:
    """Run ``world`` ranks of ``suite``, forked from a server that imported torch once (a fresh interpreter per rank
    would spend most of the test importing torch), and read what each saw."""
    ctx = multiprocessing.get_context("forkserver")
    # (the worker module itself may not import in the server, whose sys.path pytest has not extended: ignored)
    ctx.set_forkserver_preload(["torch", "banditlib.distributed", "_distributed_worker"])
    store = str(out / "store")
    procs = [ctx.Process(target=W.main, args=(suite, out, rank, world, store)) for rank in range(world)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=300)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in procs] == [0] * world, f"ranks exited with {[p.exitcode for p in procs]}"
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(world)]


@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks"])
def group(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[dict[str, Any]]]:
    world = request.param
    return world, _launch({2: "two", 3: "three"}[world], world, tmp_path_factory.mktemp(f"ranks{world}"))


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.to(torch.float64), want.to(torch.float64)
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-300)) if want.numel() else 0.0


def _rows(world: int, rank: int) -> list[int]:
    return [t for phase in range(len(W.PHASES)) for t in W.rows_of(rank, world, phase)]


def _selected_like(ref: banditlib.Policy, seen: dict[str, Any], shared: bool) -> banditlib.Selection:
    """``ref.select`` on the probe with the generator of the rank that recorded ``seen``."""
    ref.load_state_dict({"rng_seed": seen["state"]["rng_seed"], "rng_counter": seen["rng_counter"]}, strict=False)
    return ref.select(W.probe(shared))


# ------------------------------------------------------------------------------------------------ exact


def test_ridge_policies_equal_one_process_that_saw_all_the_data(group: tuple[int, list[dict[str, Any]]]) -> None:
    world, ranks = group
    for name in W.SUITES[{2: "two", 3: "three"}[world]][0]:
        if name in W.FORGET:
            continue  # test_forgetting_equals_one_process_whose_rounds_hold_every_ranks_rows
        spec = W.RIDGE[name]
        one = W.make(spec, seed=0)
        W.feed(one, spec[2], list(range(W.PHASES[-1][1])))
        want = one.state_dict()
        tol = 1e-12 if one.dtype == torch.float64 else 1e-5
        for rank, seen in enumerate(ranks):
            got = seen[name]["state"]
            for key in ("A_", "b_", "A_inv_", "theta_"):
                if key in want:
                    limit = 1e-12 if key in ("A_", "b_") else tol  # the sums are float64 whatever the dtype
                    assert _rel(got[key], want[key]) <= limit, (name, rank, key, _rel(got[key], want[key]))
            if "n_updates_" in want:
                assert torch.equal(got["n_updates_"], want["n_updates_"]), (name, rank)
                assert int(got["refresh_counter"].sum()) == 0  # every inverse refreshed exactly
            for key, value in got.items():  # every rank holds the same state, bit for bit (but the generator)
                if key not in LOCAL:
                    assert torch.equal(value, ranks[0][name]["state"][key]), (name, rank, key)
            assert int(got["rng_seed"]) == W.seed_of(rank)  # the generator stays the rank's own
            sel = _selected_like(one, seen[name], spec[2])
            torch.testing.assert_close(seen[name]["scores"], sel.scores, rtol=tol, atol=tol)
            assert torch.equal(seen[name]["actions"], sel.actions), (name, rank)


def _forgetting_reference(world: int, shared: bool, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``A``, ``b`` of discounted ridge regression, round by round in float64: every model discounted toward the
    prior, ``A <- gamma A + (1 - gamma) reg I``, ``b <- gamma b``, then every rank's row of the round added."""
    x, a, r = W.data(shared)
    reg, gamma, M = cfg.get("reg", 1.0), cfg["forget"], 1 if shared else W.ARMS
    eye = torch.eye(W.DIM, dtype=torch.float64)
    A, b = reg * eye.repeat(M, 1, 1), torch.zeros(M, W.DIM, dtype=torch.float64)
    for t in range(W.FORGET_PHASES[-1][1]):
        A, b = gamma * A + (1 - gamma) * reg * eye, gamma * b
        for i in range(t * world, (t + 1) * world):
            m, v = (0, x[i, a[i, 0]]) if shared else (int(a[i, 0]), x[i])
            A[m] += torch.outer(v, v)
            b[m] += r[i, 0] * v
    return A, b


def test_forgetting_equals_one_process_whose_rounds_hold_every_ranks_rows(
    group: tuple[int, list[dict[str, Any]]],
) -> None:
    """With ``forget < 1`` and the same rounds on every rank, each rank ends with the discounted statistics of one
    process whose round ``t`` learned every rank's row ``t``: against the float64 recurrence, and for the shared
    model against a real process that made those rounds (one ``update`` row of all the ranks' arms per round)."""
    world, ranks = group
    x, a, r = W.data(True)
    for name, spec in W.FORGET.items():
        A, b = _forgetting_reference(world, spec[2], spec[1])
        rounds = W.FORGET_PHASES[-1][1]
        for rank, seen in enumerate(ranks):
            got = seen[name]["state"]
            assert _rel(got["A_"], A) <= 1e-12 and _rel(got["b_"], b) <= 1e-12, (name, rank)
            theta = torch.linalg.solve(A, b.unsqueeze(-1)).squeeze(-1)
            assert _rel(got["theta_"], theta) <= 1e-10, (name, rank)
            assert int(got["n_rounds_"]) == rounds and int(got["n_updates_"].sum()) == rounds * world
            for key, value in got.items():
                if key not in LOCAL:
                    assert torch.equal(value, ranks[0][name]["state"][key]), (name, rank, key)
        if spec[2]:
            one = W.make(spec, seed=0)
            for t in range(rounds):
                rows = list(range(t * world, (t + 1) * world))
                contexts = x[rows].reshape(1, world * W.ARMS, W.DIM)  # every rank's arms, side by side
                chosen = (a[rows, 0] + torch.arange(world) * W.ARMS)[None]
                one.update(contexts, chosen, r[rows, 0][None])
            got = ranks[0][name]["state"]
            assert _rel(got["A_"], one.A_) <= 1e-12 and _rel(got["theta_"], one.theta_) <= 1e-10, name
            assert int(one.n_rounds_) == rounds


def test_frozen_networks_equal_one_process_that_saw_all_the_data(group: tuple[int, list[dict[str, Any]]]) -> None:
    """Networks that never train keep sums only (``Z_diag_``, ``Z_``, NeuralLin's ``A_``, ``b_``): exact."""
    world, ranks = group
    for name in W.SUITES[{2: "two", 3: "three"}[world]][1]:
        spec = W.FROZEN[name]
        one = W.make(spec, seed=W.seed_of(0))  # broadcast_ gave every rank rank 0's initial network
        W.feed(one, spec[2], list(range(W.PHASES[-1][1])))
        want = one.state_dict()
        for rank, seen in enumerate(ranks):
            got = seen[name]["state"]
            assert torch.equal(got["net.params"], want["net.params"]) and torch.equal(got["theta0_"], want["theta0_"])
            for key in ("Z_diag_", "Z_", "Z_inv_", "A_", "b_", "A_inv_", "theta_"):
                if key in want:
                    assert _rel(got[key], want[key]) <= 1e-12, (name, rank, key, _rel(got[key], want[key]))
            assert int(got["n_seen_"]) == len(_rows(world, rank))  # the history stays the rank's own
            sel = _selected_like(one, seen[name], spec[2])
            torch.testing.assert_close(seen[name]["scores"], sel.scores, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ averaged


def test_trained_networks_are_averaged_and_identical_on_every_rank(group: tuple[int, list[dict[str, Any]]]) -> None:
    """What all_reduce_ promises the networks that train: parameters and Adam's moments are the mean of the
    ranks', Adam's step count the base plus the largest increment, ``Z_diag_`` the base plus the summed increments,
    NeuralLin's ``A_``, ``b_`` rebuilt over the union of the histories under the averaged network; every rank then
    holds the same state but its own history, and scores alike."""
    world, ranks = group
    for name in W.SUITES[{2: "two", 3: "three"}[world]][2]:
        seen = [r[name] for r in ranks]
        base, pres, post = seen[0]["base"], [s["pre"] for s in seen], seen[0]["state"]
        assert any(not torch.equal(p["net.params"], base["net.params"]) for p in pres), "no rank trained"
        for key, value in post.items():
            if key in LOCAL or key.startswith("hist_"):
                for s in seen:  # untouched by the sync
                    assert torch.equal(s["state"][key], s["pre"][key]) or key in ("rng_counter",), (name, key)
                continue
            for s in seen:
                assert torch.equal(s["state"][key], value), (name, key)
            stacked = torch.stack([p[key].to(torch.float64) for p in pres])
            if key.endswith(".params") or re.fullmatch(r"adam\d*_[mv]_", key):
                assert _rel(value, stacked.mean(0)) <= 1e-12, (name, key)
            elif re.fullmatch(r"adam\d*_t_", key):
                assert int(value) == int(stacked.max()), (name, key)
            elif key == "Z_diag_":
                want = base[key] + (stacked - base[key]).sum(0)
                assert _rel(value, want) <= 1e-12, (name, key)
        if name == "NeuralLinTS":
            one = W.make(W.TRAINED[name], seed=W.seed_of(0))
            one.load_state_dict(post)
            x = torch.cat([s["state"]["hist_x_"][: int(s["state"]["n_seen_"])] for s in seen])
            r = torch.cat([s["state"]["hist_r_"][: int(s["state"]["n_seen_"])] for s in seen])
            phi = one._phi(x).to(torch.float64)
            A = one.reg * torch.eye(phi.shape[1], dtype=torch.float64) + phi.T @ phi
            assert _rel(post["A_"], A) <= 1e-12 and _rel(post["b_"], phi.T @ r.to(torch.float64)) <= 1e-12
        for s in seen:  # the same network and statistics: the same means (the noise is each rank's own)
            assert torch.equal(s["mean"], seen[0]["mean"]), name
            if name != "NeuralLinTS":
                assert torch.equal(s["scores"], seen[0]["scores"]), name


# ------------------------------------------------------------------------------------------------ refusals

REFUSALS = {  # scenario -> (error, what the message names; {last} is the odd rank)
    "bad-class": ("InvalidInputError", ["class", "rank {last} holds a LinTS"]),
    "bad-config": ("InvalidInputError", ["constructor arguments", "`alpha` = 2.0 on rank {last}"]),
    "bad-dim": ("InvalidInputError", ["`dim` = 4 on rank {last}"]),
    "bad-dtype": ("InvalidInputError", ["rank {last} has dtype float32"]),
    "bad-not-policy": ("InvalidInputError", ["rank {last}: `policy` is a Linear, not a banditlib Policy"]),
    "bad-rounds": (
        "InvalidInputError",
        ["rank {last} made 4 rounds since the last sync where rank 0 made 3", "same number of rounds"],
    ),
    "bad-base": ("StateError", ["rank 1 does not start from", "broadcast_"]),
    "bad-loaded": ("StateError", ["`n_updates_`", "broadcast_"]),
    "bad-conditioning": ("InvalidInputError", ["ill-conditioned"]),
    "bad-one-rank-fails": ("NumericalError", ["rank {last}"]),
    "bad-group": ("InvalidInputError", ["`group` must be a torch.distributed ProcessGroup or None; got 'world'"]),
    "bad-src": ("InvalidInputError", ["`src` must be a rank"]),
    "bad-src-differs": ("InvalidInputError", ["rank {last} passed src=1"]),
}


@pytest.mark.parametrize("scenario", sorted(REFUSALS))
def test_bad_input_raises_on_every_rank_and_changes_nothing(
    group: tuple[int, list[dict[str, Any]]], scenario: str
) -> None:
    world, ranks = group
    error, needles = REFUSALS[scenario]
    for rank, seen in enumerate(ranks):
        got = seen[scenario]
        assert got["error"] == error, (rank, got)
        for needle in needles:
            assert needle.format(last=world - 1) in got["message"], (rank, needle, got["message"])
        assert "Nothing was" in got["message"] and got["unchanged"], (rank, got)


def test_a_process_outside_the_group_is_refused(group: tuple[int, list[dict[str, Any]]]) -> None:
    _, ranks = group
    assert ranks[0]["not-a-member"]["error"] == ""  # rank 0 synced with itself
    for seen in ranks[1:]:
        got = seen["not-a-member"]
        assert got["error"] == "StateError" and "not a member of `group`" in got["message"] and got["unchanged"]


def test_the_group_still_syncs_after_the_refusals(group: tuple[int, list[dict[str, Any]]]) -> None:
    _, ranks = group
    _, a, _ = W.data(False)
    want = torch.bincount(a[list(range(*W.PHASES[0]))].reshape(-1), minlength=W.ARMS)
    for seen in ranks:
        assert torch.equal(seen["after-refusals"]["n_updates"], want)


def test_outside_a_process_group_is_an_error() -> None:
    assert not dist.is_initialized()
    policy = banditlib.LinUCB(dim=2, seed=0)
    policy.update(torch.ones(1, 3, 2), torch.tensor([[1]]), torch.tensor([[1.0]]))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for call in (lambda: all_reduce_(policy), lambda: broadcast_(policy), lambda: all_reduce_("not a policy")):  # type: ignore[arg-type]
        with pytest.raises(banditlib.StateError, match=r"no torch.distributed process group .* init_process_group"):
            call()
    assert all(torch.equal(v, before[k]) for k, v in policy.state_dict().items())


def test_every_registered_policy_has_a_rule_for_every_state_entry() -> None:
    """A new policy, or a new buffer, must say how it is synced before all_reduce_ accepts it."""
    for name, cls in registered_policies().items():
        policy = cls(dim=2, seed=0)
        plan, unknown = _state.sync_plan(policy, dict(policy.state_dict()))
        assert not unknown, f"{name}: no sync rule for {unknown}"
        if "A_" in plan:
            assert plan["A_"] == plan["b_"] == _state.SUM, name


# ------------------------------------------------------------------------------------------------ torchrun


def _documented_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "distributed.md").read_text(), flags=re.S)
    (script,) = [b for b in blocks if "torchrun" in b]
    return script


def test_torchrun_runs_the_documented_example(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists(), "torchrun ships with torch"
    script = tmp_path / "sync_example.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + _documented_script())
    proc = _run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in range(2):
        assert f"rank {rank} of 2: 60 rows here, 120 in the statistics, as in one process" in proc.stdout, proc.stdout
