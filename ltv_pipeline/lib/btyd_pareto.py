"""Pareto/NBD with lifetimes' likelihood, evaluated on distinct pairs (pure).

lifetimes' ParetoNBDFitter spends nearly all of a fit in two Gauss hypergeometric functions
per row and likelihood evaluation (log A_0, equations 19-20 of Fader, Hardie and Lee's 2005
note), and its Nelder-Mead search evaluates the likelihood hundreds of times. The first 2F1
term depends on a row's (frequency, recency) only and the second on (frequency, T) only, and
log Gamma(r + x) on frequency only: computed once per distinct value and gathered, the
likelihood is the same number (tests/unit/test_btyd.py compares it with lifetimes') for far
fewer special-function calls. At 100k users there are 26k distinct (frequency, recency, T)
rows but 8k (frequency, recency) and 11k (frequency, T) pairs; the pairs saturate as users
grow (T and recency are whole days), the rows do not.

Everything else (time scaling, Nelder-Mead, forecasts) is lifetimes' own: this class only
replaces the objective, so a fitted object behaves and pickles (by class and parameters,
lib/btyd.py) as lifetimes' would.

One bound: the objective is infinite where alpha and beta are more than MAX_SCALE_RATIO apart.
Where buyers are regular (gaps less variable than Poisson's), the likelihood's maximum lies at
the no-dropout limit (s -> 0 with beta -> 0 or beta -> infinity), along a ridge where it barely
moves: the search ran along it, the 2F1 terms (z -> 1) took 10-40 times longer per evaluation,
beta never settled, and the end point's forecasts overflowed, so a fit took 50-100 s on 3,000
customers and fell through to a penalizer (bench/renewal_log.py, k = 3). Inside the bound the
same fits take 0.5-4 s at penalizer 0, with the log-likelihood 0.006 below the unbounded one.
beta / alpha is about (s / r) x purchases per lifetime, so with s near r the bound leaves room
for up to about 100 purchases in a lifetime; past that the fit sits at the bound. Where it bound
on the other logs here (an early cutoff of synthetic seed 23: s = 17, nearly homogeneous
dropout), the likelihood is flat along s / beta and the fit moved s by 3% at the same s / beta.
"""

from __future__ import annotations

import numpy as np
from lifetimes import ParetoNBDFitter
from scipy.special import gammaln, hyp2f1

# The distinct-value codes of the arrays of the fit in progress: the minimizer passes the same
# array objects to every evaluation, so they are computed once per fit.
_CODES: list = [None, None, None, None]

# The search stays where alpha and beta are within this ratio of each other (module docstring).
MAX_SCALE_RATIO = 1e2


def _codes(x: np.ndarray, rec: np.ndarray, T: np.ndarray) -> dict[str, np.ndarray]:
    if _CODES[0] is x and _CODES[1] is rec and _CODES[2] is T:
        return _CODES[3]
    out = {}
    for name, other in (("rec", rec), ("T", T)):
        pairs = np.stack([np.asarray(x, float), np.asarray(other, float)], axis=1)
        uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
        out[f"{name}_x"], out[f"{name}_v"], out[f"{name}_inv"] = uniq[:, 0], uniq[:, 1], inverse.ravel()
    ux, xinv = np.unique(np.asarray(x, float), return_inverse=True)
    out["x"], out["x_inv"] = ux, xinv.ravel()
    _CODES[:] = [x, rec, T, out]
    return out


def _log_minus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(exp(a) - exp(b)) (nan where b > a, -inf where equal), as scipy's logsumexp with
    b=[1, -1] gives it."""
    m = np.maximum(a, b)
    m = np.where(np.isfinite(m), m, 0.0)
    return m + np.log(np.exp(a - m) - np.exp(b - m))


def conditional_log_likelihood(params, x: np.ndarray, rec: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood, equal to ParetoNBDFitter._conditional_log_likelihood."""
    r, alpha, s, beta = params
    c = _codes(x, rec, T)
    if alpha < beta:
        lo, hi, t_of = alpha, beta, lambda ux: r + ux
    else:
        lo, hi, t_of = beta, alpha, lambda ux: np.full(len(ux), s + 1.0)
    gap = hi - lo
    rsf_rec, rsf_T = r + s + c["rec_x"], r + s + c["T_x"]
    p1 = hyp2f1(rsf_rec, t_of(c["rec_x"]), rsf_rec + 1.0, gap / (hi + c["rec_v"]))[c["rec_inv"]]
    p2 = hyp2f1(rsf_T, t_of(c["T_x"]), rsf_T + 1.0, gap / (hi + c["T_v"]))[c["T_inv"]]
    rsf = r + s + x
    q1, q2 = hi + rec, hi + T
    log_a0 = _log_minus(np.log(p1) + rsf * np.log(q2), np.log(p2) + rsf * np.log(q1)) \
        - rsf * np.log(q1 * q2)
    a1 = gammaln(r + c["x"])[c["x_inv"]] - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    a2 = np.logaddexp(-(r + x) * np.log(alpha + T) - s * np.log(beta + T),
                      np.log(s) + log_a0 - np.log(rsf))
    return a1 + a2


class ParetoNBDFast(ParetoNBDFitter):
    """lifetimes' ParetoNBDFitter whose objective evaluates the special functions once per
    distinct pair (module docstring); same value, same optimizer, same forecasts, inside the
    alpha / beta bound."""

    @staticmethod
    def _negative_log_likelihood(params, freq, rec, T, weights, penalizer_coef):
        if np.any(np.asarray(params) <= 0.0):
            return np.inf
        alpha, beta = params[1], params[3]
        if max(alpha, beta) > MAX_SCALE_RATIO * min(alpha, beta):
            return np.inf
        with np.errstate(all="ignore"):
            ll = conditional_log_likelihood(params, freq, rec, T)
        penalty = penalizer_coef * float(np.sum(np.asarray(params) ** 2))
        return -(weights * ll).sum() / weights.mean() + penalty
