"""The simulator's world: a verifiable sequence task, a tiny autoregressive policy and a noisy verifier.

Task. A prompt is a string of ``k`` digits (``1 <= k <= max_prompt_len``) over an alphabet of ``digits``
symbols; the correct answer shifts digit ``j`` by ``j``, ``y_j = (x_j + j) mod digits`` (with ``reverse``:
``y_j = (x_{k-1-j} + j) mod digits``), followed by an end token. Difficulty grows with ``k`` (the answer is a
product of ``k + 1`` token choices) and the rule is shared by every prompt, so learning on one prompt
transfers to the others. A fixed quarter of the prompts of length >= 2 is held out for evaluation.

Policy. Each next token is drawn from ``softmax(f_theta(x, j, y_{j-1}) / tau)`` where ``f_theta`` is a
two-hidden-layer tanh MLP over the sum of embeddings of every prompt slot, the output position and the
previous token: one set of parameters for all prompts (the analogue of an LLM's shared weights). Generation
stops at the end token or after ``max_len`` tokens (truncated).

Verifier. A finished answer scores 1 when it is correct; a finished wrong answer also scores 1 with
probability ``false_positive`` (accepted by luck); a truncated answer scores 0 whatever it contains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from banditlib.errors import InvalidInputError

__all__ = ["Generation", "SimConfig", "World", "expected_accuracy", "generate", "init_params", "token_logprobs"]

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SimConfig:
    """Sizes and knobs of the simulated RLVR world (defaults: the benchmark's setting).

    Args:
        digits: alphabet size of prompts and answers; the end token is ``digits``.
        max_prompt_len: longest prompt (and answer), in digits.
        max_len: generation cap in tokens; an answer without an end token by then is truncated.
        hidden: width of the policy's two hidden layers.
        prompts_per_round: ``B``, prompts per round.
        group_size: ``G``, rollouts per prompt.
        false_positive: probability that the verifier accepts a finished wrong answer.
        temperature: sampling temperature of generation (behaviour log-probs are taken at this temperature).
        lr: Adam learning rate of the RL step.
        clip_eps: PPO clipping range ``epsilon``.
        max_grad_norm: gradient norm clip of every optimisation step.
        warm_start_prompts: training prompts in the supervised warm start (the "base model").
        warm_start_steps: full-batch Adam steps of that warm start.
        heldout_fraction: fraction of prompts of each length >= 2 held out for evaluation.
        reverse: answer the reversed prompt (harder); ``False`` keeps the digit order.
    """

    digits: int = 6
    max_prompt_len: int = 4
    max_len: int = 6
    hidden: int = 64
    prompts_per_round: int = 32
    group_size: int = 8
    false_positive: float = 0.1
    temperature: float = 1.0
    lr: float = 1e-2
    clip_eps: float = 0.2
    max_grad_norm: float = 1.0
    warm_start_prompts: int = 48
    warm_start_steps: int = 20
    heldout_fraction: float = 0.25
    reverse: bool = False

    def __post_init__(self) -> None:
        ints = {"digits": 2, "max_prompt_len": 1, "hidden": 1, "prompts_per_round": 1, "group_size": 2,
                "warm_start_prompts": 1, "warm_start_steps": 0}  # fmt: skip
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise InvalidInputError(f"SimConfig(): `{name}` must be an int >= {low}; got {value!r}.")
        if not isinstance(self.max_len, int) or self.max_len < self.max_prompt_len + 1:
            raise InvalidInputError(
                f"SimConfig(): `max_len` must be an int >= max_prompt_len + 1 = {self.max_prompt_len + 1} "
                f"(room for the longest answer and its end token); got {self.max_len!r}."
            )
        for name in ("false_positive", "heldout_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidInputError(f"SimConfig(): `{name}` must lie in [0, 1); got {value!r}.")
        for name in ("temperature", "lr", "clip_eps", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"SimConfig(): `{name}` must be a finite number > 0; got {value!r}.")


class World:
    """Every prompt of the task, its answer, and the train / held-out split (fixed, independent of seeds).

    Attributes:
        prompts: ``(P, max_prompt_len)`` int64 digits, padded with ``digits`` (the pad slot index).
        prompt_len: ``(P,)`` int64 ``k``.
        answer: ``(P, max_len)`` int64 target tokens: ``k`` digits, the end token, then end-token padding.
        train_ids / heldout_ids: int64 prompt ids of each split; oracle_ids: at most 64 training prompts per
            length, the oracles' evaluation set.

    Example:
        >>> w = World(SimConfig(digits=3, max_prompt_len=2, max_len=3))
        >>> w.prompts.shape, int(w.answer[w.prompt_len.argmax(), 2])  # 3 + 9 prompts; answers end with 3
        (torch.Size([12, 2]), 3)
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        D, K, L = config.digits, config.max_prompt_len, config.max_len
        rows, lens = [], []
        for k in range(1, K + 1):
            idx = torch.arange(D**k)
            digits = torch.stack([(idx // D**i) % D for i in range(k)], dim=1)
            rows.append(torch.cat([digits, torch.full((D**k, K - k), D)], dim=1))
            lens.append(torch.full((D**k,), k))
        self.prompts = torch.cat(rows).long()
        self.prompt_len = torch.cat(lens).long()
        P = self.prompts.shape[0]
        self.answer = torch.full((P, L), D, dtype=torch.long)  # D is the end token
        for p in range(P):
            k = int(self.prompt_len[p])
            for j in range(k):
                self.answer[p, j] = (int(self.prompts[p, k - 1 - j if config.reverse else j]) + j) % D
        split = torch.Generator().manual_seed(12345)
        heldout = torch.zeros(P, dtype=torch.bool)
        for k in range(2, K + 1):
            ids = torch.nonzero(self.prompt_len == k).squeeze(1)
            n = max(1, round(config.heldout_fraction * ids.numel())) if config.heldout_fraction > 0 else 0
            heldout[ids[torch.randperm(ids.numel(), generator=split)[:n]]] = True
        self.train_ids = torch.nonzero(~heldout).squeeze(1)
        self.heldout_ids = torch.nonzero(heldout).squeeze(1)
        self._train_by_len = [self.train_ids[self.prompt_len[self.train_ids] == k] for k in range(1, K + 1)]
        # A fixed sample of at most 64 training prompts per length: the oracles' (cheaper) evaluation set.
        self.oracle_ids = torch.cat([ids[torch.randperm(ids.numel(), generator=split)[:64]].sort().values
                                     for ids in self._train_by_len])  # fmt: skip

    def sample_prompts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n,)`` training prompt ids: a length uniform over ``1..max_prompt_len``, then a prompt of it."""
        lens = torch.randint(0, len(self._train_by_len), (n,), generator=generator)
        out = torch.empty(n, dtype=torch.long)
        for k, ids in enumerate(self._train_by_len):
            sel = lens == k
            out[sel] = ids[torch.randint(0, ids.numel(), (int(sel.sum()),), generator=generator)]
        return out


def init_params(config: SimConfig, generator: torch.Generator) -> Params:
    """Random policy parameters (scaled normal init), shared by every prompt."""
    D, K, L, H = config.digits, config.max_prompt_len, config.max_len, config.hidden
    V = D + 1

    def normal(*shape: int, fan_in: float) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) / math.sqrt(fan_in)

    return {
        "slot": normal(K, D + 1, H, fan_in=K + 2),  # one embedding table per prompt slot (pad included)
        "pos": normal(L, H, fan_in=K + 2),
        "prev": normal(V + 1, H, fan_in=K + 2),  # previous token; V is the start token
        "b1": torch.zeros(H),
        "W2": normal(H, H, fan_in=H),
        "b2": torch.zeros(H),
        "W3": normal(H, V, fan_in=H) * 0.5,
        "b3": torch.zeros(V),
    }


def _prompt_embedding(params: Params, prompts: torch.Tensor) -> torch.Tensor:
    """``(n, H)``: sum over slots of the slot embeddings of ``prompts`` ``(n, K)``."""
    K = prompts.shape[1]
    return params["slot"][torch.arange(K), prompts].sum(dim=1)


def _logits(params: Params, h: torch.Tensor) -> torch.Tensor:
    h = torch.tanh(h + params["b1"])
    h = torch.tanh(h @ params["W2"] + params["b2"])
    return h @ params["W3"] + params["b3"]


def token_logprobs(
    params: Params, world: World, prompt_ids: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced per-token log-probs and entropies of ``tokens`` under the policy.

    Args:
        params: policy parameters.
        world: the task.
        prompt_ids: ``(n,)`` int64.
        tokens: ``(n, T)`` int64 with ``T <= max_len``.
        temperature: the sampling temperature the log-probs refer to.

    Returns:
        ``(logp, entropy)``, both ``(n, T)`` float32: ``log pi(y_j | x, y_<j)`` and the entropy of that
        next-token distribution.
    """
    n, T = tokens.shape
    V = world.config.digits + 1
    prev = torch.cat([torch.full((n, 1), V, dtype=torch.long), tokens[:, :-1]], dim=1)
    h = _prompt_embedding(params, world.prompts[prompt_ids]).unsqueeze(1) + params["pos"][:T] + params["prev"][prev]
    logp_all = torch.log_softmax(_logits(params, h) / temperature, dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy


@dataclass(frozen=True)
class Generation:
    """Rollouts of one round, ``N`` rows, ``L = max_len`` token slots (masked after the end token).

    Attributes:
        prompt_ids: ``(N,)`` int64. tokens: ``(N, L)`` int64. mask: ``(N, L)`` bool, true up to and including
        the end token. logprobs: ``(N, L)`` float32 behaviour log-probs (0 where masked). entropy: ``(N,)``
        mean token entropy. length: ``(N,)`` tokens generated. truncated: ``(N,)`` bool no end token.
        correct: ``(N,)`` bool truly correct. reward: ``(N,)`` float32 verifier reward. lucky: ``(N,)`` bool
        wrong answer accepted by the verifier.
    """

    prompt_ids: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    entropy: torch.Tensor
    length: torch.Tensor
    truncated: torch.Tensor
    correct: torch.Tensor
    reward: torch.Tensor
    lucky: torch.Tensor


@torch.no_grad()
def generate(params: Params, world: World, prompt_ids: torch.Tensor, generator: torch.Generator) -> Generation:
    """Sample one answer per row of ``prompt_ids`` ``(N,)`` and score it with the noisy verifier."""
    cfg = world.config
    N, L, V = prompt_ids.shape[0], cfg.max_len, cfg.digits + 1
    end = cfg.digits
    base = _prompt_embedding(params, world.prompts[prompt_ids])
    tokens = torch.full((N, L), end, dtype=torch.long)
    mask = torch.zeros(N, L, dtype=torch.bool)
    logprobs = torch.zeros(N, L)
    entropy = torch.zeros(N, L)
    done = torch.zeros(N, dtype=torch.bool)
    prev = torch.full((N,), V, dtype=torch.long)
    for j in range(L):
        logp = torch.log_softmax(_logits(params, base + params["pos"][j] + params["prev"][prev]) / cfg.temperature, -1)
        tok = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        live = ~done
        mask[:, j] = live
        tokens[:, j] = torch.where(live, tok, tokens[:, j])
        logprobs[:, j] = torch.where(live, logp.gather(1, tok.unsqueeze(1)).squeeze(1), 0.0)
        entropy[:, j] = torch.where(live, -(logp.exp() * logp).sum(-1), 0.0)
        done = done | (tok == end)
        prev = tok
    length = mask.sum(1)
    truncated = ~done
    correct = done & (tokens == world.answer[prompt_ids]).all(dim=1)
    accept = torch.rand(N, generator=generator) < cfg.false_positive
    lucky = done & ~correct & accept
    reward = (correct | lucky).float()
    return Generation(prompt_ids, tokens, mask, logprobs, entropy.sum(1) / length, length.float(), truncated,
                      correct, reward, lucky)  # fmt: skip


@torch.no_grad()
def expected_accuracy(params: Params, world: World, prompt_ids: torch.Tensor) -> torch.Tensor:
    """``(P,)`` exact probability that a sampled answer (at the config's temperature) is correct.

    ``pi_theta(y* | x) = prod_j pi(y*_j | x, y*_<j)`` over the ``k`` answer digits and the end token: the
    expected noise-free accuracy of one sampled answer, with no sampling noise.
    """
    answer = world.answer[prompt_ids]
    logp, _ = token_logprobs(params, world, prompt_ids, answer, world.config.temperature)
    upto = torch.arange(answer.shape[1]) <= world.prompt_len[prompt_ids].unsqueeze(1)
    return (logp * upto).sum(1).exp()


@torch.no_grad()
def greedy_accuracy(params: Params, world: World, prompt_ids: torch.Tensor) -> torch.Tensor:
    """``(P,)`` bool: is the greedy (argmax) answer correct."""
    cfg = world.config
    N, V = prompt_ids.shape[0], cfg.digits + 1
    base = _prompt_embedding(params, world.prompts[prompt_ids])
    prev = torch.full((N,), V, dtype=torch.long)
    ok = torch.ones(N, dtype=torch.bool)
    done = torch.zeros(N, dtype=torch.bool)
    answer = world.answer[prompt_ids]
    for j in range(cfg.max_len):
        tok = _logits(params, base + params["pos"][j] + params["prev"][prev]).argmax(-1)
        ok &= done | (tok == answer[:, j])
        done |= tok == cfg.digits
        prev = tok
    return ok & done
