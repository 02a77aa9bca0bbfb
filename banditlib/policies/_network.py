"""The multilayer perceptron of the neural policies, with the per-sample gradient pieces they need.

For a layer ``y = W h + c`` the gradient of the network output ``f`` with respect to ``W`` for one sample is
``delta h^T`` with ``delta = df/dy``, and with respect to ``c`` it is ``delta``. Samples do not interact in
the forward pass, so one ordinary backward pass of ``sum_n f_n`` yields every sample's ``delta`` at once:
`gradient_pieces` returns ``(h_l, delta_l)`` per layer, from which the diagonal bonus, the diagonal
``Z`` update and last-layer gradients follow by small matrix products, without any per-sample gradient
tensor of size ``(N, p)`` and without a backward pass per arm (docs/neural.md, "The trick that removes the per-arm
backward pass").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLP", "block_encode", "gradient_pieces"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": nn.functional.gelu,
    "elu": nn.functional.elu,
    "leaky_relu": nn.functional.leaky_relu,
    "softplus": nn.functional.softplus,
}


class MLP(nn.Module):
    """``f(x) = W_L s(... s(W_1 x + c_1) ...) + c_L`` with scalar output; PyTorch's default initialisation.

    All parameters live in one flat vector ``params`` ``(p,)``, laid out layer by layer as ``[W_1, c_1, W_2,
    c_2, ...]`` (row-major ``W``): gradients, optimiser moments and the diagonal of ``Z`` are then plain
    vectors, and one optimiser step is a handful of vector operations.

    Args:
        dim: input dimension.
        hidden: widths of the hidden layers (may be empty: a linear model).
        activation: a name in `ACTIVATIONS`.
        generator: seeds the initial weights.
        dtype, device: of the parameters.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        widths = [dim, *hidden, 1]
        self.shapes = list(zip(widths[1:], widths[:-1], strict=True))  # (out, in) per layer
        chunks = []
        for out_features, in_features in self.shapes:  # nn.Linear's default init, drawn from our generator
            bound = 1.0 / in_features**0.5
            chunks.append(
                (
                    torch.rand(out_features * in_features + out_features, generator=generator, dtype=torch.float64) * 2
                    - 1
                )
                * bound
            )
        self.params = nn.Parameter(torch.cat(chunks).to(dtype=dtype, device=device))
        self.act = ACTIVATIONS[activation]

    @property
    def width(self) -> int:
        """Width of the last hidden layer (the input dimension for a network without hidden layers)."""
        return self.shapes[-1][1]

    def layers(self, params: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(W_l, c_l)`` views into ``params`` (default: the network's own)."""
        flat = self.params if params is None else params
        out, offset = [], 0
        for o, i in self.shapes:
            out.append((flat[offset : offset + o * i].view(o, i), flat[offset + o * i : offset + o * i + o]))
            offset += o * i + o
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer's activations ``(N, width)`` (the input itself without hidden layers)."""
        h = x
        for W, c in self.layers()[:-1]:
            h = self.act(nn.functional.linear(h, W, c))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``: ``(N, dim)`` -> ``(N,)``."""
        W, c = self.layers()[-1]
        return nn.functional.linear(self.features(x), W, c).squeeze(-1)


def gradient_pieces(net: MLP, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Outputs and, per layer, the layer inputs and output gradients of every sample, from one backward pass.

    Args:
        net: the network (its parameters' ``.grad`` is left untouched).
        x: ``(N, dim)``.

    Returns:
        ``f`` ``(N,)`` (detached) and ``[(h_l (N, in_l), delta_l (N, out_l))]`` for every layer ``l``: sample
        ``n``'s gradient with respect to ``W_l`` is ``outer(delta_l[n], h_l[n])`` and to ``c_l`` is
        ``delta_l[n]``.
    """
    hs, ys = [], []
    layers = net.layers(net.params.detach())
    with torch.enable_grad():
        h = x.detach()
        for i, (W, c) in enumerate(layers):
            hs.append(h)
            y = nn.functional.linear(h, W, c).requires_grad_(True) if i == 0 else nn.functional.linear(h, W, c)
            ys.append(y)
            h = net.act(y) if i < len(layers) - 1 else y
        f = h.squeeze(-1)
        deltas = torch.autograd.grad(f.sum(), ys)
    return f.detach(), [(hl.detach(), dl.detach()) for hl, dl in zip(hs, deltas, strict=True)]


def block_encode(x: torch.Tensor, arms: int) -> torch.Tensor:
    """Disjoint arms as one network over block features: ``(B, d)`` -> ``(B, K, K d)``, row ``k`` holding ``x``
    in block ``k`` and zeros elsewhere (the encoding of the NeuralUCB experiments)."""
    B, d = x.shape
    out = x.new_zeros(B, arms, arms * d)
    idx = torch.arange(arms, device=x.device)
    out.view(B, arms, arms, d)[:, idx, idx] = x.unsqueeze(1)
    return out
