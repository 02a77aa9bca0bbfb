"""GRPO on one-digit addition with a tiny Llama, with and without a rollout scheduler (TRL, CPU, offline).

A 2-layer Llama and a word-level tokenizer are built in-process (nothing is downloaded). The model is
warm-started with a few supervised steps so that rewards are not all zero, then trained with GRPO by
``BanditGRPOTrainer`` under each scheduler: ``uniform`` (plain GRPO), ``default`` (``RolloutScheduler()``:
the consistency-labelled bandit), ``cbs-group`` (``RolloutScheduler(preset="paper")``: CBS as published) and
``cbs-both`` (CBS with replay), ``pods`` (max-variance down-sampling), ``dapo`` (dynamic sampling: groups
without reward spread are dropped), ``consistency`` (drop accepted answers rejected elsewhere in their group),
``overlong`` (drop truncated completions) and ``priority`` (advantage-prioritised replay). The answer of a
completion is its first word, the token the verifier reads (``answer_fn=answer_first_word``).

The verifier is exact, or with ``--faulty`` faulty: on a fixed 40% of the training sums (:data:`FAULTY`,
drawn with a fixed seed) it also accepts the sum plus one, always (a deterministic false positive: identical
answers always get identical rewards, so no answer-consistency rule can see it). Everywhere else it is
exact. The training reward is logged as the verifier scores it (``reward``) and as the exact verifier would
(``true_reward``, a zero-weight second reward function); the greedy-decoding accuracy on all 25 sums (5 of
them held out: never in the warm-start or GRPO prompts) is always scored exactly. Both are recorded against
optimizer steps and against completions generated, over several seeds; a JSON file and a plot are written.

Usage: ``python examples/trl_arithmetic.py [--steps 100] [--seeds 5] [--lr 5e-4] [--faulty] [--out DIR]``
(about 2 minutes on one CPU thread with the defaults).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import time
import warnings
from typing import Any

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig

from banditlib.adapters.rlvr import (
    ConsistencyFilter,
    DynamicSamplingFilter,
    MaxVarianceScheduler,
    OverlongFilter,
    PriorityReplay,
    RolloutScheduler,
    UniformScheduler,
)
from banditlib.adapters.trl import BanditGRPOTrainer

VOCAB = ["<pad>", "<eos>", "<bos>", "<unk>", "+", "=", *map(str, range(10))]
PAIRS = [(a, b) for a in range(5) for b in range(5)]
HELD_OUT = [(0, 4), (1, 2), (2, 3), (3, 1), (4, 0)]
TRAIN = [p for p in PAIRS if p not in HELD_OUT]
# The faulty verifier's blind spot: on these training sums it also accepts a + b + 1 (fixed seed).
FAULT_SEED, FAULT_FRACTION = 0, 0.4
FAULTY = frozenset(random.Random(FAULT_SEED).sample(TRAIN, k=round(FAULT_FRACTION * len(TRAIN))))
SCHEDULERS: dict[str, Any] = {
    "uniform": lambda seed: UniformScheduler(),
    "default": lambda seed: RolloutScheduler(seed=seed),
    "cbs-group": lambda seed: RolloutScheduler(preset="paper", seed=seed),
    "cbs-both": lambda seed: RolloutScheduler(preset="paper", mode="both", reuse=8, buffer_rounds=3, seed=seed),
    "pods": lambda seed: MaxVarianceScheduler(keep_fraction=0.5),
    "dapo": lambda seed: DynamicSamplingFilter(),
    "consistency": lambda seed: ConsistencyFilter(),
    "overlong": lambda seed: OverlongFilter(),
    "priority": lambda seed: PriorityReplay(seed=seed),
}


def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def prompt(a: int, b: int) -> str:
    return f"{a} + {b} ="


def reward_correct(prompts: list[str], completions: list[str], faulty: bool = False, **kwargs: Any) -> list[float]:
    """1 when the first completion token is the sum, else 0; with ``faulty``, also 1 for the sum plus one on
    the prompts in :data:`FAULTY` (a deterministic false positive)."""
    out = []
    for p, c in zip(prompts, completions, strict=True):
        a, _, b, _ = p.split()
        words, total = c.split(), int(a) + int(b)
        accepted = {str(total), str(total + 1)} if faulty and (int(a), int(b)) in FAULTY else {str(total)}
        out.append(float(bool(words) and words[0] in accepted))
    return out


def reward_faulty(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """:func:`reward_correct` with its fault switched on (a named function: TRL logs rewards by name)."""
    return reward_correct(prompts, completions, faulty=True)


def true_reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """The exact verifier, logged with weight 0 next to the training verifier."""
    return reward_correct(prompts, completions)


def answer_first_word(completion_text: str) -> str | None:
    """The answer the verifier reads: the completion's first word (None for an empty completion)."""
    words = completion_text.split()
    return words[0] if words else None


def warm_model(seed: int, tok: PreTrainedTokenizerFast, steps: int) -> LlamaForCausalLM:
    """A tiny Llama after ``steps`` supervised steps on the training sums (accuracy well below 1)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=32, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg)
    texts = [f"{prompt(a, b)} {a + b} <eos>" for a, b in TRAIN]
    ids = torch.tensor([tok(t)["input_ids"] for t in texts])
    labels = ids.clone()
    labels[:, :4] = -100  # learn the answer and the stop, not the prompt
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def greedy_answers(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, pairs: list[tuple[int, int]]) -> list[str]:
    """The first greedily decoded token of each sum in ``pairs``, as text."""
    was_training = model.training
    model.eval()
    ids = torch.tensor([tok(prompt(a, b))["input_ids"] for a, b in pairs])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False,
                         pad_token_id=0)  # fmt: skip
    model.train(was_training)
    return [VOCAB[int(t)] for t in out[:, -1]]


def accuracy(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, pairs: list[tuple[int, int]]) -> float:
    """Greedy-decoding accuracy on ``pairs`` (exact verifier)."""
    answers = greedy_answers(model, tok, pairs)
    return sum(t == str(a + b) for t, (a, b) in zip(answers, pairs, strict=True)) / len(pairs)


def final_scores(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast) -> dict[str, float]:
    """Exact greedy accuracy on all sums, on the faulty sums and on the others, and the share of faulty sums
    answered with the false positive ``a + b + 1``."""
    answers = dict(zip(PAIRS, greedy_answers(model, tok, PAIRS), strict=True))
    faulty = sorted(FAULTY)
    clean = [p for p in PAIRS if p not in FAULTY]
    return {
        "acc": statistics.fmean(answers[p] == str(sum(p)) for p in PAIRS),
        "acc_faulty_sums": statistics.fmean(answers[p] == str(sum(p)) for p in faulty),
        "acc_other_sums": statistics.fmean(answers[p] == str(sum(p)) for p in clean),
        "hacked": statistics.fmean(answers[p] == str(sum(p) + 1) for p in faulty),
    }


class HeldOut(TrainerCallback):  # type: ignore[misc]
    """Greedy accuracy on all sums every ``every`` optimizer steps."""

    def __init__(self, tok: PreTrainedTokenizerFast, every: int) -> None:
        self.tok, self.every, self.points = tok, every, []  # type: ignore[var-annotated]

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step % self.every == 0:
            self.points.append((state.global_step, accuracy(model, self.tok, PAIRS)))


def run(
    name: str, seed: int, steps: int, warm_steps: int = 40, eval_every: int = 5, lr: float = 5e-4,
    faulty: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One GRPO run: per-step reward (training verifier and exact), greedy accuracy (exact), completions
    generated, wall time; ``faulty`` trains on :func:`reward_faulty` instead of :func:`reward_correct`."""
    tok = tokenizer()
    model = warm_model(seed, tok, warm_steps)
    acc0 = accuracy(model, tok, PAIRS)
    data = Dataset.from_dict({"prompt": [prompt(a, b) for a, b in TRAIN] * 8})
    callback = HeldOut(tok, eval_every)
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=16, num_generations=8, max_completion_length=3,
            max_steps=steps, learning_rate=lr, temperature=1.0, use_cpu=True, report_to=[], logging_steps=1,
            save_strategy="no", seed=seed, disable_tqdm=True, beta=0.0, reward_weights=[1.0, 0.0],
        )  # fmt: skip
        trainer = BanditGRPOTrainer(
            scheduler=SCHEDULERS[name](seed), answer_fn=answer_first_word, model=model,
            reward_funcs=[reward_faulty if faulty else reward_correct, true_reward], args=args,
            train_dataset=data, processing_class=tok, callbacks=[callback],
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "reward" in h]
    per_gen = args.per_device_train_batch_size * args.gradient_accumulation_steps
    end = final_scores(model, tok)
    return {
        "scheduler": name, "seed": seed, "faulty": faulty, "seconds": seconds, "greedy_acc_start": acc0,
        "reward": [h["reward"] for h in logs],
        "true_reward": [h["rewards/true_reward/mean"] for h in logs],
        "kept_fraction": [h.get("scheduler/kept_fraction") for h in logs],
        "completions": [per_gen * (i + 1) for i in range(len(logs))],
        "greedy_acc": callback.points, "greedy_acc_end": end["acc"],
        "greedy_acc_faulty_sums": end["acc_faulty_sums"], "greedy_acc_other_sums": end["acc_other_sums"],
        "greedy_hacked": end["hacked"],
    }  # fmt: skip


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean (and sd) over seeds per scheduler and verifier."""
    rows = []
    for faulty in (False, True):
        for name in SCHEDULERS:
            rs = [r for r in results if r["scheduler"] == name and r.get("faulty", False) == faulty]
            if not rs:
                continue
            tail = [statistics.fmean(r["reward"][-10:]) for r in rs]
            final = [r["greedy_acc_end"] for r in rs]
            rows.append({
                "scheduler": name, "faulty": faulty, "seeds": len(rs), "reward_last10": statistics.fmean(tail),
                "reward_last10_sd": statistics.stdev(tail) if len(tail) > 1 else 0.0,
                "true_reward_last10": statistics.fmean(statistics.fmean(r["true_reward"][-10:]) for r in rs),
                "greedy_acc_final": statistics.fmean(final),
                "greedy_acc_final_sd": statistics.stdev(final) if len(final) > 1 else 0.0,
                "greedy_acc_start": statistics.fmean(r["greedy_acc_start"] for r in rs),
                "greedy_hacked": statistics.fmean(r["greedy_hacked"] for r in rs),
                "kept_fraction": statistics.fmean(k for r in rs for k in r["kept_fraction"] if k is not None),
                "seconds": statistics.fmean(r["seconds"] for r in rs),
            })  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| verifier | scheduler | seeds | reward (last 10 steps) | true reward | greedy acc. start -> end | "
            "hacked | kept fraction | s/run |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {'faulty' if r['faulty'] else 'exact'} | {r['scheduler']} | {r['seeds']} | "
            f"{r['reward_last10']:.3f} +- {r['reward_last10_sd']:.3f} | {r['true_reward_last10']:.3f} | "
            f"{r['greedy_acc_start']:.2f} -> {r['greedy_acc_final']:.2f} | {r['greedy_hacked']:.2f} | "
            f"{r['kept_fraction']:.2f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Reward against steps and completions, greedy accuracy against steps, one curve per scheduler (mean over
    seeds) for the exact verifier, or the faulty one when only faulty runs are given. Schedulers often coincide
    (``consistency`` equals ``uniform`` under the exact verifier), so each also has its own line style and
    marker, wider curves are drawn underneath narrower ones (``banditlib.experiments.plots.curve_styles``),
    and one legend below the panels names them all."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:  # pragma: no cover
        print("matplotlib not installed: no plot")
        return
    from banditlib.experiments.plots import curve_styles

    faulty = all(r.get("faulty", False) for r in results)
    chosen = [r for r in results if r.get("faulty", False) == faulty]
    present = list(dict.fromkeys(r["scheduler"] for r in chosen))
    names = [n for n in SCHEDULERS if n in present] + [n for n in present if n not in SCHEDULERS]
    style = curve_styles(names)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for name in names:
        rs = [r for r in chosen if r["scheduler"] == name]
        n = min(len(r["reward"]) for r in rs)
        mean = [statistics.fmean(r["reward"][i] for r in rs) for i in range(n)]
        smooth = [statistics.fmean(mean[max(0, i - 4) : i + 1]) for i in range(n)]  # trailing 5-step mean
        axes[0].plot(range(1, n + 1), smooth, label=name, **style[name])
        axes[1].plot(rs[0]["completions"][:n], smooth, label=name, **style[name])
        steps = [0] + [s for s, _ in rs[0]["greedy_acc"]]
        acc = [statistics.fmean(r["greedy_acc_start"] for r in rs)]
        acc += [statistics.fmean(r["greedy_acc"][i][1] for r in rs) for i in range(len(steps) - 1)]
        axes[2].plot(steps, acc, label=name, **style[name])
    labels = [("optimizer step", "train reward (5-step mean, mean over seeds)"),
              ("completions generated", "train reward (5-step mean)"),
              ("optimizer step", "greedy accuracy, all 25 sums")]  # fmt: skip
    for ax, (xl, yl) in zip(axes, labels, strict=True):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], label=name, **{k: v for k, v in style[name].items() if k not in ("markevery", "zorder")})
               for name in names]  # fmt: skip
    rows = -(-len(handles) // 9) if handles else 1
    fig.legend(handles=handles, loc="lower center", ncol=max(1, -(-len(handles) // rows)), frameon=False,
               handlelength=3.5)  # fmt: skip
    fig.suptitle(f"{'faulty' if faulty else 'exact'} verifier, mean over seeds", fontsize=11)
    fig.tight_layout(rect=(0, 0.02 + 0.06 * rows, 1, 0.97))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--schedulers", default=",".join(SCHEDULERS))
    parser.add_argument("--faulty", action="store_true", help="train on the faulty verifier (see FAULTY)")
    parser.add_argument("--out", default="trl-arithmetic")
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(1)  # tiny matrices: more threads only add synchronisation (10x slower on 2 busy cores)
    os.makedirs(opts.out, exist_ok=True)
    results = []
    for seed in range(opts.seeds):
        for name in opts.schedulers.split(","):
            r = run(name, seed, opts.steps, lr=opts.lr, faulty=opts.faulty)
            print(f"{name:11s} seed {seed}: reward(last 10) {statistics.fmean(r['reward'][-10:]):.3f}, "
                  f"greedy acc. {r['greedy_acc_start']:.2f} -> {r['greedy_acc_end']:.2f}, {r['seconds']:.1f}s",
                  flush=True)  # fmt: skip
            results.append(r)
    rows = summarise(results)
    print(markdown(rows))
    with open(os.path.join(opts.out, "results.json"), "w") as fh:
        json.dump({"args": vars(opts), "summary": rows, "runs": results}, fh, indent=1)
    plot(results, os.path.join(opts.out, "trl_arithmetic.png"))


if __name__ == "__main__":
    main()
