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

Verifier. A finished answer scores 1 when it is correct and 0 otherwise, and a truncated answer scores 0
whatever it contains, except where the world's *fault* (``SimConfig.fault``) makes the verifier mislead:

* ``"none"``: a perfect verifier.
* ``"iid"`` (the default): a finished wrong answer is accepted with probability ``false_positive``,
  independently every time. Stands for an LLM judge sampled at temperature, or unit tests sampled per run:
  the same wrong answer may pass once and fail the next time.
* ``"loophole"``: on a fixed subset of the training prompts (``loophole_fraction`` of those with at least two
  digits) the verifier accepts any answer that is a non-empty prefix of the right one (the check is
  ``gold.startswith(answer)``), so answers that stop early pass. Stands for a parsing loophole or reward
  hack: a fixed set of wrong answers accepted deterministically (identical answers always get identical
  rewards), a common mistake of the base model, and a shortcut (stopping is easier than finishing) that a
  policy which learns it carries to every prompt.
* ``"truncation"``: a rollout that would finish after its ``k`` answer digits is cut before its end token
  with probability ``truncation_rate * k / max_prompt_len`` (longer answers are cut more often), so it scores
  0 and is flagged truncated although its digits may be right. Stands for correct answers cut off by the
  completion-length limit before the final-answer marker (false negatives; the case of DAPO's overlong
  filtering).
* ``"judge"``: a finished wrong answer is accepted with probability ``min(1, judge_bias * q)``, ``q`` the
  policy's own geometric-mean token probability of that answer. Stands for an LLM judge biased towards
  the policy's own confident mistakes (self-preference): the more the policy believes a wrong answer, the
  likelier it passes.
* ``"mixture"``: ``"iid"``, ``"loophole"`` and ``"truncation"`` at once.

Every generation records which rewards mislead (``lucky``: false positives, ``missed``: false negatives) for
diagnostics, and an answer id per rollout (equal ids within a prompt mean identical digits, cut-off answers
included; ``-1``: no digits), as an answer extractor reading a real completion's final number would give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from banditlib.errors import InvalidInputError

from ._model import Params, _logits, _prompt_embedding, head_inputs, init_params, token_logprobs

__all__ = [
    "FAULTS", "Generation", "SimConfig", "World", "expected_accuracy", "generate", "head_inputs", "init_params",
    "token_logprobs",
]  # fmt: skip

FAULTS = ("none", "iid", "loophole", "truncation", "judge", "mixture")
"""The verifier-fault worlds of ``SimConfig(fault=...)``: a perfect checker, i.i.d. false positives, a
deterministic loophole, truncated correct answers, a judge biased towards the policy's confident mistakes, and a
mixture (docs/rlvr.md, "The simulator and its verifier-fault worlds")."""


@dataclass(frozen=True)
class SimConfig:
    """Sizes and knobs of the simulated RLVR world (defaults: the benchmark's setting).

    Frozen; derive a variant with ``dataclasses.replace``. Every field is checked on construction.

    Attributes:
        digits: alphabet size of prompts and answers; the end token is ``digits``.
        max_prompt_len: longest prompt (and answer), in digits.
        max_len: generation cap in tokens; an answer without an end token by then is truncated.
        hidden: width of the policy's two hidden layers.
        prompts_per_round: ``B``, prompts per round.
        group_size: ``G``, rollouts per prompt.
        fault: how the verifier misleads, one of [`FAULTS`][banditlib.adapters.rlvr.sim.world.FAULTS] (see the module
            docstring).
        false_positive: ``"iid"`` / ``"mixture"``: probability that the verifier accepts a finished wrong answer.
        loophole_fraction: ``"loophole"`` / ``"mixture"``: fraction of the training prompts with at least two
            digits whose echo answer always passes.
        truncation_rate: ``"truncation"`` / ``"mixture"``: probability that an answer of the longest prompts
            is cut before its end token (``k / max_prompt_len`` of it for prompts of ``k`` digits).
        judge_bias: ``"judge"``: acceptance probability of a wrong answer per unit of the policy's
            geometric-mean token probability of it.
        temperature: sampling temperature of generation (behaviour log-probs are taken at this temperature).
        lr: Adam learning rate of the RL step.
        clip_eps: PPO clipping range ``epsilon``.
        max_grad_norm: gradient norm clip of every optimisation step.
        warm_start_prompts: training prompts in the supervised warm start (the "base model").
        warm_start_steps: full-batch Adam steps of that warm start.
        heldout_fraction: fraction of prompts of each length >= 2 held out for evaluation.
        reverse: answer the reversed prompt (harder); ``False`` keeps the digit order.

    Raises:
        InvalidInputError: an integer field that is not an int or is too small (``digits >= 2``,
            ``group_size >= 2``, ``warm_start_steps >= 0``, the others ``>= 1``), ``max_len < max_prompt_len + 1``,
            an unknown ``fault``, a probability or fraction outside ``[0, 1)``, or a ``temperature``, ``lr``,
            ``clip_eps``, ``max_grad_norm`` or ``judge_bias`` that is not finite and ``> 0``.

    Examples:
        >>> import dataclasses
        >>> cfg = SimConfig(prompts_per_round=4, group_size=4)
        >>> cfg.fault, cfg.prompts_per_round * cfg.group_size  # rollouts per round
        ('iid', 16)
        >>> dataclasses.replace(cfg, fault="loophole").fault
        'loophole'
        >>> SimConfig(fault="typo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        banditlib.errors.InvalidInputError: SimConfig(): `fault` must be one of ('none', 'iid', ...); got 'typo'.
    """

    digits: int = 6
    max_prompt_len: int = 4
    max_len: int = 6
    hidden: int = 64
    prompts_per_round: int = 32
    group_size: int = 8
    fault: str = "iid"
    false_positive: float = 0.1
    loophole_fraction: float = 0.5
    truncation_rate: float = 0.5
    judge_bias: float = 0.6
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
        if self.fault not in FAULTS:
            raise InvalidInputError(f"SimConfig(): `fault` must be one of {FAULTS}; got {self.fault!r}.")
        for name in ("false_positive", "heldout_fraction", "loophole_fraction", "truncation_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidInputError(f"SimConfig(): `{name}` must lie in [0, 1); got {value!r}.")
        for name in ("temperature", "lr", "clip_eps", "max_grad_norm", "judge_bias"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"SimConfig(): `{name}` must be a finite number > 0; got {value!r}.")


class World:
    """Every prompt of the task, its answer, and the train / held-out split (fixed, independent of seeds).

    The ``P = digits + digits**2 + ... + digits**max_prompt_len`` prompts are listed by length, then in
    base-``digits`` order (first digit fastest). The split, the loophole prompts and the probe set come from
    fixed generators of their own, so every seed of every scheduler sees the same world.

    Args:
        config: the world's sizes (``digits``, ``max_prompt_len``, ``max_len``, ``reverse``) and its split and
            fault knobs (``heldout_fraction``, ``loophole_fraction``).

    Attributes:
        config: the [`SimConfig`][banditlib.adapters.rlvr.sim.world.SimConfig] given.
        prompts: ``(P, max_prompt_len)`` int64 digits, padded with ``digits`` (the pad slot index).
        prompt_len: ``(P,)`` int64 ``k``.
        answer: ``(P, max_len)`` int64 target tokens: ``k`` digits, the end token, then end-token padding.
        loophole: ``(P,)`` bool prompts whose verifier accepts a prefix of the answer in the ``"loophole"``
            and ``"mixture"`` worlds (``loophole_fraction`` of the training prompts with at least two digits).
        train_ids: ``(P_train,)`` int64 ascending ids of the training prompts (every prompt of one digit, and
            the prompts of each longer length that are not held out).
        heldout_ids: ``(P_heldout,)`` int64 ascending ids of the held-out prompts (``heldout_fraction`` of each
            length >= 2, at least one per length when the fraction is not 0).
        oracle_ids: int64 ids of at most 64 training prompts per length, the oracles' evaluation set.
        probe_ids: int64 ids of up to 8 training prompts per length, a small trusted set for schedulers that
            check a probe with a strict verifier (as GradAlign's validation set).

    Examples:
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
        # Fixed, seed-independent faults and probe set (own generator: the split above stays as it was).
        faults = torch.Generator().manual_seed(54321)
        self.loophole = torch.zeros(P, dtype=torch.bool)
        for ids in self._train_by_len[1:]:
            n = round(config.loophole_fraction * ids.numel())
            self.loophole[ids[torch.randperm(ids.numel(), generator=faults)[:n]]] = True
        self.probe_ids = torch.cat([ids[torch.randperm(ids.numel(), generator=faults)[:8]].sort().values
                                    for ids in self._train_by_len])  # fmt: skip

    def sample_prompts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n,)`` training prompt ids: a length uniform over ``1..max_prompt_len``, then a prompt of it."""
        lens = torch.randint(0, len(self._train_by_len), (n,), generator=generator)
        out = torch.empty(n, dtype=torch.long)
        for k, ids in enumerate(self._train_by_len):
            sel = lens == k
            out[sel] = ids[torch.randint(0, ids.numel(), (int(sel.sum()),), generator=generator)]
        return out


@dataclass(frozen=True)
class Generation:
    """Rollouts of one round, ``N`` rows, ``L = max_len`` token slots (masked after the end token).

    Attributes:
        prompt_ids: ``(N,)`` int64 prompt of each rollout.
        tokens: ``(N, L)`` int64 generated tokens (the end token ``digits`` where masked).
        mask: ``(N, L)`` bool, true up to and including the end token (up to the cut for a cut-off rollout).
        logprobs: ``(N, L)`` float32 behaviour log-probs (0 where masked).
        entropy: ``(N,)`` float32 mean entropy of the next-token distributions over the rollout's tokens.
        length: ``(N,)`` float32 tokens generated (``mask.sum(1)``).
        truncated: ``(N,)`` bool, no end token (the ``max_len`` cap, or cut off by the ``"truncation"``
            fault).
        correct: ``(N,)`` bool, truly correct (a finished correct answer).
        reward: ``(N,)`` float32 verifier reward.
        lucky: ``(N,)`` bool, a wrong answer the verifier accepted (false positive).
        missed: ``(N,)`` bool, a rollout whose answer digits are right but which scored 0 because it was cut off
            (false negative).
        answer: ``(N,)`` int64 answer id (equal within a prompt iff identical digits, truncated answers
            included; ``-1`` for an answer without digits).

    Examples:
        Built by [`generate`][banditlib.adapters.rlvr.sim.world.generate]:

        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8)
        >>> world, g = World(cfg), torch.Generator().manual_seed(0)
        >>> gen = generate(init_params(cfg, g), world, world.train_ids[:4].repeat_interleave(2), g)
        >>> gen.tokens[:2].tolist(), gen.mask[:2].tolist()  # row 1 stopped at once (end token 3)
        ([[0, 0, 1], [3, 3, 3]], [[True, True, True], [True, False, False]])
        >>> gen.reward[:2].tolist(), gen.lucky[:2].tolist()  # its empty answer is wrong, but passed
        ([0.0, 1.0], [False, True])
        >>> gen.truncated[:2].tolist(), gen.length[:2].tolist(), gen.answer[:2].tolist()
        ([True, False], [3.0, 1.0], [56, -1])
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
    missed: torch.Tensor
    answer: torch.Tensor


def answer_ids(tokens: torch.Tensor, mask: torch.Tensor, end: int) -> torch.Tensor:
    """``(N,)`` int64 id of the digits of each answer, as an extractor reading the answer's digits would give
    (truncated answers included): the digits read as a number in base ``end + 2``, each digit plus one, so
    answers of different lengths differ; ``-1`` for an answer without digits."""
    L = tokens.shape[1]
    base = torch.tensor(end + 2, dtype=torch.long) ** torch.arange(L)
    digits = torch.where(mask & (tokens != end), tokens + 1, 0)
    ids = (digits * base).sum(1)
    return torch.where(ids == 0, -1, ids)


@torch.no_grad()
def generate(params: Params, world: World, prompt_ids: torch.Tensor, generator: torch.Generator) -> Generation:
    """Sample one answer per row of ``prompt_ids`` and score it with the world's verifier.

    Tokens are drawn at ``world.config.temperature`` until the end token or ``max_len`` tokens; then the
    world's fault (``world.config.fault``) decides which rewards mislead (see the module docstring). Computed
    without autograd (``torch.no_grad``).

    Args:
        params: policy parameters ([`init_params`][banditlib.adapters.rlvr.sim.world.init_params]).
        world: the task and its verifier.
        prompt_ids: ``(N,)`` int64 prompt of each rollout (repeat a prompt ``G`` times for a group).
        generator: draws the tokens and the verifier's random decisions (same state, same generation).

    Returns:
        The [`Generation`][banditlib.adapters.rlvr.sim.world.Generation], ``N`` rows of ``max_len`` token slots.

    Examples:
        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8, fault="none")
        >>> world, g = World(cfg), torch.Generator().manual_seed(0)
        >>> gen = generate(init_params(cfg, g), world, torch.zeros(4000, dtype=torch.long), g)
        >>> gen.tokens.shape, world.answer[0].tolist()  # prompt 0 is "0"; its answer "0", then the end token
        (torch.Size([4000, 3]), [0, 3, 3])
        >>> round(float(gen.reward.mean()), 3), bool(torch.equal(gen.reward.bool(), gen.correct))  # no fault
        (0.082, True)
    """
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
    # The iid draw comes first in every world, so "iid" keeps the random stream of earlier versions.
    accept = torch.rand(N, generator=generator) < cfg.false_positive
    k = world.prompt_len[prompt_ids]
    right = (tokens == world.answer[prompt_ids]).all(dim=1)  # digits and end token, before any cut
    fault = cfg.fault
    missed = torch.zeros(N, dtype=torch.bool)
    if fault in ("truncation", "mixture"):
        # Cut before the end token: rollouts that ran to at least k + 1 tokens keep only their first k.
        p_cut = cfg.truncation_rate * k.double() / cfg.max_prompt_len
        cut = (torch.rand(N, generator=generator, dtype=torch.float64) < p_cut) & (mask.sum(1) > k)
        keep = torch.arange(L)[None, :] < k[:, None]
        gone = cut[:, None] & ~keep
        mask, tokens = mask & ~gone, torch.where(gone, end, tokens)
        logprobs, entropy = logprobs.masked_fill(gone, 0.0), entropy.masked_fill(gone, 0.0)
        done = done & ~cut
        missed = cut & right
    length = mask.sum(1)
    truncated = ~done
    correct = done & right
    wrong = done & ~correct
    if fault in ("iid", "mixture"):
        lucky = wrong & accept
    elif fault == "judge":
        q = ((logprobs * mask).sum(1) / length).exp()  # the policy's geometric-mean token probability
        lucky = wrong & (torch.rand(N, generator=generator) < (cfg.judge_bias * q).clamp(max=1.0))
    else:
        lucky = torch.zeros(N, dtype=torch.bool)
    if fault in ("loophole", "mixture"):
        # A finished answer of m < k digits, all equal to the first m digits of the right one.
        digits = length - 1
        prefix = ((tokens == world.answer[prompt_ids]) | (torch.arange(L)[None, :] >= digits[:, None])).all(dim=1)
        lucky = lucky | (wrong & (digits >= 1) & (digits < k) & prefix & world.loophole[prompt_ids])
    reward = (correct | lucky).float()
    return Generation(prompt_ids, tokens, mask, logprobs, entropy.sum(1) / length, length.float(), truncated,
                      correct, reward, lucky, missed, answer_ids(tokens, mask, end))  # fmt: skip


@torch.no_grad()
def expected_accuracy(params: Params, world: World, prompt_ids: torch.Tensor) -> torch.Tensor:
    """``(P,)`` exact probability that a sampled answer (at the config's temperature) is correct.

    ``pi_theta(y* | x) = prod_j pi(y*_j | x, y*_<j)`` over the ``k`` answer digits and the end token: the
    expected noise-free accuracy of one sampled answer, with no sampling noise. Computed without autograd.

    Args:
        params: policy parameters ([`init_params`][banditlib.adapters.rlvr.sim.world.init_params]).
        world: the task.
        prompt_ids: ``(P,)`` int64 prompts to evaluate.

    Returns:
        ``(P,)`` float32 probabilities in ``[0, 1]``.

    Examples:
        The exact value of what [`generate`][banditlib.adapters.rlvr.sim.world.generate] estimates by sampling
        (``0.082`` over 4000 samples of prompt 0 with these parameters):

        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8, fault="none")
        >>> params = init_params(cfg, torch.Generator().manual_seed(0))
        >>> expected_accuracy(params, World(cfg), torch.tensor([0, 5])).round(decimals=3)
        tensor([0.0770, 0.0120])
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
