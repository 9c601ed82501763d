"""The linear layer's three GEMMs (forward, input gradient, weight gradient) over all ``T * B`` rows,
with the weight gradient laid out for XLA:CPU.

XLA:CPU (JAX 0.10) runs a row-major GEMM ``x @ w`` through YNNPACK. The weight gradient ``x^T g``
contracts over the rows of both operands (a transposed left operand), and that form goes to Eigen's
GEMM instead: at ``[1600, 2048]^T [1600, 2048]`` (the layer suite's n 2048) 102-110 ms against 72 ms for
the forward, where PyTorch (oneDNN) takes 74 ms for either. Copying ``x^T`` first (an explicit transpose
that XLA may not fold back into the dot) gives YNNPACK the fast form. The copy moves ``M * K``
elements, so its cost against the GEMM's ``2 M K N`` flops shrinks with ``N``: alone, it won at every
shape measured with ``N = 2048`` (0.72-0.80x the direct form, M 1600-16384, K 128-512) and was mixed
below (0.66-1.35x); inside the training step it lost at the layer suite's n 512 (12.9 against 12.0 ms)
and at SHD's ``N = 128`` (39 against 37 ms), and won at n 2048 (179 against 196 ms).
``tests/benchmarks/test_xla_gemm.py`` times both forms against PyTorch.
"""

from __future__ import annotations

import functools

import jax

#: the narrowest gradient ``g [M, N]`` (its ``N``) for which ``x^T`` is copied before the weight gradient's GEMM
TRANSPOSE_COPY_MIN_N = 2048


def weight_grad(x: jax.Array, g: jax.Array, transpose_copy: bool) -> jax.Array:
    """``x [M, K], g [M, N] -> x^T g [K, N]``. ``transpose_copy``: the backend runs a GEMM with a
    transposed left operand slowly (XLA:CPU), so ``x^T`` is copied first where the GEMM is wide enough
    to pay for the copy (:data:`TRANSPOSE_COPY_MIN_N`). The same products either way; only the summation
    order may differ."""
    if transpose_copy and g.shape[1] >= TRANSPOSE_COPY_MIN_N:
        return jax.lax.optimization_barrier(x.T) @ g
    return x.T @ g


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def dense(x: jax.Array, w: jax.Array, transpose_copy: bool = False) -> jax.Array:
    """``x [M, K] @ w [K, N] -> [M, N]``; its gradient takes the weight's product by :func:`weight_grad`."""
    return x @ w


def _dense_fwd(x, w, transpose_copy):
    return x @ w, (x, w)


def _dense_bwd(transpose_copy, residuals, g):
    x, w = residuals
    return g @ w.T, weight_grad(x, g, transpose_copy).astype(w.dtype)


dense.defvjp(_dense_fwd, _dense_bwd)
