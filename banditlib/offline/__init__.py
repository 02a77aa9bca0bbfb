"""Off-policy evaluation: the value of a target policy estimated from logged bandit data.

A [`BanditLog`][banditlib.offline.BanditLog] holds ``N`` rounds played by a *logging* policy: the context
``x_i``, the arm ``a_i`` it played, the reward ``r_i`` and its propensity ``p_i = mu(a_i | x_i)``. The
estimators answer "what mean reward would the *target* policy ``pi`` have earned on these rounds?" without
running it. With ``w_i = pi(a_i | x_i) / p_i`` (optionally clipped, ``min(w_i, clip)``) and a reward model
``q(x, a)``:

* [`replay`][banditlib.offline.replay]: the mean reward of the rounds where ``pi`` picks ``a_i`` (the target
  learns from those rounds only); unbiased when the logging policy was uniformly random.
* [`ips`][banditlib.offline.ips]: ``V = 1/N sum_i w_i r_i``; unbiased when ``p_i > 0`` wherever ``pi`` plays.
* [`snips`][banditlib.offline.snips]: ``V = sum_i w_i r_i / sum_i w_i``; biased by ``O(1/N)``, always within
  the range of the rewards, often lower variance.
* [`doubly_robust`][banditlib.offline.doubly_robust]:
  ``V = 1/N sum_i [sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i))]``; unbiased if either the
  propensities or the reward model are right, and lower variance than IPS when ``q`` is good.

Every estimate carries a standard error and a normal-approximation confidence interval
``value -+ z stderr`` with ``z = scipy.stats.norm.ppf((1 + confidence) / 2)``: a central-limit approximation,
sound for logs of hundreds of rounds or more and weights that are not dominated by a few rounds (look at
``ess``). [`log_policy`][banditlib.offline.log_policy] records a log from a banditlib environment with exact
propensities and the true expected rewards, so that [`true_value`][banditlib.offline.true_value] gives the
number every estimate should recover. See docs/offline.md for what each estimator assumes.

References:
    Li, Chu, Langford, Wang. Unbiased offline evaluation of contextual-bandit-based news article
    recommendation algorithms. WSDM 2011. Dudik, Langford, Li. Doubly robust policy evaluation and learning.
    ICML 2011.
"""

from __future__ import annotations

from banditlib.offline._common import BanditLog, Estimate, ReplayEstimate
from banditlib.offline._estimators import doubly_robust, ips, replay, snips, true_value
from banditlib.offline._logging import log_policy
from banditlib.offline._probabilities import action_probabilities
from banditlib.offline._reward import RidgeRewardModel

__all__ = [
    "BanditLog",
    "Estimate",
    "ReplayEstimate",
    "RidgeRewardModel",
    "action_probabilities",
    "doubly_robust",
    "ips",
    "log_policy",
    "replay",
    "snips",
    "true_value",
]
