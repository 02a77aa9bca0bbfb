"""BanditGRPOTrainer through ``trainer.train()`` on a tiny Llama built in-process (offline, CPU)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl")

from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig

from banditlib.adapters import _trl_batch as tb
from banditlib.adapters._trl_sketch import lm_head_sketch
from banditlib.adapters.rlvr import (
    ConsistencyFilter,
    DynamicSamplingFilter,
    InfluenceLabel,
    MaxVarianceScheduler,
    OverlongFilter,
    PriorityReplay,
    RecencyReplay,
    RolloutBatch,
    RolloutScheduler,
    Schedule,
    Scheduler,
    ThresholdScheduler,
    UniformScheduler,
)
from banditlib.adapters.rlvr.influence import head_sketch, sketch_matrices
from banditlib.adapters.trl import BanditGRPOTrainer, default_answer_fn
from banditlib.errors import InvalidInputError

G = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


VOCAB = ["<pad>", "<eos>", "<bos>", "<unk>", "+", "=", *map(str, range(10))]


def make_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def make_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)


def reward_ones(completions: list[str], **kwargs: Any) -> list[float]:
    """Number of "1" tokens: varies across a random model's completions, so groups have spread."""
    return [float(c.split().count("1")) for c in completions]


class _FirstK(Scheduler):
    """Stand-in: train on the first ``k`` rows of each round, replay nothing."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def _schedule(self, batch: RolloutBatch, round_: int, where: str, probe: RolloutBatch | None) -> Schedule:
        k = min(self.k, len(batch))
        return Schedule(torch.arange(k), torch.ones(k), RolloutBatch.empty_like(batch), torch.ones(0),
                        torch.full((len(batch),), math.nan), math.nan)  # fmt: skip


SCHEDULERS: dict[str, Any] = {
    "uniform": lambda: UniformScheduler(),
    "pods": lambda: MaxVarianceScheduler(keep_fraction=0.5),
    "dapo": lambda: DynamicSamplingFilter(),
    "threshold": lambda: ThresholdScheduler(min_abs_advantage=0.1),
    "recency": lambda: RecencyReplay(reuse=4, buffer_rounds=2),
    "cbs-group": lambda: RolloutScheduler(preset="paper", mode="group", keep_fraction=0.5, seed=0),
    "cbs-both": lambda: RolloutScheduler(preset="paper", mode="both", keep_fraction=0.5, reuse=2, seed=0),
    "default": lambda: RolloutScheduler(seed=0),
    "default-both": lambda: RolloutScheduler(mode="both", reuse=2, seed=0),
    "consistency": lambda: ConsistencyFilter(),
    "overlong": lambda: OverlongFilter(),
    "priority": lambda: PriorityReplay(replay_ratio=0.5, seed=0),
    "influence-both": lambda: RolloutScheduler(mode="both", label=InfluenceLabel("next"), reuse=2, seed=0),
}
ADAPTER: dict[str, dict[str, Any]] = {"influence-both": {"grad_sketch": 16}}  # trainer keywords a scheduler needs


def dataset() -> Dataset:
    return Dataset.from_dict({"prompt": [f"{a} + {b} =" for a in range(4) for b in range(4)]})


def config(tmp: Path, **kw: Any) -> GRPOConfig:
    base: dict[str, Any] = dict(
        output_dir=str(tmp),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        num_generations=G,
        max_completion_length=6,
        max_steps=2,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-2,
        seed=0,
        disable_tqdm=True,
    )
    base.update(kw)
    return GRPOConfig(**base)


def trainer(
    tmp: Path, scheduler: Any, model: Any = None, adapter: dict[str, Any] | None = None, reward: Any = reward_ones,
    **kw: Any,
) -> BanditGRPOTrainer:  # fmt: skip
    """A BanditGRPOTrainer on the tiny model; ``adapter``: its own keywords (``answer_fn``, ``grad_sketch``)."""
    return BanditGRPOTrainer(
        scheduler=scheduler,
        model=make_model() if model is None else model,
        reward_funcs=reward,
        args=config(tmp, **kw),
        train_dataset=dataset(),
        processing_class=make_tokenizer(),
        **(adapter or {}),
    )


class Spy:
    """Records every call of ``_compute_loss`` (inputs, loss) and every ``schedule`` (batch, decision)."""

    def __init__(self, tr: BanditGRPOTrainer) -> None:
        self.losses: list[tuple[dict[str, Any], float]] = []
        self.rounds: list[tuple[RolloutBatch, Any]] = []
        compute, sch = tr._compute_loss, tr.rollout_scheduler
        schedule = sch.schedule

        def spy_loss(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
            loss = compute(model, inputs)
            self.losses.append(({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in inputs.items()},
                                float(loss.detach())))  # fmt: skip
            return loss

        def spy_schedule(batch: RolloutBatch) -> Any:
            out = schedule(batch)
            self.rounds.append((batch, out))
            return out

        tr._compute_loss = spy_loss  # type: ignore[method-assign]
        sch.schedule = spy_schedule


def row_key(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple:
    p = tuple(prompt_ids[prompt_mask.bool()].tolist())
    return p, tuple(ids[: int(mask.sum())].tolist())


def batch_keys(batch: RolloutBatch, index: torch.Tensor) -> list[tuple]:
    pl = batch.payload
    out = []
    for i in index.tolist():
        pid, pm = pl["prompt_ids_rev"][i].flip(0), pl["prompt_mask_rev"][i].flip(0)
        out.append(row_key(pid, pm, pl["completion_ids"][i], pl["completion_mask"][i]))
    return out


def loss_keys(inputs: dict[str, Any]) -> list[tuple]:
    return [
        row_key(inputs["prompt_ids"][i], inputs["prompt_mask"][i], inputs["completion_ids"][i],
                inputs["completion_mask"][i])
        for i in range(inputs["prompt_ids"].shape[0])
        if int(inputs["completion_mask"][i].sum()) > 0
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_each_scheduler_trains(tmp_path: Path, name: str) -> None:
    tr = trainer(tmp_path, SCHEDULERS[name](), adapter=ADAPTER.get(name))
    tr.train()
    logs = [h for h in tr.state.log_history if "loss" in h]
    assert len(logs) == 2
    assert all(math.isfinite(h["loss"]) for h in logs)
    for key in ("kept_fraction", "replayed", "predicted_gain", "observed_gain", "policy_updates"):
        assert f"scheduler/{key}" in logs[0]
    if name in ("pods", "cbs-group"):
        assert logs[0]["scheduler/kept_fraction"] == 0.5
    if name in ("uniform", "recency", "priority"):
        assert logs[0]["scheduler/kept_fraction"] == 1.0
    if name == "recency":
        assert logs[1]["scheduler/replayed"] == 4.0
    elif name in ("priority", "default"):
        assert logs[1]["scheduler/replayed"] == 4.0  # replay_ratio 0.5 of the 8 fresh rows
    elif name not in ("cbs-both", "default-both", "influence-both"):
        assert logs[1]["scheduler/replayed"] == 0.0
    if name in ("cbs-both", "influence-both"):
        assert math.isfinite(logs[1]["scheduler/observed_gain"])  # the label of round 0 was observed


def test_unselected_rows_leave_the_loss(tmp_path: Path) -> None:
    tr = trainer(tmp_path, MaxVarianceScheduler(keep_fraction=0.5))
    spy = Spy(tr)
    tr.train()
    assert len(spy.rounds) == 2 and len(spy.losses) == 4  # 2 rounds x steps_per_generation 2
    for r, (batch, decision) in enumerate(spy.rounds):
        calls = spy.losses[2 * r : 2 * r + 2]
        seen = sorted(k for inputs, _ in calls for k in loss_keys(inputs))
        assert seen == sorted(batch_keys(batch, decision.fresh))
        rows = sum(inputs["prompt_ids"].shape[0] for inputs, _ in calls)
        assert rows == len(decision.fresh) == 4
        tokens = sum(int(inputs["completion_mask"].sum()) for inputs, _ in calls)
        assert all(int(inputs["num_items_in_batch"]) == tokens for inputs, _ in calls)


def test_replayed_rows_enter_with_stored_logprobs(tmp_path: Path) -> None:
    tr = trainer(tmp_path, RecencyReplay(reuse=4, buffer_rounds=2), max_steps=3)
    spy = Spy(tr)
    tr.train()
    for r in (1, 2):
        prev_batch, _ = spy.rounds[r - 1]
        batch, decision = spy.rounds[r]
        replay = decision.replay
        assert len(replay) == 4 and replay.round.tolist() == [r - 1] * 4
        # The scheduler hands back the stored behaviour log-probs of round r - 1 ...
        prev = dict(zip(batch_keys(prev_batch, torch.arange(len(prev_batch))), prev_batch.logprobs, strict=True))
        keys = batch_keys(replay, torch.arange(4))
        for k, lp in zip(keys, replay.logprobs, strict=True):
            torch.testing.assert_close(lp[: len(k[1])], prev[k][: len(k[1])])
        # ... and they reach the loss as old_per_token_logps (rows equal to a fresh row are ambiguous: skipped).
        current = set(batch_keys(batch, torch.arange(len(batch))))
        wanted = {k: lp for k, lp in zip(keys, replay.logprobs, strict=True) if k not in current}
        found = 0
        for inputs, _ in spy.losses[2 * r : 2 * r + 2]:
            assert "old_per_token_logps" in inputs
            for i, key in enumerate(loss_keys(inputs)):
                if key in wanted:
                    n = len(key[1])
                    torch.testing.assert_close(inputs["old_per_token_logps"][i, :n], wanted[key][:n])
                    found += 1
        assert found == sum(k not in current for k in keys) >= 1


@pytest.mark.parametrize(
    "kw",
    [{"num_iterations": 2}, {"gradient_accumulation_steps": 1, "steps_per_generation": 2}, {"beta": 0.1}],
    ids=["num_iterations", "steps_per_generation", "beta"],
)
def test_generation_and_kl_settings_train_with_replay(tmp_path: Path, kw: dict[str, Any]) -> None:
    model: Any = None
    if "beta" in kw:  # TRL builds the reference model from a path: save the tiny model locally
        make_model().save_pretrained(tmp_path / "model")
        model = str(tmp_path / "model")
    tr = trainer(tmp_path, SCHEDULERS["cbs-both"](), model=model, max_steps=3, **kw)
    spy = Spy(tr)
    tr.train()
    assert all(math.isfinite(loss) for _, loss in spy.losses)
    assert any(len(decision.replay) for _, decision in spy.rounds)
    for inputs, _ in spy.losses:
        n = inputs["prompt_ids"].shape[0]
        assert inputs["advantages"].shape == (n,)
        for key in ("old_per_token_logps", "ref_per_token_logps"):
            if key in inputs:
                assert inputs[key].shape == inputs["completion_ids"].shape
        assert ("ref_per_token_logps" in inputs) == ("beta" in kw)
    assert sum("old_per_token_logps" in inputs for inputs, _ in spy.losses) >= 2  # replay rounds carry pi_old


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo", "bnpo"])
def test_padding_keeps_each_loss_normalisation(tmp_path: Path, loss_type: str) -> None:
    # 3 kept rows, steps_per_generation 2: one zero-mask padding row. With pi_old = pi_theta the clipped
    # objective is -A per token, so the summed micro-batch losses have a closed form over the 3 real rows.
    tr = trainer(tmp_path, _FirstK(3), loss_type=loss_type, max_steps=1)
    spy = Spy(tr)
    tr.train()
    ((batch, decision),) = spy.rounds
    adv = batch.advantage[decision.fresh]
    n_tok = batch.payload["completion_mask"][decision.fresh].sum(1).float()
    total = sum(loss for _, loss in spy.losses)
    rows = sum(inputs["prompt_ids"].shape[0] for inputs, _ in spy.losses)
    assert rows == 4
    if loss_type == "dapo":
        want = -(adv * n_tok).sum() / n_tok.sum()
    elif loss_type == "grpo":
        want = -adv.mean()
    elif loss_type == "dr_grpo":
        want = -(adv * n_tok).sum() / (3 * 6)
    else:  # bnpo: token mean per micro-batch, averaged over micro-batches
        want = torch.tensor(0.0)
        for inputs, _ in spy.losses:
            m = inputs["completion_mask"].float()
            want = want - (inputs["advantages"][:, None] * m).sum() / m.sum().clamp(min=1) / 2
    assert total == pytest.approx(float(want), abs=1e-5)


@pytest.mark.parametrize("name", ["cbs-both", "recency", "influence-both"])
def test_checkpoint_resume_continues_identically(tmp_path: Path, name: str) -> None:
    # influence-both: answers and gradient sketches in the batches and in the saved replay buffer.
    adapter = ADAPTER.get(name)
    full = trainer(tmp_path / "a", SCHEDULERS[name](), adapter=adapter, max_steps=4, save_strategy="steps",
                   save_steps=2)  # fmt: skip
    full.train()
    ckpt = tmp_path / "a" / "checkpoint-2"
    assert (ckpt / "scheduler.safetensors").exists()
    resumed = trainer(tmp_path / "b", SCHEDULERS[name](), adapter=adapter, max_steps=4)
    resumed.train(resume_from_checkpoint=str(ckpt))
    sa, sb = full.rollout_scheduler.state_dict(), resumed.rollout_scheduler.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], msg=k)
    if name == "influence-both":
        assert any(k.endswith("grad") for k in sa) and any(k.endswith("answer") for k in sa)
    la = [h["loss"] for h in full.state.log_history if "loss" in h]
    lb = [h["loss"] for h in resumed.state.log_history if "loss" in h]  # steps 1-2 come from the checkpoint
    assert len(la) == len(lb) == 4
    assert lb == pytest.approx(la, abs=1e-6)
    state = json.loads((ckpt / "bandit_trainer_state.json").read_text())
    assert state["round"] == 2


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"loss_type": "cispo"}, "loss_type"), ({"loss_type": "sapo"}, "loss_type")],
)
def test_unsupported_configurations_fail_at_construction(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        trainer(tmp_path, UniformScheduler(), **kw)


def test_tools_and_bad_scheduler_fail_at_construction(tmp_path: Path) -> None:
    def add(a: int, b: int) -> int:
        """Add.

        Args:
            a: first.
            b: second.
        """
        return a + b

    with pytest.raises(InvalidInputError, match="tools"):
        BanditGRPOTrainer(scheduler=UniformScheduler(), model=make_model(), reward_funcs=reward_ones,
                          args=config(tmp_path), train_dataset=dataset(), processing_class=make_tokenizer(),
                          tools=[add])  # fmt: skip
    with pytest.raises(InvalidInputError, match="scheduler"):
        trainer(tmp_path, object())


def test_resume_from_a_plain_checkpoint_fails_clearly(tmp_path: Path) -> None:
    tr = trainer(tmp_path, UniformScheduler(), max_steps=1, save_strategy="steps", save_steps=1)
    tr.train()
    os.remove(tmp_path / "checkpoint-1" / "scheduler.safetensors")
    with pytest.raises(InvalidInputError, match="scheduler"):
        trainer(tmp_path, UniformScheduler(), max_steps=2).train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))


def test_resume_checks_both_files_before_changing_anything(tmp_path: Path) -> None:
    """The reported failures: a malformed trainer-state file raised a raw JSON error after the scheduler state
    was already replaced; round -7, a foreign file, or another scheduler configuration were accepted."""
    tr = trainer(tmp_path, SCHEDULERS["cbs-both"](), max_steps=1, save_strategy="steps", save_steps=1)
    tr.train()
    ckpt = tmp_path / "checkpoint-1"
    state_file = ckpt / "bandit_trainer_state.json"
    good = state_file.read_text()
    cases = [
        ("{not json", "not a readable trainer-state file"),
        (json.dumps({**json.loads(good), "round": -7}), "non-negative integer `round`"),
        (json.dumps({"format": "something.else", "round": 1}), "not a BanditGRPOTrainer trainer-state file"),
        (json.dumps([1, 2]), "not a BanditGRPOTrainer trainer-state file"),
    ]
    for text, match in cases:
        state_file.write_text(text)
        fresh = trainer(tmp_path / "r", SCHEDULERS["cbs-both"](), max_steps=2)
        before = fresh.rollout_scheduler.state_dict()
        with pytest.raises(InvalidInputError, match=match):
            fresh.train(resume_from_checkpoint=str(ckpt))
        after = fresh.rollout_scheduler.state_dict()
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    state_file.write_text(good)
    other = RolloutScheduler(preset="paper", mode="both", keep_fraction=0.25, reuse=4, seed=0)
    with pytest.raises(InvalidInputError, match="same scheduler arguments"):
        trainer(tmp_path / "r", other, max_steps=2).train(resume_from_checkpoint=str(ckpt))
    with pytest.raises(InvalidInputError, match="written for a RolloutScheduler"):
        trainer(tmp_path / "r", UniformScheduler(), max_steps=2).train(resume_from_checkpoint=str(ckpt))


def test_training_rows_pad_to_multiple() -> None:
    ones = torch.ones(4, 3, dtype=torch.long)
    batch = RolloutBatch.from_tensors(
        group=torch.arange(4) // 2, reward=torch.tensor([1.0, 0.0, 1.0, 0.0]), entropy=torch.zeros(4),
        length=torch.tensor([2.0, 1.0, 2.0, 2.0]), logprobs=torch.zeros(4, 2),
        payload={"prompt_ids_rev": ones, "prompt_mask_rev": ones, "completion_ids": ones[:, :2],
                 "completion_mask": ones[:, :2]},
    )  # fmt: skip
    decision = _FirstK(3).schedule(batch)
    rows, n_fresh, n_replay = tb.training_rows(decision, batch, multiple=4, loss_type="grpo", pad_token_id=0)
    assert (n_fresh, n_replay) == (3, 0)
    assert rows["completion_mask"].shape[0] == 4 and int(rows["completion_mask"][3].sum()) == 0
    torch.testing.assert_close(rows["advantages"][:3], batch.advantage[:3] * 4 / 3)


@pytest.mark.parametrize(("name", "gather", "loss_type"), [("cbs-both", "rows", "dapo"), ("recency", "rows", "dapo"),
                                                     ("cbs-group", "statistics", "grpo"),
                                                     ("dapo", "statistics", "dapo")])  # fmt: skip
def test_two_gloo_processes_match_one_process(tmp_path: Path, name: str, gather: str, loss_type: str) -> None:
    """Two ranks train, between them, on exactly the rows (with the same weights and token count) one process
    that saw every row trains on; with gather='statistics' each keeps its own rows, padded to a common count."""
    import torch.multiprocessing as mp

    from banditlib._io import read_tensors

    worker = pytest.importorskip("trl_dist_worker")
    mp.spawn(worker.simulate, args=(2, str(tmp_path), name, gather, loss_type), nprocs=2, join=True)
    worker.simulate(0, 1, str(tmp_path), name, "rows", loss_type)
    runs = [(gather, 2, 0), (gather, 2, 1), ("rows", 1, 0)]
    states = [read_tensors(tmp_path / f"scheduler-{g}-{w}-{r}.safetensors", "test")[0] for g, w, r in runs]
    # the statistics batches carry no payload or log-probs: the rest of the state is compared
    kept = [{k: v for k, v in st.items() if gather == "rows" or not ("payload" in k or "logprobs" in k)}
            for st in states]  # fmt: skip
    for other in kept[1:]:
        assert other.keys() == kept[0].keys()
        for k in kept[0]:
            torch.testing.assert_close(other[k], kept[0][k], msg=k)
    rows = [json.loads((tmp_path / f"rows-{g}-{w}-{r}.json").read_text()) for g, w, r in runs]
    for t in range(len(rows[2])):
        split = sorted(map(json.dumps, rows[0][t]["rows"] + rows[1][t]["rows"]))
        assert split == sorted(map(json.dumps, rows[2][t]["rows"]))
        assert rows[0][t]["num_items"] == rows[1][t]["num_items"] == rows[2][t]["num_items"]
        assert rows[0][t]["per_rank"] == rows[1][t]["per_rank"]


def _kill_run(proc: subprocess.Popen[str], tmp_path: Path) -> None:
    """Kill the launcher's process group and every rank of this run: the ranks are found by their command line,
    which holds ``tmp_path``, since torchrun starts each in a session of its own."""
    os.killpg(proc.pid, 9)
    proc.wait()
    proc_dir = Path("/proc")
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else []:
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if entry.name.isdigit() and str(tmp_path) in cmdline:
                os.kill(int(entry.name), 9)
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue


@pytest.mark.parametrize("gather", ["rows", "statistics"])
def test_two_process_training_run_keeps_ranks_identical(tmp_path: Path, gather: str) -> None:
    # A real data-parallel run (torchrun + accelerate, gloo on CPU) whose groups straddle the two ranks.
    from banditlib._io import read_tensors

    script = Path(__file__).with_name("trl_accelerate_script.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path), gather]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(script.parent), os.environ.get("PYTHONPATH", "")])}
    # Output to a file, not a pipe: a rank that outlives the launcher (the ranks run in sessions of their own)
    # would otherwise hold the pipe open and block the test for good.
    log = tmp_path / "torchrun.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=script.parent, start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            _kill_run(proc, tmp_path)
            pytest.fail(f"the two-process run timed out:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    a, b = (read_tensors(tmp_path / f"scheduler-rank{r}.safetensors", "test")[0] for r in (0, 1))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    logs = [json.loads((tmp_path / f"log-rank{r}.json").read_text()) for r in (0, 1)]
    assert len(logs[0]) == 2 and logs[0][-1]["scheduler/policy_updates"] > 0
    assert [h["scheduler/kept_fraction"] for h in logs[0]] == [h["scheduler/kept_fraction"] for h in logs[1]]
    # Answers and sketches are built on the global view: every rank's scheduler saw the same ids and sketches.
    seen = [json.loads((tmp_path / f"batches-rank{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 2
    for a, b in zip(*seen, strict=True):
        assert a["completions"] == b["completions"] and len(a["answer"]) == 4
        assert a["answer"] == b["answer"]
        torch.testing.assert_close(torch.tensor(a["grad"]), torch.tensor(b["grad"]))
        assert torch.tensor(a["grad"]).abs().sum() > 0


def test_uniform_scheduler_trains_like_plain_grpo(tmp_path: Path) -> None:
    from trl import GRPOTrainer

    plain = GRPOTrainer(model=make_model(), reward_funcs=reward_ones, args=config(tmp_path / "p"),
                        train_dataset=dataset(), processing_class=make_tokenizer())  # fmt: skip
    plain.train()
    ours = trainer(tmp_path / "b", UniformScheduler())
    ours.train()
    la = [[h["loss"], h["grad_norm"]] for h in plain.state.log_history if "loss" in h]
    lb = [[h["loss"], h["grad_norm"]] for h in ours.state.log_history if "loss" in h]
    assert len(la) == 2
    torch.testing.assert_close(torch.tensor(lb), torch.tensor(la), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_gather_statistics_trains_like_gather_rows_in_one_process(tmp_path: Path, loss_type: str) -> None:
    """One process holds every row either way: the same decisions, the same loss inputs, the same losses."""
    runs = {}
    for gather in ("rows", "statistics"):
        tr = trainer(tmp_path / gather, RolloutScheduler(mode="group", seed=0), adapter={"gather": gather},
                     loss_type=loss_type)  # fmt: skip
        spy = Spy(tr)
        tr.train()
        runs[gather] = spy, [[h["loss"], h["grad_norm"]] for h in tr.state.log_history if "loss" in h]
    (rows, log_rows), (stats, log_stats) = runs["rows"], runs["statistics"]
    assert len(log_rows) == 2 and log_stats == log_rows
    assert [torch.equal(a[1].fresh, b[1].fresh) for a, b in zip(rows.rounds, stats.rounds, strict=True)] == [True] * 2
    sb, rb = stats.rounds[0][0], rows.rounds[0][0]
    assert sb.payload.keys() == {"tokens"} and sb.logprobs is not None and sb.logprobs.shape == (len(sb), 1)
    torch.testing.assert_close(sb.logprobs[:, 0], rb.logprobs.sum(1))  # what the seq_logprob feature reads
    for (a, la), (b, lb) in zip(rows.losses, stats.losses, strict=True):
        assert la == lb and a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k], k


def test_gather_statistics_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"gather='statistics' keeps each row .* RecencyReplay replays"):
        trainer(tmp_path, RecencyReplay(reuse=2), adapter={"gather": "statistics"})
    with pytest.raises(InvalidInputError, match="`gather` must be one of"):
        trainer(tmp_path, UniformScheduler(), adapter={"gather": "tokens"})
    # its buffer holds statistics only: a checkpoint of one mode does not resume in the other
    tr = trainer(tmp_path / "s", DynamicSamplingFilter(), adapter={"gather": "statistics"}, max_steps=1,
                 save_strategy="steps", save_steps=1)  # fmt: skip
    tr.train()
    with pytest.raises(InvalidInputError, match="written with gather='statistics', the trainer has gather='rows'"):
        trainer(tmp_path / "r", DynamicSamplingFilter(), max_steps=2).train(
            resume_from_checkpoint=str(tmp_path / "s" / "checkpoint-1")
        )


# ------------------------------------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("so the answer is \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{ \\frac{3}{4} } and 7", "\\frac{3}{4}"),  # the last box, nested braces kept
        ("\\boxed{5} cut off at \\boxed{12", "5"),  # an unbalanced last box: the previous one
        ("cut off at \\boxed{12", "12"),  # no balanced box: the last number
        ("3 + 4 = 7", "7"),
        ("total 1,234,567 apples, not 12", "12"),
        ("it costs 1,234,567", "1234567"),
        ("we owe -12.50 now", "-12.50"),
        ("+5", "5"),
        ("x = 3.0", "3.0"),
        ("  Paris ", "Paris"),
        ("", None),
        ("   \n ", None),
        ("a" * 33, None),
        ("a" * 32, "a" * 32),
    ],
)
def test_default_answer_fn(text: str, want: str | None) -> None:
    assert default_answer_fn(text) == want


def test_answer_ids_number_equal_answers_alike_and_name_failures() -> None:
    ids = tb.answer_ids(["a 1", "b 2", "c 1", "none", "d 2"], lambda t: None if t == "none" else t[-1])
    assert ids.dtype == torch.long and ids.tolist() == [0, 1, 0, -1, 1]

    def as_list(text: str) -> Any:
        return [text]

    with pytest.raises(InvalidInputError, match=r"as_list.*row 0.*unhashable"):
        tb.answer_ids(["x"], as_list)


def recording_reward(seen: list[str]) -> Any:
    """``reward_ones`` that also records the completions TRL decoded for it (global order in one process)."""

    def reward_recorded(completions: list[str], **kwargs: Any) -> list[float]:
        seen.extend(completions)
        return reward_ones(completions)

    return reward_recorded


def test_answers_reach_the_scheduler(tmp_path: Path) -> None:
    texts: list[str] = []
    tr = trainer(tmp_path, UniformScheduler(), reward=recording_reward(texts), max_steps=3)
    spy = Spy(tr)
    tr.train()
    assert len(texts) == sum(len(b) for b, _ in spy.rounds) == 24
    offset, repeats, distinct = 0, 0, 0
    for batch, _ in spy.rounds:
        answer = batch.answer
        assert answer is not None and answer.shape == (len(batch),) and answer.dtype == torch.long
        want = [default_answer_fn(t) for t in texts[offset : offset + len(batch)]]
        offset += len(batch)
        assert [a == -1 for a in answer.tolist()] == [w is None for w in want]
        for i in range(len(batch)):
            for j in range(i + 1, len(batch)):
                if batch.group[i] == batch.group[j] and want[i] is not None:
                    assert bool(answer[i] == answer[j]) == (want[i] == want[j]), (want[i], want[j])
                    repeats += want[i] == want[j]
                    distinct += want[i] != want[j]
    assert repeats and distinct  # both cases occurred, so the equalities above were tested


def test_answer_fn_none_leaves_answers_unset(tmp_path: Path) -> None:
    tr = trainer(tmp_path, UniformScheduler(), adapter={"answer_fn": None}, max_steps=1)
    spy = Spy(tr)
    tr.train()
    assert spy.rounds and all(batch.answer is None for batch, _ in spy.rounds)


def test_raising_answer_fn_fails_clearly_and_changes_nothing(tmp_path: Path) -> None:
    sch = RolloutScheduler(mode="both", reuse=2, seed=0)
    calls, snapshot = [0], {}

    def explode_late(text: str) -> str | None:
        calls[0] += 1
        if calls[0] == 11:  # row 2 of round 1 (8 rows per round): round 0 was scheduled
            snapshot.update({k: v.clone() for k, v in sch.state_dict().items()})
            raise ValueError("cannot parse")
        return default_answer_fn(text)

    tr = trainer(tmp_path, sch, adapter={"answer_fn": explode_late}, max_steps=3)
    with pytest.raises(InvalidInputError, match=r"answer_fn.*explode_late.*row 2.*ValueError: cannot parse"):
        tr.train()
    assert tr._round == 1
    after = sch.state_dict()
    assert after.keys() == snapshot.keys()
    for k in after:
        torch.testing.assert_close(after[k], snapshot[k], msg=k)
    with pytest.raises(InvalidInputError, match="answer_fn"):
        trainer(tmp_path, UniformScheduler(), adapter={"answer_fn": "last number"})


# ------------------------------------------------------------------------------------------------ gradient sketches


@pytest.mark.parametrize("bad", [3, 0, -4, 1, 8, "x", 16.0, True])
def test_bad_grad_sketch_fails_at_construction(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="grad_sketch"):
        trainer(tmp_path, UniformScheduler(), adapter={"grad_sketch": bad})


def test_lm_head_sketch_matches_head_sketch_and_autograd() -> None:
    g = torch.Generator().manual_seed(0)
    n, t, h_dim, vocab, tau = 3, 5, 8, 11, 0.7
    h, w, b = (
        torch.randn(n, t, h_dim, generator=g),
        torch.randn(vocab, h_dim, generator=g),
        torch.randn(vocab, generator=g),
    )
    y = torch.randint(0, vocab, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2] = False  # no real token: a zero sketch
    L, R = sketch_matrices(vocab, h_dim, 4, 4, seed=0)
    got = lm_head_sketch(h, y, mask, w, b, L, R, temperature=tau, tile_elements=2 * vocab)  # 2 tokens a tile
    want = head_sketch(h, ((h @ w.T + b) / tau).softmax(-1), y, mask, L, R, temperature=tau)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert float(got[2].abs().sum()) == 0.0 and float(got[0].abs().sum()) > 0
    # A logit scale and final-logit softcapping (Gemma 2's head): against autograd.
    wg = w.clone().requires_grad_()
    z = 3.0 * torch.tanh((h @ wg.T + b) * 0.5 / 3.0) / tau
    logp = z.log_softmax(-1).gather(2, y[..., None])[..., 0]
    m = mask.float()
    mean = (logp * m).sum(1) / m.sum(1).clamp(min=1)
    want = torch.stack([(L.T @ torch.autograd.grad(mean[i], wg, retain_graph=True)[0] @ R).flatten()
                        for i in range(2)])  # fmt: skip
    got = lm_head_sketch(h, y, mask, w, b, L, R, temperature=tau, logit_scale=0.5, softcap=3.0,
                            tile_elements=3 * vocab)  # fmt: skip
    torch.testing.assert_close(got[:2], want, atol=1e-5, rtol=1e-4)
    # Under bf16 autocast (TRL's default on CPU too) the sketch is still computed in float32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = lm_head_sketch(h, y, mask, w, b, L, R, temperature=tau, logit_scale=0.5, softcap=3.0)
    torch.testing.assert_close(again, got, atol=1e-6, rtol=1e-5)


def reference_sketches(tr: BanditGRPOTrainer, batch: RolloutBatch) -> torch.Tensor:
    """The sketches by autograd: per row, ``L^T G R`` of the gradient of the mean completion log-prob."""
    model, pl = tr.model, batch.payload
    head = model.get_output_embeddings()
    prompt, pmask = pl["prompt_ids_rev"].flip(1), pl["prompt_mask_rev"].flip(1)
    ids, mask = pl["completion_ids"], pl["completion_mask"]
    width, out = ids.shape[1], []
    for i in range(len(batch)):
        with torch.enable_grad(), torch.autocast("cpu", enabled=False):
            logits = model(input_ids=torch.cat([prompt[i : i + 1], ids[i : i + 1]], 1),
                           attention_mask=torch.cat([pmask[i : i + 1], mask[i : i + 1]], 1)).logits  # fmt: skip
            logp = (logits[:, -width - 1 : -1].float() / tr.temperature).log_softmax(-1)
            logp = logp.gather(2, ids[i : i + 1, :, None])[..., 0]
            m = mask[i : i + 1].float()
            (grad,) = torch.autograd.grad((logp * m).sum() / m.sum().clamp(min=1), head.weight)
        out.append((tr.sketch_left.T @ grad @ tr.sketch_right).flatten())
    return torch.stack(out)


def test_grad_sketch_matches_autograd_and_trains_the_influence_label(tmp_path: Path) -> None:
    # bf16=False: TRL's default bf16 autocast would round the hidden states the sketch is computed from.
    sch = RolloutScheduler(label=InfluenceLabel("next"), seed=0)
    tr = trainer(tmp_path, sch, adapter={"grad_sketch": 16}, max_steps=3, temperature=0.7, bf16=False)
    assert tr.sketch_left is not None and tr.sketch_left.shape == (len(VOCAB), 4)
    assert tr.sketch_right is not None and tr.sketch_right.shape == (16, 4)  # hidden size 16
    seen: list[tuple[RolloutBatch, torch.Tensor]] = []
    schedule = sch.schedule

    def spy(batch: RolloutBatch) -> Schedule:
        seen.append((batch, reference_sketches(tr, batch)))
        return schedule(batch)

    sch.schedule = spy  # type: ignore[method-assign]
    tr.train()
    assert len(seen) == 3
    for batch, want in seen:
        assert batch.grad is not None and batch.grad.shape == (len(batch), 16) and batch.grad.dtype == torch.float32
        assert bool(torch.isfinite(batch.grad).all()) and float(batch.grad.abs().max()) > 0
        torch.testing.assert_close(batch.grad, want, atol=1e-5, rtol=1e-4)
    logs = [h for h in tr.state.log_history if "loss" in h]
    assert all(math.isfinite(h["loss"]) for h in logs)
    assert math.isfinite(logs[1]["scheduler/observed_gain"]) and logs[-1]["scheduler/policy_updates"] > 0


def test_answer_codes_number_answers_as_answer_ids_do() -> None:
    """gather='statistics': each rank codes its own answers; the gathered codes give answer_ids' ids."""
    from banditlib.adapters import _trl_stats as ts

    texts = ["so \\boxed{3}", "7 apples", "", "x = 3", "7"]
    codes = torch.cat([ts.answer_codes(texts[:2], default_answer_fn), ts.answer_codes(texts[2:], default_answer_fn)])
    assert torch.equal(ts.dense_ids(codes), tb.answer_ids(texts, default_answer_fn))
    assert int(codes[2]) == -1 and int(codes[0]) == int(codes[3]) >= 0
    with pytest.raises(InvalidInputError, match="failed on completion row 0"):
        ts.answer_codes(["a"], lambda text: [text])  # unhashable
    # answers a dict treats as one key get one code: numbers by value, tuples element by element
    values = {"1": 1, "1.0": 1.0, "true": True, "2.5": 2.5, "t": (1, "x"), "t2": (1.0, "x"), "s": "1"}
    got = ts.answer_codes(list(values), values.__getitem__).tolist()
    want = tb.answer_ids(list(values), values.__getitem__).tolist()
    assert ts.dense_ids(torch.tensor(got)).tolist() == want == [0, 0, 0, 1, 2, 2, 3]
