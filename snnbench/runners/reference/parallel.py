"""Parallel-in-time spiking neurons, as pure JAX functions over time-major ``[T, B, N]`` arrays.

* LIF without reset, ``v_t = beta * v_{t-1} + x_t``, three ways that must agree: a sequential scan,
  an associative scan, and a causal convolution with the kernel ``beta^t`` done by FFT.
* PSN (Fang et al., NeurIPS 2023): ``H = W X + b`` with a learnable ``[T, T]`` matrix ``W`` (only its
  causal part is used), ``S = H(H)``; masked PSN keeps a band of ``k`` steps; sliding PSN shares ``k``
  taps over the last ``k`` inputs (any ``T``).
* DSN (dynamic decay, no reset): ``a_t = sigmoid(conv_k(X)_t)^(1/tau)``,
  ``H_t = a_t H_{t-1} + (1 - a_t) X_t``, output ``clip(round(H_t), 0, levels)``: ``levels = 1`` is a
  spike (threshold 0.5, surrogate gradient), ``levels > 1`` an integer activation
  (straight-through gradient inside ``[-0.5, levels + 0.5]``). Trained with an associative scan that
  keeps the decay as ``log a`` and accumulates in float32 (never dividing by a cumulative product);
  inferred step by step with the same recurrence (:func:`dsn_serial`).

``conv_k`` is a depthwise causal convolution: ``c_t = sum_j w[j] * X_{t-j} + bias`` per neuron.

* LIF *with* its reset, exactly (:func:`lif_fixed_point`): the sequence cut into chunks that run side by
  side, iterated until every chunk starts where the one before it ends; the spikes and membranes are
  bit-for-bit those of the sequential :func:`.neurons.lif` (the same float operations in the same order),
  the backward pass an associative scan.
* LIF without reset with its membrane clipped at zero each step (:func:`lif_noreset_relu`), a ReLU RNN with
  a diagonal recurrence: what snnTorch's ``LeakyParallel`` computes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .neurons import LIFOutput, lif_backward, lif_step
from .surrogates import spike


# ------------------------------------------------------------------------------ LIF, no reset
def lif_noreset_scan(x: jax.Array, beta: float) -> jax.Array:
    """``v_t = beta v_{t-1} + x_t`` with a sequential ``lax.scan``."""

    def step(v, x_t):
        v = beta * v + x_t
        return v, v

    return jax.lax.scan(step, jnp.zeros(x.shape[1:], x.dtype), x)[1]


def _affine_combine(earlier, later):
    """Compose ``v -> a1 v + b1`` then ``v -> a2 v + b2``: ``(a1 a2, a2 b1 + b2)``."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def lif_noreset_assoc(x: jax.Array, beta: float) -> jax.Array:
    """The same recurrence as an associative scan (``log2 T`` parallel steps)."""
    a = jnp.full_like(x, beta)
    return jax.lax.associative_scan(_affine_combine, (a, x), axis=0)[1]


def lif_noreset_fft(x: jax.Array, beta: float) -> jax.Array:
    """The same recurrence as a causal convolution with ``beta^t``, by FFT (zero-padded to 2T)."""
    T = x.shape[0]
    kernel = beta ** jnp.arange(T, dtype=x.dtype)
    n = 2 * T
    spec = jnp.fft.rfft(x, n=n, axis=0) * jnp.fft.rfft(kernel, n=n)[(slice(None),) + (None,) * (x.ndim - 1)]
    return jnp.fft.irfft(spec, n=n, axis=0)[:T].astype(x.dtype)


def lif_noreset_relu(x: jax.Array, beta: float) -> jax.Array:
    """``v_t = max(0, beta v_{t-1} + x_t)``: the no-reset membrane clipped at zero each step (``relu: true``;
    snnTorch's ``LeakyParallel`` is an ``nn.RNN(nonlinearity="relu")`` with the diagonal recurrence
    ``beta``). Sequential ``lax.scan``; ``jax.nn.relu``'s derivative at 0 is 0, as PyTorch's."""

    def step(v, x_t):
        v = jax.nn.relu(beta * v + x_t)
        return v, v

    return jax.lax.scan(step, jnp.zeros(x.shape[1:], x.dtype), x)[1]


# ------------------------------------------------------------------------- LIF with reset, exact
#: steps per chunk of :func:`lif_fixed_point`. Measured (2-core CPU, B 8, 64 neurons, beta 0.9, input rate
#: 0.5): a chunk's trajectory from a wrong start merges bit-for-bit with the true one after some 1000-1800
#: steps, so T = 16384 takes 7 passes at 256 (depth 1792 steps instead of 16384), 13 at 128, 25 at 64.
FIXED_POINT_CHUNK = 256


def lif_fixed_point_scan(current: jax.Array, beta, threshold: float, reset: str, chunk: int = FIXED_POINT_CHUNK,
                         unroll: int = 1):
    """The LIF's forward recurrence, parallel over chunks of the sequence and exact.

    The ``T`` steps are cut into ``C`` chunks of ``chunk`` steps. One *pass* runs every chunk from a guessed
    start state at once (a ``lax.scan`` of ``chunk`` steps over ``[C, B, N]`` states, with
    :func:`.neurons.lif_step`, the sequential form's own step); the next guess of chunk ``c``'s start is
    where chunk ``c - 1`` ended. Passes repeat until no start changes (a fixed point: every chunk starts
    where the one before it ends, chunk 0 at the true initial state 0), at most ``C`` passes: chunk 0's
    start is exact from the first pass, so after pass ``p`` chunks ``0..p-1`` ran from exact starts, and
    a run from an exact start with the same step *is* the sequential run, bit for bit. It is Parareal
    (Lions, Maday and Turinici, 2001) with the previous pass as its coarse propagator, and a fixed-point
    iteration on the chunks' start states in the sense of DEER (Lim et al., ICLR 2024), which converges in
    at most as many iterations as there are chunks. In practice a chunk run from a wrong start merges with
    the true trajectory within ~1000-2000 steps at beta 0.9 (the difference decays by beta per step until it
    rounds away; a spike decided differently on the way restarts it), so ``T = 16384`` takes about 7 passes
    of 256 steps. Returns ``(spikes, membrane, passes)``.
    """
    T = current.shape[0]
    L = max(1, min(int(chunk), T))
    C = -(-T // L)
    rest = current.shape[1:]
    x = current
    if C * L != T:  # steps after T cannot change the ones before it
        x = jnp.concatenate([x, jnp.zeros((C * L - T,) + rest, x.dtype)])
    x = jnp.swapaxes(x.reshape((C, L) + rest), 0, 1)  # [L, C, B, N]: one scan over L, all chunks at once
    step = lif_step(beta, threshold, reset)
    zeros = jnp.zeros((C,) + rest, current.dtype)

    def one_pass(carry):
        k, starts, _, _ = carry
        ends, vs = jax.lax.scan(step, starts, x, unroll=unroll)
        following = jnp.concatenate([zeros[:1], ends[:-1]])  # chunk c starts where chunk c - 1 ended
        return k + 1, following, vs, jnp.any(following != starts)

    # vs always comes from the pass that ran from `starts`; the loop ends when those starts are a fixed point
    # (or after C passes, when every start is exact anyway)
    passes, _, vs, _ = jax.lax.while_loop(lambda c: c[3] & (c[0] < C), one_pass,
                                          (jnp.int32(0), zeros, jnp.zeros_like(x), jnp.bool_(True)))
    membrane = jnp.swapaxes(vs, 0, 1).reshape((C * L,) + rest)[:T]
    return (membrane > threshold).astype(current.dtype), membrane, passes


def _reverse_linear_scan(a: jax.Array, c: jax.Array, dsdv: jax.Array | None = None) -> jax.Array:
    """``G_t = a_t + c_t G_{t+1}`` (``G_T = 0``) by an associative scan from the end (``c`` broadcast to
    ``a``'s shape: it may come as the decay alone; ``dsdv`` unused, as in :func:`.neurons._reverse_scan`)."""
    return jax.lax.associative_scan(_affine_combine, (jnp.broadcast_to(c, a.shape).astype(a.dtype), a),
                                    reverse=True, axis=0)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6, 7, 8))
def _lif_fixed_point_core(current, beta, threshold, reset, detach, surrogate, slope, chunk, unroll):
    spikes, membrane, _ = lif_fixed_point_scan(current, beta, threshold, reset, chunk, unroll)
    return spikes, membrane


def _lif_fixed_point_fwd(current, beta, threshold, reset, detach, surrogate, slope, chunk, unroll):
    spikes, membrane, _ = lif_fixed_point_scan(current, beta, threshold, reset, chunk, unroll)
    return (spikes, membrane), (spikes, membrane, beta)


def _lif_fixed_point_bwd(threshold, reset, detach, surrogate, slope, chunk, unroll, residuals, cotangents):
    spikes, v, beta = residuals
    return lif_backward(threshold, reset, detach, surrogate, slope, spikes, v, beta, *cotangents,
                        solve=_reverse_linear_scan)


_lif_fixed_point_core.defvjp(_lif_fixed_point_fwd, _lif_fixed_point_bwd)


def lif_fixed_point(current: jax.Array, beta, threshold: float = 1.0, reset: str = "subtract",
                    detach_reset: bool = True, surrogate: str = "arctan", slope: float = 2.0, unroll: int = 1,
                    chunk: int = FIXED_POINT_CHUNK) -> LIFOutput:
    """:func:`.neurons.lif` (same arguments, same result bit for bit) with the forward of
    :func:`lif_fixed_point_scan` and the same hand-written backward pass, its linear reverse recurrence
    solved by an associative scan instead of a sequential one (``method: fixed_point`` in a suite)."""
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)
    spikes, membrane = _lif_fixed_point_core(current, beta, float(threshold), reset, bool(detach_reset), surrogate,
                                             float(slope), int(chunk), int(unroll))
    return LIFOutput(spikes, membrane)


# ---------------------------------------------------------------------------------------- PSN
def psn(x: jax.Array, weight: jax.Array, bias: jax.Array, surrogate: str = "superspike", slope: float = 1.0):
    """PSN: ``H_t = sum_{s <= t} W[t, s] X_s + b_t``, ``S = spike(H)``. ``weight [T, T]``, ``bias [T]``.

    Returns ``(spikes, H)``, both ``[T, B, N]``. O(T^2) time and memory.
    """
    T = x.shape[0]
    causal = jnp.tril(jnp.ones((T, T), x.dtype))
    h = jnp.einsum("ts,s...->t...", weight * causal, x) + bias.reshape((T,) + (1,) * (x.ndim - 1))
    return spike(h, surrogate, slope), h


def masked_psn(x, weight, bias, k: int, surrogate: str = "superspike", slope: float = 1.0):
    """Masked PSN: :func:`psn` with ``W[t, s]`` kept only for ``0 <= t - s < k``."""
    T = x.shape[0]
    lag = jnp.arange(T)[:, None] - jnp.arange(T)[None, :]
    return psn(x, weight * ((lag >= 0) & (lag < k)).astype(x.dtype), bias, surrogate, slope)


def causal_taps(x: jax.Array, taps: jax.Array) -> jax.Array:
    """``sum_j taps[j] * x_{t-j}`` along time (zeros before the start). ``taps [k]`` or ``[k, N]``."""
    k = taps.shape[0]
    padded = jnp.concatenate([jnp.zeros((k - 1,) + x.shape[1:], x.dtype), x], axis=0)
    T = x.shape[0]
    return sum(taps[j] * padded[k - 1 - j:k - 1 - j + T] for j in range(k))


def sliding_psn(x, taps, bias, surrogate: str = "superspike", slope: float = 1.0):
    """Sliding PSN: ``H_t = sum_{j<k} taps[j] X_{t-j} + bias``; works for any ``T``."""
    h = causal_taps(x, taps) + bias
    return spike(h, surrogate, slope), h


# ---------------------------------------------------------------------------------------- DSN
def dsn_decay_log(x: jax.Array, conv_w: jax.Array, conv_b: jax.Array, tau: float) -> jax.Array:
    """``log a_t = (1/tau) * log sigmoid(conv_k(x)_t)``, computed without forming ``a`` first."""
    return jax.nn.log_sigmoid(causal_taps(x, conv_w) + conv_b) / tau


def dsn_output(h: jax.Array, levels: int, surrogate: str = "superspike", slope: float = 1.0) -> jax.Array:
    """``clip(round(h), 0, levels)``: a spike for ``levels = 1`` (surrogate at ``h = 0.5``), else an
    integer activation with a straight-through gradient inside ``[-0.5, levels + 0.5]``."""
    if levels == 1:
        return spike(h - 0.5, surrogate, slope)
    r = jnp.round(h)
    inside = ((r >= 0) & (r <= levels)).astype(h.dtype)
    # value clip(round(h)); derivative 1 where round(h) is a level (edges included), else 0
    return jnp.clip(r, 0, levels) + (h - jax.lax.stop_gradient(h)) * jax.lax.stop_gradient(inside)


def dsn_parallel(x, conv_w, conv_b, tau: float = 0.25, levels: int = 1, surrogate: str = "superspike",
                 slope: float = 1.0):
    """DSN over a whole sequence with an associative scan in log space. Returns ``(out, H)``.

    The scan composes ``(log a, b)`` pairs: ``(l1, b1) then (l2, b2) -> (l1 + l2, exp(l2) b1 + b2)``;
    ``exp`` only ever sees sums of ``log a <= 0``, so nothing overflows, and no cumulative product is
    ever divided by. Accumulation is float32 whatever the input dtype.
    """
    x32 = x.astype(jnp.float32)
    log_a = dsn_decay_log(x32, conv_w.astype(jnp.float32), conv_b.astype(jnp.float32), tau)
    b = -jnp.expm1(log_a) * x32  # (1 - a_t) X_t

    def combine(earlier, later):
        l1, b1 = earlier
        l2, b2 = later
        return l1 + l2, jnp.exp(l2) * b1 + b2

    h = jax.lax.associative_scan(combine, (log_a, b), axis=0)[1]
    return dsn_output(h, levels, surrogate, slope).astype(x.dtype), h


def dsn_serial(x, conv_w, conv_b, tau: float = 0.25, levels: int = 1, surrogate: str = "superspike",
               slope: float = 1.0):
    """DSN step by step (inference): the same recurrence, one time step at a time. Returns ``(out, H)``."""
    x32 = x.astype(jnp.float32)
    a = jnp.exp(dsn_decay_log(x32, conv_w.astype(jnp.float32), conv_b.astype(jnp.float32), tau))

    def step(h, inputs):
        a_t, x_t = inputs
        h = a_t * h + (1.0 - a_t) * x_t
        return h, h

    h = jax.lax.scan(step, jnp.zeros(x.shape[1:], jnp.float32), (a, x32))[1]
    return dsn_output(h, levels, surrogate, slope).astype(x.dtype), h
