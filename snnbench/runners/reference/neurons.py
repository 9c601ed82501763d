"""Neuron dynamics as pure JAX functions over whole sequences.

All functions take the input current time-major, ``current: [T, B, N]`` (float), and return arrays
of the same shape. The weight products are done for all time steps at once outside these
functions (one large GEMM per layer), so the scans below are element-wise and cheap.

The equations are the canonical ones of :mod:`snnbench.spec`: the reset at step ``t`` is driven by
the spike of step ``t - 1`` (snnTorch's order), and ``H(0) = 0``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .surrogates import spike, surrogate_grad


#: 16-bit floats: XLA:CPU computes their element-wise ops one converted value at a time, so the
#: scans below run them in float32 and round to the low dtype where a value is stored (:func:`scan_low`).
LOW_DTYPES = (jnp.bfloat16, jnp.float16)


def scan_low(step, init: jax.Array, xs, reverse: bool = False, unroll: int = 1):
    """``lax.scan(step, init, xs)`` for an element-wise ``step`` whose carry and output are single arrays.

    In a 16-bit dtype each step is computed in float32 from the stored (16-bit) values and its carry and
    output are rounded back to the 16-bit dtype before they are kept: the values a 16-bit membrane
    holds, at float32 arithmetic's speed on a CPU. XLA's own lowering of 16-bit element-wise code
    computes in float32 too (excess precision), a converted value at a time. float32 input: a plain scan.
    """
    dtype = init.dtype
    if dtype not in LOW_DTYPES:
        return jax.lax.scan(step, init, xs, reverse=reverse, unroll=unroll)

    def wide(carry, x):
        carry, y = step(carry, x)
        return carry.astype(dtype).astype(jnp.float32), y.astype(dtype).astype(jnp.float32)

    # The inputs widened before the loop, so that the loop's gradient (JAX's transpose) is float32 too.
    xs = jax.tree.map(lambda a: a.astype(jnp.float32), xs)
    carry, ys = jax.lax.scan(wide, init.astype(jnp.float32), xs, reverse=reverse, unroll=unroll)
    return carry.astype(dtype), ys.astype(dtype)


def scan_in_place(step, init: jax.Array, buf: jax.Array, others: tuple = (), reverse: bool = False, unroll: int = 1):
    """``lax.scan(step, init, (buf, *others))`` for an element-wise ``step(carry, x_t, *others_t) -> (carry,
    y_t)`` whose output has ``buf``'s shape and dtype: each ``y_t`` is written over ``buf[t]`` once that
    step has read it, so the loop needs no zero-filled output buffer (XLA:CPU fills and copies one per
    ``lax.scan``: 6 ms of the layer suite's n 2048 step). For loops nothing differentiates (a
    ``custom_vjp``'s two halves); 16-bit values are handled as :func:`scan_low` handles them."""
    dtype, wide = buf.dtype, buf.dtype in LOW_DTYPES
    if dtype == jnp.float16:
        # float16 keeps the stacked scan: in place, the float16 SHD step went from 42.4 to 177.6 ms with a
        # copy of each loop's buffer (not diagnosed further; bfloat16 in place went from 55.8 to 49.7 ms)
        return scan_low(lambda c, xs: step(c, *xs), init, (buf, *others), reverse=reverse, unroll=unroll)
    if wide:  # widened before the loop, rounded in it, narrowed after it: no 16-bit code inside the loop
        buf, others = buf.astype(jnp.float32), tuple(o.astype(jnp.float32) for o in others)
    last = buf.shape[0] - 1

    def body(i, state):
        carry, buf = state
        t = last - i if reverse else i
        carry, y = step(carry, buf[t], *(o[t] for o in others))
        if wide:
            carry, y = carry.astype(dtype).astype(jnp.float32), y.astype(dtype).astype(jnp.float32)
        return carry, jax.lax.dynamic_update_index_in_dim(buf, y.astype(buf.dtype), t, 0)

    carry, ys = jax.lax.fori_loop(0, last + 1, body, (init.astype(buf.dtype), buf), unroll=unroll)
    return carry.astype(init.dtype), ys.astype(dtype)


class LIFOutput(NamedTuple):
    spikes: jax.Array  # [T, B, N], 0/1
    membrane: jax.Array  # [T, B, N], v_t after integration (before the next step's reset)


def lif_autodiff(
    current: jax.Array,
    beta: jax.Array | float,
    threshold: float = 1.0,
    reset: str = "subtract",
    detach_reset: bool = True,
    surrogate: str = "arctan",
    slope: float = 2.0,
    unroll: int = 1,
) -> LIFOutput:
    """Leaky integrate-and-fire over a sequence.

    Args:
      current: input current ``[T, B, N]``.
      beta: membrane decay per step, a scalar or ``[N]``; clipped to ``[0, 1]``.
      threshold: firing threshold (same units as the membrane).
      reset: ``"subtract"`` (v -= threshold), ``"subtract_decayed"`` (v -= beta * threshold, the
        threshold subtracted before the decay), ``"zero"`` (v = 0) or ``"none"``.
      detach_reset: stop the gradient through the reset term.
      surrogate, slope: surrogate derivative of the step (see :mod:`.surrogates`).
      unroll: ``lax.scan`` unroll factor (a speed knob; the result does not change).

    Returns:
      spikes and membrane, both ``[T, B, N]``.

    This version lets JAX differentiate the scan; :func:`lif` computes the same function with a
    hand-written backward pass and is what the runner uses.
    """
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)

    def step(carry, i_t):
        v, s = carry
        r = jax.lax.stop_gradient(s) if detach_reset else s
        v = membrane_update(v, i_t, r, beta, threshold, reset)
        s = spike(v - threshold, surrogate, slope)
        return (v, s), (s, v)

    zeros = jnp.zeros(current.shape[1:], current.dtype)
    _, (spikes, membrane) = jax.lax.scan(step, (zeros, zeros), current, unroll=unroll)
    return LIFOutput(spikes, membrane)


def membrane_update(v, i_t, r, beta, threshold: float, reset: str):
    """``v_{t-1}, I_t, r_t -> v_t``: the canonical membrane rule of ``reset`` (``r_t`` the reset spike,
    ``s_{t-1}``); every array ``[B, N]``, ``beta`` a scalar or ``[N]``."""
    if reset == "subtract":
        return beta * v + i_t - threshold * r
    if reset == "subtract_decayed":
        return beta * (v - threshold * r) + i_t
    if reset == "zero":
        return beta * (1.0 - r) * v + i_t
    return beta * v + i_t


def lif_recurrent(
    current: jax.Array,
    recurrent: jax.Array,
    beta: jax.Array | float,
    threshold: float = 1.0,
    reset: str = "subtract",
    detach_reset: bool = True,
    surrogate: str = "arctan",
    slope: float = 2.0,
    alpha: float | None = None,
    unroll: int = 1,
) -> LIFOutput:
    """Recurrent LIF over a sequence: the layer's own previous spikes feed back through ``V``.

    Args:
      current: feed-forward input current ``W x_t + b``, ``[T, B, N]`` (computed outside, one GEMM).
      recurrent: ``V [N, N]``, ``V[j, k]`` the weight from neuron ``k`` to neuron ``j`` (no bias).
      beta, threshold, reset, detach_reset, surrogate, slope, unroll: as :func:`lif_autodiff`.
      alpha: ``None`` for a ``lif`` / ``if``; a ``cuba_lif``'s synaptic decay, the recurrent term then
        entering the synaptic current ``syn_t = alpha * syn_{t-1} + I_t + s_{t-1} @ V.T``.

    Returns:
      spikes and membrane, both ``[T, B, N]``.

    Each step adds ``s_{t-1} @ V.T`` to ``I_t`` (``s_{-1} = 0``), so the product cannot leave the scan.
    The gradient flows through ``s_{t-1}`` in the recurrent term by the surrogate, and through the reset
    term unless ``detach_reset``. Without a synapse (``alpha`` None) the backward pass is written by hand
    (:func:`_lif_recurrent_core`): one ``G_{t+1} @ V`` product per reverse step and ``V``'s gradient as one
    GEMM over all ``T * B`` rows afterwards, where JAX's transposed scan does two products per step.
    """
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)
    if alpha is None:
        spikes, membrane = _lif_recurrent_core(current, recurrent, beta, float(threshold), reset, bool(detach_reset),
                                               surrogate, float(slope), int(unroll))
        return LIFOutput(spikes, membrane)
    v_t = recurrent.T.astype(current.dtype)  # [N_from, N_to]: s @ V.T

    def step(carry, i_t):
        v, syn, s = carry
        i_t = i_t + s @ v_t
        if alpha is not None:
            syn = alpha * syn + i_t
            i_t = syn
        r = jax.lax.stop_gradient(s) if detach_reset else s
        v = membrane_update(v, i_t, r, beta, threshold, reset)
        s = spike(v - threshold, surrogate, slope)
        return (v, syn, s), (s, v)

    zeros = jnp.zeros(current.shape[1:], current.dtype)
    _, (spikes, membrane) = jax.lax.scan(step, (zeros, zeros, zeros), current, unroll=unroll)
    return LIFOutput(spikes, membrane)


def _lif_recurrent_scan(current, recurrent, beta, threshold, reset, unroll):
    """The recurrent layer's forward recurrence (``alpha`` None): spikes and membranes ``[T, B, N]``; the
    loop carries the membrane alone, the previous spike recomputed from it as in :func:`_lif_scan`."""
    v_t = recurrent.T.astype(current.dtype)  # [N_from, N_to]: s @ V.T
    step = lif_step(beta, threshold, reset)

    def rec_step(v, i_t):
        return step(v, i_t + (v > threshold).astype(v.dtype) @ v_t)

    _, membrane = scan_in_place(rec_step, jnp.zeros(current.shape[1:], current.dtype), current, unroll=unroll)
    return (membrane > threshold).astype(current.dtype), membrane


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7, 8))
def _lif_recurrent_core(current, recurrent, beta, threshold, reset, detach, surrogate, slope, unroll):
    return _lif_recurrent_scan(current, recurrent, beta, threshold, reset, unroll)


def _lif_recurrent_fwd(current, recurrent, beta, threshold, reset, detach, surrogate, slope, unroll):
    spikes, membrane = _lif_recurrent_scan(current, recurrent, beta, threshold, reset, unroll)
    return (spikes, membrane), (spikes, membrane, beta, recurrent)


def _lif_recurrent_bwd(threshold, reset, detach, surrogate, slope, unroll, residuals, cotangents):
    """The feed-forward LIF's backward (:func:`lif_backward`) with the recurrent term in its reverse
    recurrence, ``G_t = a_t + c_t G_{t+1} + sigma'(v_t - threshold) * (G_{t+1} @ V)``, then
    ``dL/dV = sum_t G_t^T s_{t-1}`` as one GEMM."""
    spikes, v, beta, recurrent = residuals
    V = recurrent.astype(v.dtype)
    G, g_beta = lif_backward(threshold, reset, detach, surrogate, slope, spikes, v, beta, *cotangents,
                             solve=functools.partial(_reverse_scan_recurrent, V=V, unroll=unroll))
    n = v.shape[-1]
    s_prev = delay_one_step(spikes).reshape(-1, n)
    g_rec = jnp.matmul(G.reshape(-1, n).T, s_prev, preferred_element_type=jnp.float32)  # [N_to, N_from]
    return G, g_rec.astype(recurrent.dtype), g_beta


_lif_recurrent_core.defvjp(_lif_recurrent_fwd, _lif_recurrent_bwd)


def _reverse_scan_recurrent(a, c, dsdv, V, unroll=1):
    """``G_t = a_t + c_t G_{t+1} + dsdv_t * (G_{t+1} @ V)``, ``G_T = 0``, by a sequential reverse scan
    (``c`` as in :func:`_reverse_scan`)."""
    full = jnp.shape(c) == a.shape

    def step(g_next, a_t, dsdv_t, *c_t):
        g = a_t + (c_t[0] if full else c) * g_next + dsdv_t * (g_next @ V)
        return g, g

    others = (dsdv, c) if full else (dsdv,)
    return scan_in_place(step, jnp.zeros_like(a[0]), a, others, reverse=True, unroll=unroll)[1]


def lif(
    current: jax.Array,
    beta: jax.Array | float,
    threshold: float = 1.0,
    reset: str = "subtract",
    detach_reset: bool = True,
    surrogate: str = "arctan",
    slope: float = 2.0,
    unroll: int = 1,
    bias: jax.Array | None = None,
) -> LIFOutput:
    """Leaky integrate-and-fire over a sequence: same arguments and result as :func:`lif_autodiff`, with
    ``bias [N]`` (the preceding linear layer's) added to each step's current inside the time loop, as
    ``current + bias`` would add it before, without a pass of its own over ``[T, B, N]``.

    The backward pass is written by hand. With ``G_t = dL/dv_t`` (total), the chain rule gives the
    *linear* reverse recurrence ``G_t = a_t + c_t * G_{t+1}`` with
    ``a_t = dL/dv_t(direct) + dL/ds_t(direct) * sigma'(v_t - threshold)`` and
    ``c_t = beta * m_{t+1} + [reset attached] * sigma'(v_t - threshold) * q_t``, where ``m_{t+1}`` is
    ``1 - s_t`` for the zero reset (else 1) and ``q_t`` is ``-threshold`` (subtract),
    ``-beta * threshold`` (subtract_decayed), ``-beta * v_t`` (zero) or 0 (none). Being linear, it needs no spike bookkeeping: one element-wise reverse
    ``lax.scan`` (a sequential loop carrying one array), and the only residuals are ``v`` and ``s``.
    """
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)
    spikes, membrane = _lif_core(current, beta, bias, float(threshold), reset, bool(detach_reset), surrogate,
                                 float(slope), int(unroll))
    return LIFOutput(spikes, membrane)


def lif_step(beta, threshold, reset):
    """One step of the forward recurrence, ``v_{t-1}, I_t -> v_t`` (the previous spike recomputed from
    ``v_{t-1}``). :func:`_lif_scan` and :func:`.parallel.lif_fixed_point` both use it, so both do the
    same floating-point operations in the same order."""

    def step(v, i_t):
        s = (v > threshold).astype(v.dtype)
        if reset == "subtract":
            v = beta * v + i_t - threshold * s
        elif reset == "subtract_decayed":
            v = beta * (v - threshold * s) + i_t
        elif reset == "zero":
            v = beta * (1.0 - s) * v + i_t
        else:
            v = beta * v + i_t
        return v, v

    return step


def _lif_scan(current, beta, bias, threshold, reset, unroll):
    """Forward recurrence only (no gradient bookkeeping): spikes and membranes ``[T, B, N]``.

    The loop carries and emits the membrane alone; the previous spike is recomputed from it
    (``s_{t-1} = v_{t-1} > threshold``) and the spike train is one element-wise pass afterwards.
    Fewer values per iteration make the sequential loop cheaper.
    """
    step = lif_step(beta, threshold, reset)
    if bias is not None:  # rounded to a 16-bit dtype as the separate add would store it
        low = current.dtype if current.dtype in LOW_DTYPES else None
        step = (lambda plain: lambda v, i_t: plain(v, i_t + bias if low is None
                                                   else (i_t + bias).astype(low).astype(jnp.float32)))(step)
    _, membrane = scan_in_place(step, jnp.zeros(current.shape[1:], current.dtype), current, unroll=unroll)
    return (membrane > threshold).astype(current.dtype), membrane


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7, 8))
def _lif_core(current, beta, bias, threshold, reset, detach, surrogate, slope, unroll):
    return _lif_scan(current, beta, bias, threshold, reset, unroll)


def _lif_core_fwd(current, beta, bias, threshold, reset, detach, surrogate, slope, unroll):
    spikes, membrane = _lif_scan(current, beta, bias, threshold, reset, unroll)
    return (spikes, membrane), (spikes, membrane, beta, bias)


def _lif_core_bwd(threshold, reset, detach, surrogate, slope, unroll, residuals, cotangents):
    spikes, v, beta, bias = residuals
    G, g_beta = lif_backward(threshold, reset, detach, surrogate, slope, spikes, v, beta, *cotangents,
                             solve=functools.partial(_reverse_scan, unroll=unroll))
    if bias is None:
        return G, g_beta, None
    rows = G.reshape(-1, G.shape[-1])  # the bias's gradient: G summed over T and B, as a product (row_sum)
    return G, g_beta, row_sum(rows).astype(bias.dtype)


def row_sum(x: jax.Array) -> jax.Array:
    """``x [M, ...]`` summed over its leading axis as a product with ones. XLA:CPU (JAX 0.10) reduces over
    the leading axis slowly once the kept axes pass 16384 elements (``[100, 32768]``: 9.1 ms as
    ``sum(axis=0)``, 0.29 ms as this product). Exact for 0/1 values; otherwise only the order of the sum
    may differ. A 16-bit ``x`` is summed in float32 (and the sum returned in float32)."""
    if x.dtype in LOW_DTYPES:
        x = x.astype(jnp.float32)
    return jnp.tensordot(jnp.ones(x.shape[:1], x.dtype), x, axes=1)


def _reverse_scan(a, c, dsdv=None, unroll=1):
    """``G_t = a_t + c_t G_{t+1}``, ``G_T = 0``, by a sequential reverse ``lax.scan``. ``c`` is ``[T, B, N]``
    like ``a``, or constant over time (a scalar or ``[N]``, the decay): then it is not a loop input.
    ``dsdv`` (the surrogate slope) is for solvers whose recurrence couples the neurons; unused here."""
    full = jnp.shape(c) == a.shape

    def step(g_next, a_t, *c_t):
        g = a_t + (c_t[0] if full else c) * g_next
        return g, g

    return scan_in_place(step, jnp.zeros_like(a[0]), a, (c,) if full else (), reverse=True, unroll=unroll)[1]


def lif_backward(threshold, reset, detach, surrogate, slope, spikes, v, beta, g_s, g_v, solve=_reverse_scan):
    """The LIF's hand-written backward pass (see :func:`lif`): ``(dL/dcurrent, dL/dbeta)`` from the
    forward's spikes and membranes and the cotangents of both. ``solve(a, c)`` runs the linear reverse
    recurrence ``G_t = a_t + c_t G_{t+1}`` (sequentially here; :mod:`.parallel` passes an associative scan, the
    recurrent layer one with its ``V`` term, which is why ``solve`` also gets the surrogate slope ``dsdv``);
    ``c`` reaches it as ``beta`` alone (a scalar or ``[N]``) when it does not depend on the step: a
    detached reset that is not the zero reset."""
    dsdv = surrogate_grad(surrogate, v - threshold, slope)
    a = g_v + g_s * dsdv
    zeros_t = jnp.zeros_like(v[:1])
    # m_{t+1}: how v_{t+1} keeps v_t (the zero reset drops it after a spike; otherwise 1, not materialised).
    m_next = 1.0 - spikes if reset == "zero" else None
    c = beta if m_next is None else beta * m_next
    if not detach:
        if reset == "subtract":
            c = c - threshold * dsdv
        elif reset == "subtract_decayed":
            c = c - beta * threshold * dsdv
        elif reset == "zero":
            c = c - beta * v * dsdv
    # G_t = a_t + c_t G_{t+1}, G_T = 0, run from the end.
    G = solve(a, c, dsdv)
    # dL/dbeta = sum_t G_t * m_t * v_{t-1} (minus threshold * s_{t-1} where the reset decays too),
    # reduced to beta's shape.
    v_prev = jnp.concatenate([zeros_t, v[:-1]], axis=0)
    if m_next is not None:
        v_prev = v_prev * jnp.concatenate([jnp.ones_like(v[:1]), m_next[:-1]], axis=0)
    if reset == "subtract_decayed":
        v_prev = v_prev - threshold * jnp.concatenate([zeros_t, spikes[:-1]], axis=0)
    g_beta = (G * v_prev).reshape(-1, *jnp.shape(beta)) if jnp.ndim(beta) else (G * v_prev)
    g_beta = g_beta.sum(axis=0) if jnp.ndim(beta) else g_beta.sum()
    return G, g_beta.astype(beta.dtype)


_lif_core.defvjp(_lif_core_fwd, _lif_core_bwd)


def delay_one_step(spikes: jax.Array) -> jax.Array:
    """``spikes [T, ...]`` one step later, zeros at ``t = 0``: a layer with ``spike_from: previous``
    emits ``H(v_{t-1} - threshold)``, which is the canonical spike of step ``t - 1``."""
    return jnp.concatenate([jnp.zeros_like(spikes[:1]), spikes[:-1]], axis=0)


def integrate_and_fire(current: jax.Array, **kwargs) -> LIFOutput:
    """IF neuron: :func:`lif` with ``beta = 1`` (no leak)."""
    return lif(current, 1.0, **kwargs)


def leaky_integrator(current: jax.Array, beta: jax.Array | float, unroll: int = 1) -> jax.Array:
    """Non-spiking leaky integrator (readout): ``v_t = beta * v_{t-1} + I_t``. Returns ``v [T, B, N]``."""
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)

    def step(v, i_t):
        v = beta * v + i_t
        return v, v

    _, v = scan_low(step, jnp.zeros(current.shape[1:], current.dtype), current, unroll=unroll)
    return v


def synaptic_current(current: jax.Array, alpha: float, unroll: int = 1) -> jax.Array:
    """First-order synapse ``syn_t = alpha * syn_{t-1} + I_t``: the drive of a current-based LIF."""
    return leaky_integrator(current, alpha, unroll=unroll)


def cuba_lif(current: jax.Array, alpha: float, beta: jax.Array | float, **kwargs) -> LIFOutput:
    """Current-based LIF: a synaptic low-pass filter feeding :func:`lif`."""
    return lif(synaptic_current(current, alpha, kwargs.get("unroll", 1)), beta, **kwargs)
