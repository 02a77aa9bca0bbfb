"""The toolkit for extending banditlib: what its own policies, rules, estimators and rollout schedulers are built
from, public so that one written outside the library checks its input, draws its randomness and saves its
state the same way (and with the same messages).

* **Validating input** at a public boundary: [`as_real_tensor`][banditlib.extend.as_real_tensor],
  [`as_index_tensor`][banditlib.extend.as_index_tensor], [`check_int`][banditlib.extend.check_int],
  [`check_float`][banditlib.extend.check_float], [`check_seed`][banditlib.extend.check_seed],
  [`all_finite`][banditlib.extend.all_finite] and [`fmt_shape`][banditlib.extend.fmt_shape] for messages
  such as ``MyRule.select(): `contexts` must be finite; got 1 NaN or infinite value(s) in shape (2, 3).``
* **Declaring constructor arguments** of a policy component once: [`Param`][banditlib.extend.Param] with the
  checks [`float_in`][banditlib.extend.float_in], [`int_at_least`][banditlib.extend.int_at_least],
  [`choice`][banditlib.extend.choice] and [`layer_widths`][banditlib.extend.layer_widths] (see
  [Writing your own policy](../concepts.md#writing-your-own-policy)).
* **Seeded randomness** that is a pure function of ``(seed, stream, row, column)``, so a batch draws what
  the same rows one at a time would: [`uniform`][banditlib.extend.uniform] and
  [`normal`][banditlib.extend.normal], with streams from [`STREAM_USER`][banditlib.extend.STREAM_USER] up
  (banditlib's own draws use the streams below it), and [`mix64`][banditlib.extend.mix64] to derive seeds.
* **Persistence**: [`Persistent`][banditlib.extend.Persistent], the one pickle-free, checked save/load path of
  policies, schedulers and buffers (one safetensors file each), and [`parse_json`][banditlib.extend.parse_json]
  for metadata read from an untrusted file.

Examples:
    >>> import torch
    >>> from banditlib import extend
    >>> x = extend.as_real_tensor([[0.5, 1.0]], "MyRule.select()", "contexts", dtype=torch.float64,
    ...                            device=torch.device("cpu"))
    >>> coins = extend.uniform(seed=3, stream=extend.STREAM_USER, rows=torch.arange(2), cols=1)
    >>> x.dtype, coins.shape
    (torch.float64, torch.Size([2, 1]))
"""

from __future__ import annotations

from banditlib._io import parse_json
from banditlib._persist import Persistent, Saved
from banditlib._random import STREAM_USER, mix64, normal, uniform
from banditlib._validation import (
    all_finite,
    as_index_tensor,
    as_real_tensor,
    check_float,
    check_int,
    check_seed,
    fmt_shape,
)
from banditlib.policies._params import Param, choice, float_in, int_at_least, layer_widths

__all__ = [
    "STREAM_USER",
    "Param",
    "Persistent",
    "Saved",
    "all_finite",
    "as_index_tensor",
    "as_real_tensor",
    "check_float",
    "check_int",
    "check_seed",
    "choice",
    "float_in",
    "fmt_shape",
    "int_at_least",
    "layer_widths",
    "mix64",
    "normal",
    "parse_json",
    "uniform",
]
