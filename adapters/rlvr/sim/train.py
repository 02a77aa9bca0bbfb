"""GRPO with PPO clipping for the simulator's policy: advantages, the clipped loss, one optimisation step.

``A_i = (r_i - mean_g r) / (std_g r + eps)`` within each prompt's group (sample std, as TRL); the loss of a
row is the token mean of ``-min(rho A, clip(rho, 1 - eps, 1 + eps) A)`` with ``rho = exp(log pi_theta -
log pi_behaviour)`` against the row's stored behaviour log-probs, so a replayed row trains off-policy and its
ratio is clipped; the step minimises ``sum_i w_i loss_i / n`` over the ``n`` rows trained (weights from the
scheduler), with gradient-norm clipping and Adam.

References:
    Shao et al., "DeepSeekMath" (2024), GRPO; Schulman et al., "Proximal Policy Optimization Algorithms" (2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.optim.adam import adam

from ..groups import grpo_advantage
from ._model import Params
from .world import SimConfig, World, token_logprobs

__all__ = ["AdamState", "StepStats", "adam_init", "clone_state", "grpo_advantages", "ppo_step", "warm_start"]

BETAS, ADAM_EPS, ADV_EPS = (0.9, 0.999), 1e-8, 1e-4


@dataclass
class AdamState:
    """Adam moments and step count (plain tensors, so a counterfactual step is one
    [`clone_state`][banditlib.adapters.rlvr.sim.train.clone_state] away).

    Attributes:
        m: first moments, one tensor per parameter (same keys, shapes and dtypes as the parameters).
        v: second moments, likewise.
        t: optimisation steps taken (the bias correction's exponent).

    Examples:
        >>> opt = adam_init({"w": torch.ones(2, 3)})
        >>> opt.t, opt.m["w"].shape, float(opt.v["w"].abs().sum())
        (0, torch.Size([2, 3]), 0.0)
    """

    m: Params
    v: Params
    t: int = 0


def adam_init(params: Params) -> AdamState:
    """Zero moments for ``params``.

    Args:
        params: the parameters to optimise (name to tensor).

    Returns:
        An [`AdamState`][banditlib.adapters.rlvr.sim.train.AdamState] with ``torch.zeros_like`` moments of every
        parameter and ``t = 0``.

    Examples:
        >>> opt = adam_init({"w": torch.ones(3), "b": torch.ones(1)})
        >>> sorted(opt.m), opt.v["w"].tolist(), opt.t
        (['b', 'w'], [0.0, 0.0, 0.0], 0)
    """
    return AdamState(
        {k: torch.zeros_like(p) for k, p in params.items()}, {k: torch.zeros_like(p) for k, p in params.items()}
    )


def clone_state(params: Params, opt: AdamState) -> tuple[Params, AdamState]:
    """Deep copies of parameters and optimiser state.

    Args:
        params: the parameters.
        opt: their optimiser state.

    Returns:
        ``(params, opt)``: new tensors with the same values (and step count), so a step on the copies leaves
        the originals untouched.

    Examples:
        >>> params = {"w": torch.zeros(2)}
        >>> p2, o2 = clone_state(params, adam_init(params))
        >>> p2["w"] += 1.0; o2.t = 5
        >>> params["w"].tolist(), p2["w"].tolist(), o2.t
        ([0.0, 0.0], [1.0, 1.0], 5)
    """
    clone = {k: p.clone() for k, p in params.items()}
    return clone, AdamState({k: m.clone() for k, m in opt.m.items()}, {k: v.clone() for k, v in opt.v.items()}, opt.t)


def _adam_update(params: Params, grads: dict[str, torch.Tensor], opt: AdamState, lr: float, max_norm: float) -> None:
    """Clip ``grads`` to total norm ``max_norm``, then take ``torch.optim``'s functional Adam step (in place).

    The clipping coefficient is ``torch.nn.utils.clip_grad_norm_``'s over ``get_total_norm`` (that function
    reads ``.grad`` fields, which these plain tensors do not have). The step is the fused kernel that
    ``torch.optim.Adam(fused=True)`` runs on CPU and CUDA, as the neural policies' is; the single-tensor form
    elsewhere. A test holds both to ``clip_grad_norm_`` and ``torch.optim.Adam(fused=True)`` bit for bit."""
    leaves = list(params.values())
    g = [grads[k] for k in params]
    coef = torch.clamp(max_norm / (torch.nn.utils.get_total_norm(g) + 1e-6), max=1.0)  # clip_grad_norm_'s
    g = [x * coef for x in g]
    fused = all(p.device.type in ("cpu", "cuda") for p in leaves)
    b1, b2 = BETAS
    # The step counts as torch.optim keeps them (float tensors, incremented by the call); AdamState keeps the int.
    steps = [torch.tensor(float(opt.t), device=p.device) for p in leaves]
    adam(
        leaves, g, [opt.m[k] for k in params], [opt.v[k] for k in params], [], steps,
        foreach=False, fused=fused, amsgrad=False, beta1=b1, beta2=b2, lr=lr, weight_decay=0.0, eps=ADAM_EPS,
        maximize=False,
    )  # fmt: skip
    opt.t += 1


def grpo_advantages(reward: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """``(N,)`` group-normalised advantages ``(r - mean_g) / (std_g + 1e-4)`` of rewards ``(N,)``.

    ``std_g`` is the sample standard deviation (``n - 1`` in the denominator, as TRL); a group whose rewards
    are all equal, or a group of one row, gets advantage 0.

    Args:
        reward: ``(N,)`` float rewards.
        group: ``(N,)`` integer group id of each row (any values; rows of a group need not be contiguous).

    Returns:
        ``(N,)`` advantages, of ``reward``'s dtype.

    Examples:
        >>> grpo_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1])).round(decimals=3)
        tensor([ 0.7070, -0.7070,  0.0000,  0.0000])
    """
    return grpo_advantage(group, reward, ADV_EPS)


@dataclass(frozen=True)
class StepStats:
    """What one optimisation step measured.

    Attributes:
        rows: rows trained (one forward and backward pass each).
        loss: the weighted loss ``sum_i w_i loss_i / rows``, before the step.
        clip_ratio: ``(rows,)`` float32 fraction of each row's tokens whose ratio was clipped where clipping
            binds (TRL's definition: ``rho > 1 + eps`` with ``A > 0`` or ``rho < 1 - eps`` with ``A < 0``).
        ratio_dev: ``(rows,)`` float32 mean ``|rho - 1|`` over each row's tokens.

    Examples:
        Returned by [`ppo_step`][banditlib.adapters.rlvr.sim.train.ppo_step]; a step on no rows:

        >>> StepStats(0, 0.0, torch.zeros(0), torch.zeros(0)).rows
        0
    """

    rows: int
    loss: float
    clip_ratio: torch.Tensor
    ratio_dev: torch.Tensor


def ppo_step(
    params: Params,
    opt: AdamState,
    world: World,
    rows: dict[str, torch.Tensor],
    weight: torch.Tensor,
) -> StepStats:
    """One clipped-PPO optimisation step on ``rows`` (in place on ``params`` and ``opt``).

    The loss ``sum_i w_i loss_i / n`` (module docstring) is differentiated, its gradient clipped to norm
    ``max_grad_norm`` and applied by Adam at ``lr``, all from ``world.config``. No input checks: the shapes
    must agree, and every row needs at least one unmasked token.

    Args:
        params: policy parameters, updated in place.
        opt: Adam state, updated in place.
        world: the task.
        rows: ``prompt`` ``(n,)`` int64, ``tokens`` ``(n, L)`` int64, ``mask`` ``(n, L)`` bool, ``logprobs``
            ``(n, L)`` float32 behaviour log-probs, ``advantage`` ``(n,)`` float32.
        weight: ``(n,)`` float32 loss weight of each row.

    Returns:
        [`StepStats`][banditlib.adapters.rlvr.sim.train.StepStats]; with ``n = 0`` nothing is updated.

    Examples:
        >>> from banditlib.adapters.rlvr.sim.world import generate, init_params
        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8)
        >>> world, g = World(cfg), torch.Generator().manual_seed(0)
        >>> params = init_params(cfg, g); opt = adam_init(params)
        >>> ids = world.train_ids[:2].repeat_interleave(4)  # two prompts, four rollouts each
        >>> gen = generate(params, world, ids, g)
        >>> rows = {"prompt": ids, "tokens": gen.tokens, "mask": gen.mask, "logprobs": gen.logprobs,
        ...         "advantage": grpo_advantages(gen.reward, torch.arange(2).repeat_interleave(4))}
        >>> stats = ppo_step(params, opt, world, rows, torch.ones(8))
        >>> stats.rows, opt.t, stats.clip_ratio.tolist() == [0.0] * 8  # on-policy: nothing clipped
        (8, 1, True)
    """
    cfg: SimConfig = world.config
    n = int(weight.shape[0])
    if n == 0:
        return StepStats(0, 0.0, torch.zeros(0), torch.zeros(0))
    leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    logp, _ = token_logprobs(leaves, world, rows["prompt"], rows["tokens"], cfg.temperature)
    mask = rows["mask"].float()
    adv = rows["advantage"].unsqueeze(1)
    ratio = torch.exp(logp - rows["logprobs"])
    loss_tok = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
    per_row = (loss_tok * mask).sum(1) / mask.sum(1)
    loss = (weight * per_row).sum() / n
    grads = torch.autograd.grad(loss, list(leaves.values()))
    with torch.no_grad():
        _adam_update(params, dict(zip(leaves, grads, strict=True)), opt, cfg.lr, cfg.max_grad_norm)
        r = ratio.detach()
        clipped = ((r > 1 + cfg.clip_eps) & (adv > 0)) | ((r < 1 - cfg.clip_eps) & (adv < 0))
        clip_ratio = (clipped.float() * mask).sum(1) / mask.sum(1)
        ratio_dev = ((r - 1).abs() * mask).sum(1) / mask.sum(1)
    return StepStats(n, float(loss.detach()), clip_ratio, ratio_dev)


def warm_start(params: Params, opt: AdamState, world: World, generator: torch.Generator) -> None:
    """The "base model": full-batch supervised steps on the answers of a few random training prompts.

    It gives the policy a spread of pass rates (near-solved short prompts, rarely solved long ones), as a
    pretrained model brings to RLVR: ``warm_start_steps`` Adam steps (at ``3 lr``, gradient norm clipped) on
    the mean token log-likelihood of the right answers of ``warm_start_prompts`` prompts drawn by
    ``World.sample_prompts``. The optimiser state is reset afterwards.

    Args:
        params: policy parameters, updated in place.
        opt: Adam state; used for the warm start, then reset to zero moments and ``t = 0``.
        world: the task (and, in ``world.config``, the warm start's sizes).
        generator: draws the warm start's prompts.

    Examples:
        >>> from banditlib.adapters.rlvr.sim.world import expected_accuracy, init_params
        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8)
        >>> world, g = World(cfg), torch.Generator().manual_seed(0)
        >>> params = init_params(cfg, g); opt = adam_init(params)
        >>> acc = lambda: round(float(expected_accuracy(params, world, world.train_ids).mean()), 2)
        >>> before = acc(); warm_start(params, opt, world, g)
        >>> before, acc(), opt.t
        (0.03, 0.6, 0)
    """
    cfg = world.config
    ids = world.sample_prompts(cfg.warm_start_prompts, generator)
    answer = world.answer[ids]
    upto = (torch.arange(answer.shape[1]) <= world.prompt_len[ids].unsqueeze(1)).float()
    for _ in range(cfg.warm_start_steps):
        leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
        logp, _ = token_logprobs(leaves, world, ids, answer, cfg.temperature)
        loss = -(logp * upto).sum() / upto.sum()
        grads = torch.autograd.grad(loss, list(leaves.values()))
        with torch.no_grad():
            _adam_update(params, dict(zip(leaves, grads, strict=True)), opt, cfg.lr * 3, cfg.max_grad_norm)
    fresh = adam_init(params)
    opt.m, opt.v, opt.t = fresh.m, fresh.v, 0
