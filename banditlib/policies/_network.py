"""The multilayer perceptron of the neural policies, with the per-sample gradient pieces they need.

For a layer ``y = W h + c`` the gradient of the network output ``f`` with respect to ``W`` for one sample is
``delta h^T`` with ``delta = df/dy``, and with respect to ``c`` it is ``delta``. Samples do not interact in
the forward pass, so one ordinary backward pass of ``sum_n f_n`` yields every sample's ``delta`` at once:
`gradient_pieces` returns ``(h_l, delta_l)`` per layer, from which the diagonal bonus, the diagonal
``Z`` update and last-layer gradients follow by small matrix products, without any per-sample gradient
tensor of size ``(N, p)`` and without a backward pass per arm (docs/neural.md, "The trick that removes the per-arm
backward pass"). For the built-in activations that backward pass is written out with the very kernels autograd
calls (``addmm``'s and the activation's backward formulas, in the same order), so the results are bit-identical to
``torch.autograd`` without building a graph; `MSEGradient` does the same for the training loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLP", "MSEGradient", "block_encode", "gradient_pieces"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": nn.functional.gelu,
    "elu": nn.functional.elu,
    "leaky_relu": nn.functional.leaky_relu,
    "softplus": nn.functional.softplus,
}

_BUILTIN = dict(ACTIVATIONS)

# The backward formulas autograd applies for each activation, as ``(grad, pre-activation, activation) -> grad``.
_aten = torch.ops.aten
_ACTIVATION_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "relu": lambda g, y, h: _aten.threshold_backward.default(g, h, 0),
    "tanh": lambda g, y, h: _aten.tanh_backward.default(g, h),
    "sigmoid": lambda g, y, h: _aten.sigmoid_backward.default(g, h),
    "gelu": lambda g, y, h: _aten.gelu_backward.default(g, y, approximate="none"),
    "elu": lambda g, y, h: _aten.elu_backward.default(g, 1.0, 1, 1, False, y),
    "leaky_relu": lambda g, y, h: _aten.leaky_relu_backward.default(g, y, 0.01, False),
    "softplus": lambda g, y, h: _aten.softplus_backward.default(g, y, 1, 20),
}


_Layer = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (W, W^T, c) views of one layer's parameters


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
        self.activation = activation
        # The backward pass is written out for the built-in activations (autograd for anything else).
        self._manual_backward = self.act is _BUILTIN.get(activation)
        self._views: tuple[tuple[int, int, torch.dtype, torch.device], list[_Layer]] | None = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_views"] = None  # views of this network's storage: rebuilt, never shared with a copy
        return state

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

    def detached_layers(self) -> list[_Layer]:
        """``(W_l, W_l^T, c_l)`` views into ``params.detach()`` (no autograd), cached while the parameters keep
        their storage: in-place updates show through the views, and a new storage (``.to()``,
        ``load_state_dict(assign=True)``) rebuilds them."""
        p = self.params
        key = (id(p), p.data_ptr(), p.dtype, p.device)
        cached = self._views
        if cached is None or cached[0] != key:
            cached = (key, [(W, W.t(), c) for W, c in self.layers(p.detach())])
            self.__dict__["_views"] = cached  # (a plain attribute: skip nn.Module.__setattr__)
        return cached[1]

    def _layers_for_call(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The views a forward pass uses: tracked by autograd only when a gradient could be asked for."""
        if torch.is_grad_enabled() and self.params.requires_grad:
            return self.layers()
        return [(W, c) for W, _, c in self.detached_layers()]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer's activations ``(N, width)`` (the input itself without hidden layers)."""
        h = x
        for W, c in self._layers_for_call()[:-1]:
            h = self.act(nn.functional.linear(h, W, c))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``: ``(N, dim)`` -> ``(N,)``."""
        layers = self._layers_for_call()
        h = x
        for W, c in layers[:-1]:
            h = self.act(nn.functional.linear(h, W, c))
        W, c = layers[-1]
        return nn.functional.linear(h, W, c).squeeze(-1)


def gradient_pieces(net: MLP, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Outputs and, per layer, the layer inputs and output gradients of every sample, from one backward pass.

    Args:
        net: the network (its parameters' ``.grad`` is left untouched).
        x: ``(N, dim)``.

    Returns:
        ``f`` ``(N,)`` (detached) and ``[(h_l (N, in_l), delta_l (N, out_l))]`` for every layer ``l``: sample
        ``n``'s gradient with respect to ``W_l`` is ``outer(delta_l[n], h_l[n])`` and to ``c_l`` is
        ``delta_l[n]``.

    Examples:
        >>> import torch
        >>> net = MLP(3, (4,), "relu", torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
        >>> x = torch.randn(2, 3, dtype=torch.float64)
        >>> f, pieces = gradient_pieces(net, x)
        >>> [(tuple(h.shape), tuple(d.shape)) for h, d in pieces]
        [((2, 3), (2, 4)), ((2, 4), (2, 1))]
        >>> x1 = x[:1].clone()
        >>> (W1, _), _ = net.layers()
        >>> (gW1,) = torch.autograd.grad(net(x1).sum(), [net.params])  # sample 0 by autograd
        >>> h, delta = pieces[0]
        >>> torch.allclose(gW1[: W1.numel()].view_as(W1), torch.outer(delta[0], h[0]))
        True
    """
    if not net._manual_backward:
        return _gradient_pieces_autograd(net, x)
    with torch.no_grad():
        layers = net.detached_layers()
        hs, ys = _forward(net.act, layers, x.detach())
        f = ys[-1].squeeze(-1)
        # d(sum f)/df as autograd hands it to the output layer: a 0-d one expanded over the samples
        ones = _one(f.dtype, f.device).expand(f.shape[0]).unsqueeze(-1)
        deltas = _backward(_ACTIVATION_BACKWARD[net.activation], layers, hs, ys, ones)
    return f, list(zip(hs, deltas, strict=True))


class MSEGradient:
    """The gradient of ``1/2 mean (f(x) - y)^2`` over minibatches of ``batch`` rows, at parameters ``params``,
    written into the flat vector ``grad`` (both ``(p,)``, laid out as ``net.params``).

    Bit-identical to ``torch.autograd.grad`` of that loss (the kernels autograd runs, in its order), without
    building a graph; the views and constants are made once, for all the steps of a training round.

    Args:
        net: the network (a built-in activation: ``net._manual_backward``).
        params: the parameters to differentiate at (updated in place between calls).
        grad: the output vector; every entry is written by each call.
        batch: rows per minibatch.

    Examples:
        >>> import torch
        >>> net = MLP(3, (4,), "tanh", torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
        >>> x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
        >>> grad = torch.empty_like(net.params)
        >>> MSEGradient(net, net.params.detach(), grad, 5)(x, y.unsqueeze(-1))
        >>> (want,) = torch.autograd.grad(0.5 * torch.mean((net(x) - y) ** 2), [net.params])
        >>> torch.equal(grad, want)
        True
    """

    def __init__(self, net: MLP, params: torch.Tensor, grad: torch.Tensor, batch: int) -> None:
        self.act = net.act
        self.act_backward = _ACTIVATION_BACKWARD[net.activation]
        self.layers = [(W, W.t(), c) for W, c in net.layers(params)]
        self.grads = [(gW, gc.view(1, -1)) for gW, gc in net.layers(grad)]
        # autograd's d loss / d (f - y)^2: the 0.5 expanded over the batch and divided by its size; then pow's
        # backward multiplies by 2 (f - y)
        half = torch.full((), 0.5, dtype=params.dtype, device=params.device)
        self.scale = (half.expand(batch) / batch).unsqueeze(-1)
        self.two = torch.full((), 2.0, dtype=params.dtype, device=params.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Write the gradient for inputs ``x`` ``(batch, dim)`` and targets ``y`` ``(batch, 1)``."""
        hs, ys = _forward(self.act, self.layers, x)
        gy = ys[-1].sub_(y).mul_(self.two).mul_(self.scale)  # (batch, 1), as autograd's unsqueezed (batch,)
        deltas = _backward(self.act_backward, self.layers, hs, ys, gy)
        for (gW, gc), h, delta in zip(self.grads, hs, deltas, strict=True):
            # addmm's weight gradient (its branch for W^T, a column-major input), made fresh and copied: MKL's
            # result can depend on the output's alignment, and autograd's is a fresh tensor
            gW.copy_(delta.t().mm(h))
            torch.sum(delta, 0, keepdim=True, out=gc)  # the bias gradient: autograd's sum_to over the samples


@functools.lru_cache(maxsize=16)
def _one(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A 0-d one, made once (only ever expanded, never written; an ordinary tensor even if first asked for in
    inference mode)."""
    with torch.inference_mode(False):
        return torch.ones((), dtype=dtype, device=device)


def _forward(
    act: Callable[[torch.Tensor], torch.Tensor], layers: list[_Layer], x: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every layer's input ``h_l`` and pre-activation ``y_l`` (the last one is the output ``(N, 1)``), by the
    ``addmm`` that ``nn.functional.linear`` runs for 2-d inputs."""
    hs, ys = [], []
    h, last = x, len(layers) - 1
    for i, (_, WT, c) in enumerate(layers):
        hs.append(h)
        y = torch.addmm(c, h, WT)
        ys.append(y)
        if i < last:
            h = act(y)
    return hs, ys


def _backward(
    act_backward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    layers: list[_Layer],
    hs: list[torch.Tensor],
    ys: list[torch.Tensor],
    delta: torch.Tensor,
) -> list[torch.Tensor]:
    """``delta_l`` for every layer from the output layer's ``delta`` ``(N, 1)``, by autograd's formulas."""
    deltas = [delta]
    for i in range(len(layers) - 1, 0, -1):
        W, WT, h = layers[i][0], layers[i][1], hs[i]
        # addmm's gradient with respect to its input, with autograd's branch for a column-major input
        g = WT.mm(delta.t()).t() if h.stride(0) == 1 and h.stride(1) == h.shape[0] else delta.mm(W)
        delta = act_backward(g, ys[i - 1], h)
        deltas.append(delta)
    deltas.reverse()
    return deltas


def _gradient_pieces_autograd(
    net: MLP, x: torch.Tensor
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """`gradient_pieces` by ``torch.autograd`` (activations without a written-out backward)."""
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
