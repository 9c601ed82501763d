"""Dense spike tensors and their bit-packed form.

A dataset split is kept as ``packed: uint8 [N, T/8, C]``, ``np.packbits`` of the binary
``[N, T, C]`` tensor along time: 8x fewer bytes to hold in device memory. Runners unpack batches
on the device (``jnp.unpackbits`` inside the compiled step for the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SpikeDataset:
    """One split, bit-packed along time.

    Attributes:
      packed: ``uint8 [N, T // 8, C]``, big-endian bit order (``np.packbits`` default).
      labels: ``int32 [N]``.
      time_steps: T.
      meta: where the data came from (source path, synthetic or real, binning).
    """

    packed: np.ndarray
    labels: np.ndarray
    time_steps: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.packed.dtype != np.uint8 or self.packed.ndim != 3:
            raise ValueError(f"packed must be uint8 [N, T/8, C], got {self.packed.dtype} {self.packed.shape}")
        if self.packed.shape[1] * 8 != self.time_steps:
            raise ValueError(f"packed has {self.packed.shape[1]} bytes per channel, T={self.time_steps}")
        if self.labels.shape != (self.packed.shape[0],):
            raise ValueError("labels must be [N]")

    def __len__(self) -> int:
        return int(self.packed.shape[0])

    @property
    def channels(self) -> int:
        return int(self.packed.shape[2])

    @property
    def num_classes(self) -> int:
        return int(self.meta.get("num_classes", int(self.labels.max()) + 1))

    def dense(self, index: int | np.ndarray | slice | None = None) -> np.ndarray:
        """Unpacked float32 ``[n, T, C]`` for ``index`` (all samples if None; ``[T, C]`` for an int)."""
        if isinstance(index, (int, np.integer)):
            return self.dense(slice(index, index + 1))[0]
        packed = self.packed if index is None else self.packed[index]
        return unpack(packed).astype(np.float32)

    def subset(self, n: int | None, seed: int = 0) -> "SpikeDataset":
        """A seeded random subset of ``n`` samples (the whole split if n is None or too large)."""
        if n is None or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return SpikeDataset(self.packed[idx], self.labels[idx], self.time_steps, {**self.meta, "subset": n})

    @property
    def nbytes_packed(self) -> int:
        return int(self.packed.nbytes)

    @property
    def nbytes_dense(self) -> int:
        """Bytes the same split takes as dense float32 (what a naive loader would stage)."""
        return int(self.packed.size * 8 * 4)


def epoch_batches(seed: int, epoch: int, n_samples: int, batch: int) -> np.ndarray:
    """Sample indices ``int32 [n_samples // batch, batch]`` of epoch ``epoch``'s training batches:
    one permutation drawn from ``(seed, epoch)`` with NumPy's PCG64, the same in every runner,
    whatever its framework (a last partial batch is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_samples)
    n_batches = n_samples // batch
    return order[: n_batches * batch].reshape(n_batches, batch).astype(np.int32)


def pack(dense: np.ndarray) -> np.ndarray:
    """``[N, T, C]`` binary (any dtype; non-zero is a spike) -> ``uint8 [N, T/8, C]``."""
    if dense.ndim != 3 or dense.shape[1] % 8:
        raise ValueError(f"expected [N, T, C] with T a multiple of 8, got {dense.shape}")
    # np.packbits takes any non-zero integer as a 1; only other dtypes need the comparison (a copy)
    binary = dense if dense.dtype == bool or np.issubdtype(dense.dtype, np.integer) else dense != 0
    return np.packbits(binary, axis=1)


def unpack(packed: np.ndarray) -> np.ndarray:
    """``uint8 [N, T/8, C]`` -> ``uint8 [N, T, C]`` of 0/1."""
    return np.unpackbits(packed, axis=1)
