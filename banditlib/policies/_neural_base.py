"""What every neural policy shares: the network, its input encoding, the history, and training.

* **Inputs.** Shared-parameter model: the network scores each arm's feature vector ``x`` ``(d,)``. Disjoint
  arms (``arms=K``): the network scores the block encoding of the context (``x`` in block ``k`` of a
  ``K d`` vector, zeros elsewhere), as in the NeuralUCB experiments; one network serves all arms.
* **History.** A ring buffer of the last ``history`` observed ``(input, reward)`` pairs, so memory never grows
  without bound; training samples minibatches from it.
* **Training.** Every ``train_every`` observations, ``train_steps`` Adam steps on minibatches of
  ``batch_size`` drawn (with replacement) from the history by the policy's counter-based generator, on

      loss = 1/2 mean_batch (f(x) - r)^2 + R(theta),

  with ``R = reg / (2 n) ||theta - theta_0||^2`` for ``loss="anchor"`` (the NeuralUCB paper's regulariser
  toward the initial parameters, divided by the ``n`` observations in the history so that the minibatch
  loss estimates the paper's objective over ``n``) or Adam's weight decay ``reg`` for ``loss="weight_decay"``
  (the reference code's choice). The optimiser is ``torch.optim.Adam(fused=True)``'s step (`_AdamStep`), one
  kernel over the flat parameter vector; its moments are buffers, so ``save`` / ``load`` restores them. The loss
  gradient is written out (`banditlib.policies._network.MSEGradient`), bit-identical to autograd's, so a step
  builds no graph.
  A step that makes the parameters non-finite is rolled back, with the rest of the call, and raises
  [`NumericalError`][banditlib.NumericalError].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.optim.adam import adam

from banditlib import _random
from banditlib import _validation as V
from banditlib.errors import InvalidInputError, NumericalError
from banditlib.policies._network import ACTIVATIONS, MLP, MSEGradient, block_encode
from banditlib.policies._params import Param, choice, float_in, int_at_least, layer_widths
from banditlib.policies.base import Policy

__all__: list[str] = []

STREAM_TRAIN = 4
_BETAS, _EPS = (0.9, 0.999), 1e-8
_GATHER_AT_ONCE = 1 << 20  # elements: a training round's minibatches are gathered at once up to this
_ALIGN = 64  # bytes: the CPU allocator's alignment, which every pre-gathered minibatch keeps


class _NeuralPolicy(Policy):
    """Network, encoding, history ring buffer and training schedule of the neural policies.

    Buffers: ``hist_x_`` ``(H, D)``, ``hist_r_`` ``(H,)``, ``n_seen_`` (observations ever; the ring position
    is ``n_seen_ % H``), ``theta0_`` ``(p,)`` the initial parameters, ``adam_m_`` / ``adam_v_`` ``(p,)`` and
    ``adam_t_`` Adam's state, and the counters ``since_train`` and ``train_rounds``.
    """

    _abstract = True
    _row_path = False
    _batch_update_equals_rows = False
    _bookkeeping = Policy._bookkeeping | {"since_train", "train_rounds"}

    _params: ClassVar[tuple[Param, ...]] = (
        Param("hidden", (100,), "Sequence[int]", "hidden layer widths.", layer_widths, list),
        Param("activation", "relu", "str", "the hidden layers' activation: " + ", ".join(f"``{a!r}``" for a in
              sorted(ACTIVATIONS)) + ".", choice(ACTIVATIONS)),
        Param("reg", 1.0, "float", "``lambda > 0``: the prior's precision and the network regulariser's weight.",
              float_in(0.0, low_open=True)),
        Param("lr", 1e-3, "float", "Adam's learning rate.", float_in(0.0, low_open=True)),
        Param("train_every", 10, "int", "observations between training rounds.", int_at_least(1)),
        Param("train_steps", 50, "int", "Adam steps per training round (``0``: never train).", int_at_least(0)),
        Param("batch_size", 32, "int", "minibatch size.", int_at_least(1)),
        Param("history", 10_000, "int", "capacity of the ring buffer of observations the network is trained on.",
              int_at_least(1)),
        Param("loss", "anchor", "str", "``'anchor'`` (pull toward the initial parameters, as in the NeuralUCB paper) "
              "or ``'weight_decay'``.", choice(("anchor", "weight_decay"))),
    )  # fmt: skip
    _param_docs: ClassVar[dict[str, str]] = {
        "arms": "``None`` (shared-parameter model: contexts ``(B, K, d)``, one feature vector per arm) or the number "
        "of disjoint arms ``K`` (contexts ``(B, d)``, block-encoded into ``K d`` network inputs).",
        "seed": "seeds the initial weights, the minibatches, the samples and tie-breaking.",
        "device": "device of the network and state.",
    }
    hidden: tuple[int, ...]
    activation: str
    reg: float
    lr: float
    train_every: int
    train_steps: int
    batch_size: int
    history: int
    loss: str

    def _init(self, values: dict[str, Any]) -> None:
        self.input_dim = self.dim * (self.arms or 1)
        gen = torch.Generator().manual_seed(self.seed)
        self.net = MLP(self.input_dim, self.hidden, self.activation, gen, self.dtype, self.device)
        flat = self.net.params.detach().clone()
        self.register_buffer("theta0_", flat)
        self.register_buffer("adam_m_", torch.zeros_like(flat))
        self.register_buffer("adam_v_", torch.zeros_like(flat))
        self.register_buffer("adam_t_", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer("hist_x_", torch.zeros(self.history, self.input_dim, dtype=self.dtype, device=self.device))
        self.register_buffer("hist_r_", torch.zeros(self.history, dtype=self.dtype, device=self.device))
        self.register_buffer("n_seen_", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer("since_train", torch.zeros((), dtype=torch.long, device=self.device))
        self.register_buffer("train_rounds", torch.zeros((), dtype=torch.long, device=self.device))

    theta0_: torch.Tensor
    adam_m_: torch.Tensor
    adam_v_: torch.Tensor
    adam_t_: torch.Tensor
    hist_x_: torch.Tensor
    hist_r_: torch.Tensor
    n_seen_: torch.Tensor
    since_train: torch.Tensor
    train_rounds: torch.Tensor

    # ------------------------------------------------------------------------------------------ inputs

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Validated contexts -> network inputs ``(B * K, D)`` (block encoding for disjoint arms)."""
        if self.arms is None:
            return x.reshape(-1, self.dim)
        return block_encode(x, self.arms).reshape(-1, self.input_dim)

    def _encode_observed(self, x: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        """Observed ``(N, d)`` rows of arms ``model`` -> network inputs ``(N, D)``."""
        if self.arms is None:
            return x
        out = x.new_zeros(x.shape[0], self.arms, self.dim)
        out[torch.arange(x.shape[0], device=x.device), model] = x
        return out.reshape(x.shape[0], self.input_dim)

    # ------------------------------------------------------------------------------------------ learning

    def _fold(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exploration statistics after observing ``enc`` (``(N, D)``), computed aside (no commit)."""
        raise NotImplementedError

    def _learn(
        self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor, steps: torch.Tensor, num_steps: int
    ) -> None:
        # Nothing an update computes needs autograd when every network's backward pass is written out, and
        # inference mode spares each op autograd's bookkeeping; what is committed is copied into the buffers.
        inference = all(net._manual_backward for net in self._networks())
        with torch.inference_mode(inference):
            self._learn_observed(x, model, rewards)

    def _learn_observed(self, x: torch.Tensor, model: torch.Tensor, rewards: torch.Tensor) -> None:
        """`_learn` proper: fold, append to the history, train when due, commit; all or nothing."""
        enc = self._encode_observed(x, model)
        new_stats = self._fold(enc, rewards)  # computed aside: nothing is committed yet
        self._check_usable(new_stats)
        due = self.train_steps > 0 and int(self.since_train) + enc.shape[0] >= self.train_every
        snapshot = [t.detach().clone() for t in self._training_state()] if due else []
        undo = self._append_history(enc, rewards, undoable=due)  # without training, nothing below can fail
        try:
            if due:
                self._train()
                new_stats = self._refit(new_stats)
            if due:
                self._check_usable(new_stats, trained=True)
        except BaseException:
            with torch.no_grad():
                undo()
                for t, old in zip(self._training_state(), snapshot, strict=True):
                    t.copy_(old)
            self._invalidate_caches()
            raise
        with torch.no_grad():
            for name, value in new_stats.items():
                getattr(self, name).copy_(value)
            if due:
                self.since_train.zero_()
            else:
                self.since_train.add_(enc.shape[0])  # in place: no Module.__setattr__
        self._invalidate_caches()

    def _check_usable(self, stats: dict[str, torch.Tensor], trained: bool = False) -> None:
        """Raise [`InvalidInputError`][banditlib.InvalidInputError] if what an update would commit is not finite: finite
        inputs can still overflow (a context of 1e20 is squared into ``Z`` in float32; rewards near 1e20 square into
        Adam's second moment), and a policy holding such a state could never select again."""
        checked = dict(stats)
        if trained:
            names = ("network parameters", "adam_m_", "adam_v_")
            checked.update(zip(names, self._training_state(), strict=False))
        # V.all_finite's test once for all: every sum is finite exactly when their float64 total is (an
        # infinity or NaN anywhere propagates); only a non-finite total pays for the tensor by tensor check
        sums = [t.sum().to(torch.float64) for t in checked.values() if t.numel()]
        if not sums or bool(torch.isfinite(sum(sums[1:], sums[0]))):
            return
        bad = [name for name, value in checked.items() if not V.all_finite(value)]
        if bad:
            raise InvalidInputError(
                f"{type(self).__name__}.update(): the inputs are too large for the policy's statistics: the update "
                f"would make {', '.join(bad)} non-finite; rescale the contexts and rewards (unit scale is best). The "
                "state is unchanged."
            )

    def _refit(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Statistics to commit after a training round changed the network (default: ``stats`` as folded)."""
        return stats

    def _history(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The observations in the ring buffer: inputs ``(n, D)`` and rewards ``(n,)``."""
        n = min(int(self.n_seen_), self.history)
        return self.hist_x_[:n], self.hist_r_[:n]

    def _networks(self) -> list[MLP]:
        """Every network of the policy."""
        return [self.net]

    def _training_state(self) -> list[torch.Tensor]:
        """Everything ``_train`` changes."""
        return [self.net.params, self.adam_m_, self.adam_v_, self.adam_t_, self.train_rounds]

    def _history_rows(self, enc: torch.Tensor, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """What one observation adds to each history buffer (a row per observation, by buffer name)."""
        return {"hist_x_": enc, "hist_r_": rewards}

    def _append_history(self, enc: torch.Tensor, rewards: torch.Tensor, undoable: bool = True) -> Any:
        """Write the observations into the ring buffers; returns a function that undoes it (which only resets the
        count, not the overwritten rows, unless ``undoable``)."""
        rows = self._history_rows(enc, rewards)
        N, H = enc.shape[0], self.history
        start = int(self.n_seen_)
        if N > H:
            rows, start = {k: v[-H:] for k, v in rows.items()}, start + N - H
        first = start % H
        if first + min(N, H) <= H:  # one contiguous stretch of the ring: slices, no index tensors
            pos: slice | torch.Tensor = slice(first, first + min(N, H))
        else:
            pos = (start + torch.arange(min(N, H), device=enc.device)) % H
        old = {k: getattr(self, k)[pos].clone() for k in rows} if undoable else {}
        with torch.no_grad():
            for k, v in rows.items():
                getattr(self, k)[pos] = v
            self.n_seen_.add_(N)

        def undo() -> None:
            for k, v in old.items():
                getattr(self, k)[pos] = v
            self.n_seen_.sub_(N)

        return undo

    def _train(self) -> None:
        """One training round of the network (see the module docstring)."""
        x, r = self._history()
        anchor = self.theta0_ if self.loss == "anchor" else None
        wd = self.reg if self.loss == "weight_decay" else 0.0
        self._adam(self.net, "", x, r, STREAM_TRAIN, anchor=anchor, weight_decay=wd)
        self.train_rounds.add_(1)

    def _adam(
        self,
        net: MLP,
        prefix: str,
        X: torch.Tensor,
        y: torch.Tensor,
        stream: int,
        *,
        anchor: torch.Tensor | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        """``train_steps`` Adam steps of ``net`` on ``1/2 mean (net(X_b) - y_b)^2`` over minibatches of the
        ``n`` rows of ``(X, y)`` (plus ``reg / (2 n) ||params - anchor||^2`` when ``anchor`` is given), with the
        moments in the buffers ``adam{prefix}_m_``, ``adam{prefix}_v_``, ``adam{prefix}_t_``."""
        n = X.shape[0]
        params = net.params
        m, v, t_buf = (getattr(self, f"adam{prefix}_{k}_") for k in "mvt")
        first = int(self.train_rounds) * self.train_steps
        rows = torch.arange(first, first + self.train_steps, device=self.device)
        picks = (_random.uniform(self.seed, stream, rows, self.batch_size) * n).long().clamp_max(n - 1)
        with torch.no_grad():
            if net._manual_backward:
                gradient = self._manual_gradient(net, X, y, picks, anchor)
            else:
                gradient = self._autograd_gradient(net, X, y, picks, anchor)
            step = _AdamStep(net.params.detach(), m, v, self.lr, weight_decay)
            t0 = int(t_buf)
            for i in range(picks.shape[0]):
                step(gradient(i), t0 + i + 1)
            t_buf += picks.shape[0]
        if not (bool(torch.isfinite(params).all()) and bool(torch.isfinite(v).all())):
            raise NumericalError(
                f"{type(self).__name__}.update(): training made the network's parameters or Adam's moments non-finite "
                "(rewards or contexts too large, or `lr` too large); the update was rolled back."
            )

    def _manual_gradient(
        self,
        net: MLP,
        X: torch.Tensor,
        y: torch.Tensor,
        picks: torch.Tensor,
        anchor: torch.Tensor | None,
    ) -> Callable[[int], torch.Tensor]:
        """``step -> `` the loss gradient of minibatch ``picks[step]``, written out (`MSEGradient`) into one
        vector: autograd's arithmetic bit for bit, without building a graph or allocating per step."""
        n, B = X.shape[0], picks.shape[1]
        P = net.params.detach()
        g = torch.empty_like(P)
        loss_gradient = MSEGradient(net, P, g, B)
        diff = torch.empty_like(P)
        two = torch.full((), 2.0, dtype=P.dtype, device=P.device)  # the value a Python scalar is cast to
        # autograd's gradient of reg / (2 n) ||P - anchor||^2: that scalar times 2 (P - anchor)
        anchor_scale = torch.ones((), dtype=P.dtype, device=P.device) * (0.5 * self.reg / n)
        batches = _minibatches(X, y, picks)

        def gradient(step: int) -> torch.Tensor:
            loss_gradient(*batches(step))
            if anchor is not None:
                g.add_(torch.sub(P, anchor, out=diff).mul_(two).mul_(anchor_scale))
            return g

        return gradient

    def _autograd_gradient(
        self,
        net: MLP,
        X: torch.Tensor,
        y: torch.Tensor,
        picks: torch.Tensor,
        anchor: torch.Tensor | None,
    ) -> Callable[[int], torch.Tensor]:
        """``step -> `` the loss gradient of minibatch ``picks[step]`` by ``torch.autograd`` (activations without a
        written-out backward)."""
        n = X.shape[0]
        params = net.params

        def gradient(step: int) -> torch.Tensor:
            idx = picks[step]
            with torch.enable_grad():
                loss = 0.5 * torch.mean((net(X[idx]) - y[idx]) ** 2)
                if anchor is not None:
                    loss = loss + (0.5 * self.reg / n) * torch.sum((params - anchor) ** 2)
                (g,) = torch.autograd.grad(loss, [params])
            return g

        return gradient


class _AdamStep:
    """``torch.optim.Adam(fused=True)``'s step on ``P``, with the moments ``m``, ``v`` kept in the policy's buffers
    and the step count ``t`` passed in, so that ``save`` / ``load`` continue a run exactly.

    On CPU and CUDA it calls the fused kernel that ``torch.optim`` dispatches to (``torch._fused_adam_``, one
    kernel over the flat parameter vector) directly: the functional wrapper's argument checks cost about 9 µs a
    step, three times the kernel, and a training round takes 50 steps. A test holds it to
    ``torch.optim.Adam(fused=True)`` bit for bit. Other devices take ``torch.optim``'s functional Adam."""

    def __init__(self, P: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.P, self.m, self.v, self.lr, self.weight_decay = P, m, v, lr, weight_decay
        self.fused = P.device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_")
        self.step = torch.zeros((), dtype=torch.float32, device=P.device)

    def __call__(self, g: torch.Tensor, t: int) -> None:
        """Step ``t`` (1 for the first) with the loss gradient ``g``."""
        b1, b2 = _BETAS
        if self.fused:
            self.step.fill_(t)  # the kernel reads the step count; torch.optim increments it before the call
            torch._fused_adam_(
                [self.P], [g], [self.m], [self.v], [], [self.step], lr=self.lr, beta1=b1, beta2=b2,
                weight_decay=self.weight_decay, eps=_EPS, amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        self.step.fill_(t - 1)  # the functional form increments the count itself
        adam(
            [self.P], [g], [self.m], [self.v], [], [self.step],
            foreach=False, fused=False, capturable=False, differentiable=False, grad_scale=None, found_inf=None,
            has_complex=False, amsgrad=False, beta1=b1, beta2=b2, lr=self.lr, weight_decay=self.weight_decay,
            eps=_EPS, maximize=False,
        )  # fmt: skip


def _minibatches(X: torch.Tensor, y: torch.Tensor, picks: torch.Tensor) -> Any:
    """``step -> (X[picks[step]], y[picks[step]][:, None])``, gathered in one go when that is small.

    Each pre-gathered minibatch starts at an address aligned like a fresh allocation: MKL's matrix products can
    round differently for differently aligned inputs, and the result must equal a per-step ``X[idx]`` bit for bit.
    """
    steps, B = picks.shape
    D = X.shape[1]
    if steps * B * D > _GATHER_AT_ONCE:
        return lambda step: (X[picks[step]], y[picks[step]].unsqueeze(-1))
    per = -(-B * D * X.element_size() // _ALIGN) * _ALIGN // X.element_size()  # elements per step, padded
    flat = picks.reshape(-1)
    xs = torch.empty(steps, per, dtype=X.dtype, device=X.device)
    xs[:, : B * D].view(steps, B, D).copy_(X.index_select(0, flat).view(steps, B, D))
    ys = y.index_select(0, flat).view(steps, B, 1)
    xb = [xs[step, : B * D].view(B, D) for step in range(steps)]
    return lambda step: (xb[step], ys[step])
