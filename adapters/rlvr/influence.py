"""Per-rollout gradients of a model's output layer, exact or sketched: what ``RolloutBatch.grad`` holds.

For an output layer ``z_t = W h_t + b`` with ``softmax(z_t / tau)`` as the next-token distribution, the
gradient of a rollout's mean token log-prob ``(1 / T) sum_t log pi(y_t)`` with respect to ``W`` is
``(1 / T) sum_t delta_t h_t^T`` with ``delta_t = (e_{y_t} - p_t) / tau`` (and ``(1 / T) sum_t delta_t`` for
``b``): every rollout's gradient follows from the forward pass alone (hidden states and probabilities), the
per-sample-gradient trick NeuralUCB's diagonal bonus uses, with no backward pass and no ``(N, p)`` gradient
tensor per token.

For a language model's head (``V`` in the tens of thousands) the ``V x H`` gradient is too large to keep, so
[`head_sketch`][banditlib.adapters.rlvr.influence.head_sketch] keeps ``L^T G R``, a ``k1 x k2`` Kronecker-structured
random projection (``L``, ``R`` Gaussian with variance ``1 / k1`` and ``1 / k2``, from
[`sketch_matrices`][banditlib.adapters.rlvr.influence.sketch_matrices]): inner products of sketches are unbiased
estimates of inner products of gradients (as in LoGra, Choe et al. 2024), and the cost is two thin matrix products per
token, ``p_t L`` and ``h_t R``. Use the same matrices in every round.

Cost of the sketch for ``N`` rollouts of ``T`` tokens: ``N T (V k1 + H k2)`` multiply-adds, the first term
being ``k1 / H`` of the head's own forward cost (``k1 = 16``, ``H = 4096``: 0.4%).
"""

from __future__ import annotations

import torch

from banditlib import extend as V
from banditlib.errors import InvalidInputError

__all__ = ["head_gradients", "head_sketch", "sketch_matrices"]


def _check(hidden: torch.Tensor, probs: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, where: str) -> None:
    if hidden.dim() != 3 or probs.dim() != 3 or hidden.shape[:2] != probs.shape[:2]:
        raise InvalidInputError(
            f"{where}: `hidden` (N, T, H) and `probs` (N, T, V) must agree on (N, T); got "
            f"{V.fmt_shape(hidden.shape)} and {V.fmt_shape(probs.shape)}."
        )
    if tokens.shape != probs.shape[:2] or mask.shape != probs.shape[:2]:
        raise InvalidInputError(
            f"{where}: `tokens` and `mask` must have shape (N, T) = {V.fmt_shape(probs.shape[:2])}; got "
            f"{V.fmt_shape(tokens.shape)} and {V.fmt_shape(mask.shape)}."
        )


def _deltas(probs: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """``(N, T, V)`` ``(e_y - p) / tau`` on real tokens, divided by each rollout's token count; 0 on padding."""
    m = mask.to(probs.dtype)
    count = m.sum(1, keepdim=True).clamp_min(1.0)
    onehot = torch.zeros_like(probs).scatter_(2, tokens.long().unsqueeze(2), 1.0)
    return (onehot - probs) * (m / count / temperature).unsqueeze(2)


def head_gradients(
    hidden: torch.Tensor, probs: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
    *, bias: bool = True,
) -> torch.Tensor:  # fmt: skip
    """Exact per-rollout gradients of the mean token log-prob with respect to the output layer.

    Args:
        hidden: ``(N, T, H)`` the layer's inputs at each token position.
        probs: ``(N, T, V)`` the next-token distributions (at ``temperature``).
        tokens: ``(N, T)`` the sampled tokens.
        mask: ``(N, T)`` bool, the real tokens of each rollout.
        temperature: the sampling temperature ``tau`` (the logits are divided by it).
        bias: whether the layer has a bias (its gradient is appended).

    Returns:
        ``(N, V H + V)`` (``(N, V H)`` without bias) float32, the weight gradient flattened row-major ``(V, H)``.

    Examples:
        >>> h = torch.randn(2, 3, 4); z = torch.randn(2, 3, 5); y = torch.randint(0, 5, (2, 3))
        >>> mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
        >>> W = torch.zeros(5, 4, requires_grad=True)
        >>> logp = torch.log_softmax(z + torch.einsum("vh,nth->ntv", W, h), -1).gather(2, y[..., None])[..., 0]
        >>> torch.autograd.grad(((logp * mask).sum(1) / mask.sum(1))[0], W)[0].flatten().allclose(
        ...     head_gradients(h, z.softmax(-1), y, mask, bias=False)[0], atol=1e-6)
        True
    """
    where = "head_gradients()"
    _check(hidden, probs, tokens, mask, where)
    d = _deltas(probs.float(), tokens, mask, temperature)
    W = torch.einsum("ntv,nth->nvh", d, hidden.float()).flatten(1)
    return torch.cat([W, d.sum(1)], 1) if bias else W


def sketch_matrices(
    vocab: int, hidden: int, k1: int = 16, k2: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two Gaussian projections of [`head_sketch`][banditlib.adapters.rlvr.influence.head_sketch]: ``L (V, k1)``
    with variance ``1 / k1`` and ``R (H, k2)`` with variance ``1 / k2``, float32, from a seeded generator (same seed,
    same matrices).

    Args:
        vocab: ``V``, the output layer's vocabulary size (``>= 1``).
        hidden: ``H``, its input width (``>= 1``).
        k1: sketch rows ``k1`` (``>= 1``).
        k2: sketch columns ``k2`` (``>= 1``); a sketch has ``k1 k2`` entries.
        seed: seeds a generator of its own (the global torch seed is untouched).

    Returns:
        ``(left, right)``: ``(V, k1)`` and ``(H, k2)`` float32 on CPU (``L`` is drawn first).

    Raises:
        InvalidInputError: ``vocab``, ``hidden``, ``k1`` or ``k2`` is not an integer ``>= 1``.

    Examples:
        >>> left, right = sketch_matrices(vocab=10, hidden=6, k1=4, k2=3)
        >>> left.shape, right.shape, left.dtype
        (torch.Size([10, 4]), torch.Size([6, 3]), torch.float32)
        >>> torch.equal(sketch_matrices(10, 6, 4, 3)[0], left)  # same seed, same matrices
        True
    """
    for name, v in (("vocab", vocab), ("hidden", hidden), ("k1", k1), ("k2", k2)):
        V.check_int(v, "sketch_matrices()", name)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(vocab, k1, generator=g) / k1**0.5, torch.randn(hidden, k2, generator=g) / k2**0.5


def head_sketch(
    hidden: torch.Tensor, probs: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, left: torch.Tensor,
    right: torch.Tensor, temperature: float = 1.0,
) -> torch.Tensor:  # fmt: skip
    """``(N, k1 k2)`` float32 sketches ``L^T G_i R`` of the per-rollout output-layer weight gradients ``G_i``
    (see [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients]), without forming any ``G_i``.

    Args:
        hidden: ``(N, T, H)`` final hidden states, as for
            [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients].
        probs: ``(N, T, V)`` next-token probabilities, as for
            [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients].
        tokens: ``(N, T)`` sampled token ids, as for
            [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients].
        mask: ``(N, T)`` completion mask, as for [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients].
        left: ``(V, k1)`` left projection ([`sketch_matrices`][banditlib.adapters.rlvr.influence.sketch_matrices]).
        right: ``(H, k2)`` right projection ([`sketch_matrices`][banditlib.adapters.rlvr.influence.sketch_matrices]).
        temperature: sampling temperature, as for [`head_gradients`][banditlib.adapters.rlvr.influence.head_gradients].

    Examples:
        >>> h = torch.randn(3, 4, 8); p = torch.randn(3, 4, 6).softmax(-1); y = torch.randint(0, 6, (3, 4))
        >>> m = torch.ones(3, 4, dtype=torch.bool)
        >>> L, R = sketch_matrices(6, 8, k1=6, k2=8)
        >>> G = head_gradients(h, p, y, m, bias=False).view(3, 6, 8)
        >>> torch.allclose(head_sketch(h, p, y, m, L, R), (L.T @ G @ R).flatten(1), atol=1e-5)
        True
    """
    where = "head_sketch()"
    _check(hidden, probs, tokens, mask, where)
    if left.dim() != 2 or left.shape[0] != probs.shape[2] or right.dim() != 2 or right.shape[0] != hidden.shape[2]:
        raise InvalidInputError(
            f"{where}: `left` must be (V, k1) with V = {probs.shape[2]} and `right` (H, k2) with H = "
            f"{hidden.shape[2]}; "
            f"got {V.fmt_shape(left.shape)} and {V.fmt_shape(right.shape)}."
        )
    L, R = left.to(probs.device, torch.float32), right.to(hidden.device, torch.float32)
    m = mask.to(torch.float32)
    scale = (m / m.sum(1, keepdim=True).clamp_min(1.0) / temperature).unsqueeze(2)
    dl = (L[tokens.long()] - probs.float() @ L) * scale  # (N, T, k1): delta_t^T L, without the (N, T, V) delta
    hr = hidden.float() @ R  # (N, T, k2)
    return torch.einsum("ntk,ntj->nkj", dl, hr).flatten(1)
