"""Flax NNX modules the Spyx adapter needs and Spyx does not ship."""

from __future__ import annotations

from flax import nnx


class MaxPool(nnx.Module):
    """Stateless max pooling over ``[B, H, W, C]`` (Flax's layout) for ``spyx.nn.Sequential``: Spyx
    ships a sum pool only, so this calls ``flax.nnx.max_pool``."""

    def __init__(self, kernel: int, stride: int):
        self.kernel, self.stride = kernel, stride

    def __call__(self, x):
        return nnx.max_pool(x, (self.kernel, self.kernel), strides=(self.stride, self.stride), padding="VALID")
