"""The simulated policy's network: its parameters and forward passes, apart from the world it acts in
([`world`][banditlib.adapters.rlvr.sim.world], which re-exports the public names; kept apart for the module's
size)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: world.py imports this module
    from .world import SimConfig, World

__all__ = ["Params", "head_inputs", "init_params", "token_logprobs"]

Params = dict[str, torch.Tensor]
"""The policy's parameters by name (see [`init_params`][banditlib.adapters.rlvr.sim.world.init_params])."""


def init_params(config: SimConfig, generator: torch.Generator) -> Params:
    """Random policy parameters (scaled normal init), shared by every prompt.

    Args:
        config: the sizes: ``D = digits``, ``K = max_prompt_len``, ``L = max_len``, ``H = hidden``.
        generator: draws the normal weights (the biases start at 0).

    Returns:
        A dict of float32 tensors, with ``V = D + 1`` output tokens (the digits and the end token): ``"slot"``
        ``(K, D + 1, H)`` one embedding table per prompt slot (row ``D``: padding), ``"pos"`` ``(L, H)``
        output-position embeddings, ``"prev"`` ``(V + 1, H)`` previous-token embeddings (row ``V``: the start
        token), ``"b1"`` ``(H,)``, ``"W2"`` ``(H, H)``, ``"b2"`` ``(H,)``, and the output layer ``"W3"``
        ``(H, V)``, ``"b3"`` ``(V,)``.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import SimConfig
        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8)
        >>> params = init_params(cfg, torch.Generator().manual_seed(0))
        >>> sorted(params)
        ['W2', 'W3', 'b1', 'b2', 'b3', 'pos', 'prev', 'slot']
        >>> params["slot"].shape, params["prev"].shape, params["W3"].shape  # V = 4: the digits 0-2 and the end
        (torch.Size([2, 4, 8]), torch.Size([5, 8]), torch.Size([8, 4]))
    """
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


def _hidden(params: Params, h: torch.Tensor) -> torch.Tensor:
    """The output layer's input: the second hidden layer."""
    h = torch.tanh(h + params["b1"])
    return torch.tanh(h @ params["W2"] + params["b2"])


def _logits(params: Params, h: torch.Tensor) -> torch.Tensor:
    return _hidden(params, h) @ params["W3"] + params["b3"]


@torch.no_grad()
def head_inputs(
    params: Params, world: World, prompt_ids: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced ``(hidden, probs)``: the output layer's inputs and the next-token distributions of
    ``tokens``, what [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients] needs.

    Position ``j`` sees the prompt, the position and token ``j - 1`` (the start token at ``j = 0``), as in
    generation. Computed without autograd (``torch.no_grad``).

    Args:
        params: policy parameters ([`init_params`][banditlib.adapters.rlvr.sim.world.init_params]).
        world: the task.
        prompt_ids: ``(n,)`` int64 prompt of each row.
        tokens: ``(n, T)`` int64 tokens of each row, ``T <= max_len``.
        temperature: the distributions are ``softmax(logits / temperature)``.

    Returns:
        ``(hidden, probs)``: ``(n, T, H)`` float32 second hidden layer (the output layer's input) and
        ``(n, T, V)`` float32 next-token probabilities, ``V = digits + 1``.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import SimConfig, World
        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8)
        >>> world, params = World(cfg), init_params(cfg, torch.Generator().manual_seed(0))
        >>> ids = torch.tensor([0, 5])
        >>> hidden, probs = head_inputs(params, world, ids, world.answer[ids])
        >>> hidden.shape, probs.shape, bool(probs.sum(-1).allclose(torch.ones(2, 3)))
        (torch.Size([2, 3, 8]), torch.Size([2, 3, 4]), True)
    """
    n, T = tokens.shape
    V = world.config.digits + 1
    prev = torch.cat([torch.full((n, 1), V, dtype=torch.long), tokens[:, :-1]], dim=1)
    h = _prompt_embedding(params, world.prompts[prompt_ids]).unsqueeze(1) + params["pos"][:T] + params["prev"][prev]
    hid = _hidden(params, h)
    return hid, torch.softmax((hid @ params["W3"] + params["b3"]) / temperature, dim=-1)


def token_logprobs(
    params: Params, world: World, prompt_ids: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced per-token log-probs and entropies of ``tokens`` under the policy.

    Differentiable with respect to ``params`` (the PPO step and the warm start take their gradients). Every
    position is computed, masked or not: multiply by a mask to ignore the padding after the end token.

    Args:
        params: policy parameters ([`init_params`][banditlib.adapters.rlvr.sim.world.init_params]).
        world: the task.
        prompt_ids: ``(n,)`` int64.
        tokens: ``(n, T)`` int64 with ``T <= max_len``.
        temperature: the sampling temperature the log-probs refer to.

    Returns:
        ``(logp, entropy)``, both ``(n, T)`` float32: ``log pi(y_j | x, y_<j)`` and the entropy of that
        next-token distribution.

    Examples:
        >>> from banditlib.adapters.rlvr.sim import SimConfig, World
        >>> cfg = SimConfig(digits=3, max_prompt_len=2, max_len=3, hidden=8)
        >>> world, params = World(cfg), init_params(cfg, torch.Generator().manual_seed(0))
        >>> ids = torch.tensor([0, 5])
        >>> logp, entropy = token_logprobs(params, world, ids, world.answer[ids])
        >>> logp.shape, bool((logp < 0).all()), bool((entropy <= math.log(4)).all())  # V = 4 tokens
        (torch.Size([2, 3]), True, True)
    """
    n, T = tokens.shape
    V = world.config.digits + 1
    prev = torch.cat([torch.full((n, 1), V, dtype=torch.long), tokens[:, :-1]], dim=1)
    h = _prompt_embedding(params, world.prompts[prompt_ids]).unsqueeze(1) + params["pos"][:T] + params["prev"][prev]
    logp_all = torch.log_softmax(_logits(params, h) / temperature, dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy
