"""Convolution and max pooling for the reference, channels-last, written as patches and matrix products.

Why not ``lax.conv_general_dilated``: on XLA:CPU (JAX 0.10) its convolution and, worse, its weight
gradient run at a fraction of PyTorch's oneDNN speed at the N-MNIST shapes, and get slower the more
frames one call holds (``docs/reference-performance.md`` has the profile). Here the ``T * B`` frames
are cut into chunks small enough that a chunk's patches stay in cache, and each chunk is one GEMM:

* forward: ``y = patches(x) @ W``, ``patches(x) [n, H', W', k*k*C]``, ``W [k*k*C, O]``;
* input gradient: ``dP = dy @ W^T``, scattered back onto the ``k * k`` shifted windows (col2im);
* weight gradient: ``dW = sum over chunks of patches(x)^T @ dy`` (a scan, one accumulator).

A narrow input (a window of fewer than :data:`NARROW_WINDOW` values, N-MNIST's first layer: 2 channels,
``5 x 5``) makes a poor GEMM (``[rows, 50] x [50, 12]``) and patches built from 8-byte pieces. There each
row of patches covers ``b`` neighbouring output columns (:func:`column_block`), and the weights become a
banded matrix (:func:`banded`, zeros outside the kernel): ``b + k - 1`` input columns per row, ``b * O``
outputs per row. It costs ``(b + k - 1) / k`` times the multiply-adds and writes ``(b + k - 1) / (b * k)``
times the patches; at ``b = 2`` the N-MNIST training step took 199 ms against 224 ms
(docs/reference-performance.md).
The zeros join the sums as exact ``+ 0`` terms, so finite inputs give the direct convolution to rounding.

The function is PyTorch's ``Conv2d`` (cross-correlation, stride 1, no padding; the caller pads) on
channels-last frames. Only the summation order differs from a direct convolution (float32 rounding).

Shapes: ``x [N, H, W, C]`` (frames, height, width, channels), ``w [k, k, C, O]`` (HWIO).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

#: A chunk's patches matrix is kept under this many bytes (a 2-core CPU's L2/L3 share).
PATCH_CHUNK_BYTES = 3 * 2**20
#: The input gradient's chunks: its patch gradient kept under this many bytes. Larger than the patches'
#: budget because its col2im is ``k * k`` separate adds per chunk, whose count, not their bytes, sets
#: its time: at N-MNIST's second layer 12 MB took 28.7 ms per 1024 frames against 35.2 ms at 3 MB, and
#: the training step 162-164 against 165-167 ms (m1), 383 against 390 ms (m2); 24 MB and more were slower.
COL2IM_CHUNK_BYTES = 12 * 2**20
#: Windows of fewer values than this (``k * k * C``) get column-blocked patches (:func:`column_block`).
NARROW_WINDOW = 64


def column_block(k: int, channels: int, out_width: int) -> int:
    """Output columns per row of patches: 2 for a narrow window whose output width is even, else 1.
    (3 and 5 measured no faster than 2 at N-MNIST's first layer; a wider input, conv2, gained nothing.)"""
    return 2 if k * k * channels < NARROW_WINDOW and out_width % 2 == 0 else 1


def patches(x: jax.Array, k: int, b: int = 1) -> jax.Array:
    """``x [n, H, W, C]`` -> ``[n, H-k+1, (W-k+1) / b, k * (b+k-1) * C]``: per output row and block of ``b``
    output columns, the ``k`` input rows' ``b + k - 1`` columns, (row, column, channel) order. At ``b = 1``
    this is the window at each output pixel, built from ``k * k`` shifted views; at ``b > 1`` from one
    contiguous ``(b + k - 1) * C`` piece per block and row."""
    n, H, W, C = x.shape
    Ho, Wo = H - k + 1, W - k + 1
    if b == 1:
        return jnp.concatenate([x[:, i:i + Ho, j:j + Wo, :] for i in range(k) for j in range(k)], axis=-1)
    span = b + k - 1
    pieces = [x[:, i:i + Ho, c * b:c * b + span, :].reshape(n, Ho, 1, span * C)
              for c in range(Wo // b) for i in range(k)]
    return jnp.concatenate(pieces, axis=-1).reshape(n, Ho, Wo // b, k * span * C)


def _band(k: int, b: int, dtype) -> jax.Array:
    """``[b + k - 1, b, k]``: 1 where input column ``u`` meets output column ``v`` at kernel column ``j = u - v``."""
    u, v, j = np.ogrid[:b + k - 1, :b, :k]
    return jnp.asarray(u - v == j, dtype)


def banded(w: jax.Array, b: int) -> jax.Array:
    """``w [k, k, C, O]`` -> ``[k * (b+k-1) * C, b * O]``, the weights that map a row of :func:`patches`
    to its ``b`` outputs: ``w[i, u - v, c, o]`` at ``(i, u, c), (v, o)``, 0 where ``u - v`` is off the kernel."""
    k, _, C, O = w.shape
    if b == 1:
        return w.reshape(k * k * C, O)
    return jnp.einsum("ijco,uvj->iucvo", w, _band(k, b, w.dtype)).reshape(k * (b + k - 1) * C, b * O)


def unbanded(dwb: jax.Array, k: int, b: int, C: int, O: int) -> jax.Array:
    """The gradient of :func:`banded`: ``[k * (b+k-1) * C, b * O]`` -> ``[k, k, C, O]``, each kernel tap the
    sum of its ``b`` places in the band."""
    if b == 1:
        return dwb.reshape(k, k, C, O)
    return jnp.einsum("iucvo,uvj->ijco", dwb.reshape(k, b + k - 1, C, b, O), _band(k, b, dwb.dtype))


def chunk_count(frames: int, frame_bytes: int, budget: int | None = None) -> int:
    """The fewest chunks ``s`` (a divisor of ``frames``) whose ``frames / s`` frames take at most ``budget``
    bytes of patches (default :data:`PATCH_CHUNK_BYTES`); one frame per chunk when even one is over."""
    budget = PATCH_CHUNK_BYTES if budget is None else budget
    for s in range(1, frames + 1):
        if frames % s == 0 and (frames // s) * frame_bytes <= budget:
            return s
    return frames


def _over_chunks(fn, x: jax.Array, s: int) -> jax.Array:
    """``fn`` applied to ``s`` equal chunks of ``x``'s leading axis, results re-joined."""
    if s == 1:
        return fn(x)
    y = jax.lax.map(fn, x.reshape(s, -1, *x.shape[1:]))
    return y.reshape(-1, *y.shape[2:])


def _chunks_for(x: jax.Array, k: int, b: int) -> int:
    _, H, W, C = x.shape
    return chunk_count(x.shape[0], (H - k + 1) * (W - k + 1) // b * k * (b + k - 1) * C * x.dtype.itemsize)


def _forward(x: jax.Array, w: jax.Array, b: int) -> jax.Array:
    k, _, C, O = w.shape
    wb = banded(w, b)

    def chunk(xc):
        p = patches(xc, k, b)
        n, Ho, blocks, _ = p.shape
        return (p.reshape(-1, wb.shape[0]) @ wb).reshape(n, Ho, blocks * b, O)

    return _over_chunks(chunk, x, _chunks_for(x, k, b))


def _input_grad(x_shape, w: jax.Array, g: jax.Array) -> jax.Array:
    k, _, C, O = w.shape
    _, H, W, _ = x_shape
    _, Ho, Wo, _ = g.shape
    wt = w.reshape(k * k, C, O)

    def chunk(gc):
        # The gradient of each chunk's patches, window offset major: dp[p] is one contiguous [n, Ho, Wo, C].
        dp = jnp.einsum("nhwo,pco->pnhwc", gc, wt)
        # col2im as k * k in-place adds of shifted windows. Summing k * k padded copies instead fuses into
        # one loop whose every element tests k * k pad bounds: 1.4x slower at conv2 of N-MNIST
        # (docs/reference-performance.md). Same summation order, so the same float32 result.
        dx = jnp.zeros((gc.shape[0], H, W, C), g.dtype)
        for i in range(k):
            for j in range(k):
                dx = dx.at[:, i:i + Ho, j:j + Wo, :].add(dp[i * k + j])
        return dx

    frame_bytes = Ho * Wo * k * k * C * g.dtype.itemsize
    return _over_chunks(chunk, g, chunk_count(g.shape[0], frame_bytes, COL2IM_CHUNK_BYTES))


def _weight_grad(x: jax.Array, w: jax.Array, g: jax.Array, b: int) -> jax.Array:
    k, _, C, O = w.shape
    s = _chunks_for(x, k, b)
    rows = k * (b + k - 1) * C

    def step(acc, xg):
        xc, gc = xg
        return acc + patches(xc, k, b).reshape(-1, rows).T @ gc.reshape(-1, b * O), None

    zero = jnp.zeros((rows, b * O), w.dtype)
    if s == 1:
        dwb = step(zero, (x, g))[0]
    else:
        dwb = jax.lax.scan(step, zero, (x.reshape(s, -1, *x.shape[1:]), g.reshape(s, -1, *g.shape[1:])))[0]
    return unbanded(dwb, k, b, C, O)


def conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """Valid, stride-1 cross-correlation: ``x [N, H, W, C]``, ``w [k, k, C, O]`` -> ``[N, H-k+1, W-k+1, O]``."""
    k, _, C, _ = w.shape
    return conv2d_blocked(x, w, column_block(k, C, x.shape[2] - k + 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_blocked(x: jax.Array, w: jax.Array, b: int) -> jax.Array:
    """:func:`conv2d` with ``b`` output columns per row of patches (``b`` divides the output width)."""
    return _forward(x, w, b)


def _conv2d_fwd(x, w, b):
    return _forward(x, w, b), (x, w)


def _conv2d_bwd(b, res, g):
    x, w = res
    return _input_grad(x.shape, w, g).astype(x.dtype), _weight_grad(x, w, g, b).astype(w.dtype)


conv2d_blocked.defvjp(_conv2d_fwd, _conv2d_bwd)


def max_pool(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Max over ``kernel x kernel`` windows of ``x [N, H, W, C]``; the gradient goes to the *first* maximal
    element of each window in row-major order, as PyTorch's ``max_pool2d`` routes it.

    ``jnp.max`` would split the gradient among ties, and ties are the rule when pooling binary spikes.
    Non-overlapping windows (``kernel == stride``, the common case) run :func:`_pool_tiled`, whose
    gradient is one element-wise select; overlapping ones the strided taps of :func:`_pool_taps`.
    """
    return _pool_tiled(x, kernel) if kernel == stride else _pool_taps(x, kernel, stride)


def _pool_taps(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Each window position is a strided slice; the gradient flows through the first maximal tap only."""
    _, H, W, _ = x.shape
    Ho, Wo = (H - kernel) // stride + 1, (W - kernel) // stride + 1
    taps = [x[:, i:i + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride, :]
            for i in range(kernel) for j in range(kernel)]
    top = jax.lax.stop_gradient(functools.reduce(jnp.maximum, taps))
    taken = jax.lax.stop_gradient(taps[0]) == top
    out = taps[0] * taken.astype(x.dtype)
    for tap in taps[1:]:
        first = (jax.lax.stop_gradient(tap) == top) & ~taken
        taken = taken | first
        out = out + tap * first.astype(x.dtype)
    return out


def _first_max(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Tiled ``k x k`` windows of ``x [N, H, W, C]`` (a ragged last row / column dropped, as PyTorch does):
    ``(top [N, H//k, W//k, C], first [N, H//k*k, W//k*k, C] bool)``, ``first`` marking each window's first
    maximal element in row-major order, in ``x``'s own layout."""
    n, H, W, C = x.shape
    Ho, Wo = H // k, W // k
    tiles = x[:, :Ho * k, :Wo * k, :].reshape(n, Ho, k, Wo, k, C)
    top = tiles.max(axis=(2, 4), keepdims=True)
    # Each window's first maximal position (row-major index i * k + j), then a broadcast compare against
    # it: element-wise work only (a prefix-or over the taps, joined by concatenates, ran 3x slower).
    pos = (jnp.arange(k)[:, None] * k + jnp.arange(k)[None, :]).reshape(1, 1, k, 1, k, 1)
    first_pos = jnp.where(tiles == top, pos, k * k).min(axis=(2, 4), keepdims=True)
    first = (pos == first_pos).reshape(n, Ho * k, Wo * k, C)
    return top.reshape(n, Ho, Wo, C), first


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _pool_tiled(x: jax.Array, k: int) -> jax.Array:
    return _first_max(x, k)[0]


def _pool_tiled_fwd(x, k):
    top, first = _first_max(x, k)
    return top, (first, x.shape)


def _pool_tiled_bwd(k, res, g):
    """``g [N, Ho, Wo, C]`` -> ``[N, H, W, C]``: each window's cotangent at its first maximum, 0 elsewhere.
    Written as a select on the upsampled cotangent: a ``jax.grad`` of the taps form becomes ``k * k``
    interior-padded scatters fused into one loop, which XLA:CPU runs 3-4x slower."""
    first, (n, H, W, C) = res
    Ho, Wo = H // k, W // k
    up = jnp.broadcast_to(g[:, :, None, :, None, :], (n, Ho, k, Wo, k, C)).reshape(n, Ho * k, Wo * k, C)
    dx = jnp.where(first, up, jnp.zeros((), g.dtype))
    if (Ho * k, Wo * k) != (H, W):
        dx = jnp.pad(dx, ((0, 0), (0, H - Ho * k), (0, W - Wo * k), (0, 0)))
    return (dx,)


_pool_tiled.defvjp(_pool_tiled_fwd, _pool_tiled_bwd)
