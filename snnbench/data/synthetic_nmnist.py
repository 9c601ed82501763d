"""A synthetic stand-in for N-MNIST, written in N-MNIST's exact binary format.

The real data cannot be downloaded here, so this module writes ``NMNIST/{Train,Test}/<digit>/NNNNN.bin``
files of 5-byte events, the layout of Orchard et al.'s N-MNIST recordings, and they are read back
through ``tonic.datasets.NMNIST`` (tonic's own parser, ``tonic.io.read_mnist_file``). Each event::

    byte 0: x (0..33)      byte 1: y (0..33)
    byte 2: bit 7 polarity (1 = ON, 0 = OFF), bits 6..0 timestamp bits 22..16
    byte 3: timestamp bits 15..8        byte 4: timestamp bits 7..0     (microseconds)

How a sample is made, following how N-MNIST itself was recorded (a sensor moved in three saccades
in front of a still digit):

* Ten digit skeletons (polylines in the unit square). Per sample: rotation up to +-12 degrees,
  scale 0.75-1.0, shear up to +-0.2, offset up to +-1.5 px, stroke half-width 0.8-1.6 px; the
  stroke is rendered with a soft edge into a 34x34 intensity image.
* The image moves along N-MNIST's triangle of three 100 ms saccades (amplitude 2-3 px, jittered).
  Each pixel behaves as a DVS pixel: it emits an ON (OFF) event each time its intensity has risen
  (fallen) by a contrast step of 0.12-0.18 since its last event, so moving edges give ON events on
  their leading side and OFF events on their trailing side.
* Each event is kept with probability 0.85, its time is jittered within its 5 ms motion step, and
  background noise events (about 60 per sample) are added at random pixels and times.

About 2,000-4,000 events per sample over ~300 ms, a little below real N-MNIST's ~4,000.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SENSOR = 34
N_CLASSES = 10
FORMAT_VERSION = "snnbench-synthetic-nmnist-v1"
FULL_SIZES = (60000, 10000)
MARKER = "snnbench_synthetic.json"
#: at least this many bytes per sample on disk (measured: ~11 KB)
BYTES_PER_SAMPLE = 8000
SACCADE_US = 100_000
STEPS_PER_SACCADE = 20  # motion sub-steps of 5 ms

# Digit skeletons: polylines in the unit square (x right, y down), one list of strokes per digit.
_ARC = lambda cx, cy, rx, ry, a0, a1, n=10: [  # noqa: E731
    (cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(math.radians(a0), math.radians(a1), n)]
SKELETONS: list[list[list[tuple[float, float]]]] = [
    [_ARC(0.5, 0.5, 0.28, 0.42, 0, 360, 16)],  # 0
    [[(0.35, 0.22), (0.55, 0.08), (0.55, 0.92)]],  # 1
    [_ARC(0.5, 0.3, 0.27, 0.22, 190, 380, 9) + [(0.22, 0.92), (0.8, 0.92)]],  # 2
    [_ARC(0.48, 0.29, 0.27, 0.21, 200, 450, 9) + _ARC(0.48, 0.71, 0.3, 0.21, 270, 520, 9)],  # 3
    [[(0.62, 0.08), (0.18, 0.64), (0.85, 0.64)], [(0.64, 0.3), (0.64, 0.94)]],  # 4
    [[(0.78, 0.08), (0.28, 0.08), (0.25, 0.45)] + _ARC(0.5, 0.66, 0.3, 0.26, 225, 500, 10)],  # 5
    [_ARC(0.62, 0.45, 0.38, 0.4, 280, 180, 6) + _ARC(0.5, 0.7, 0.27, 0.22, 180, 540, 12)],  # 6
    [[(0.18, 0.08), (0.82, 0.08), (0.4, 0.92)], [(0.35, 0.5), (0.7, 0.5)]],  # 7
    [_ARC(0.5, 0.28, 0.22, 0.2, 90, 450, 12), _ARC(0.5, 0.71, 0.28, 0.22, -90, 270, 12)],  # 8
    [_ARC(0.48, 0.3, 0.26, 0.22, 0, 360, 12), [(0.74, 0.3), (0.66, 0.92)]],  # 9
]


def _skeleton_points(digit: int, step: float = 0.03) -> np.ndarray:
    """The digit's strokes sampled densely: ``[P, 2]`` points in the unit square."""
    pts = []
    for stroke in SKELETONS[digit]:
        s = np.asarray(stroke, np.float64)
        for a, b in zip(s[:-1], s[1:]):
            n = max(2, int(np.linalg.norm(b - a) / step) + 1)
            pts.append(a + (b - a) * np.linspace(0, 1, n)[:, None])
    return np.concatenate(pts)


_POINTS = [_skeleton_points(d) for d in range(N_CLASSES)]
_GRID = np.stack(np.meshgrid(np.arange(SENSOR), np.arange(SENSOR), indexing="xy"), -1).reshape(-1, 2) + 0.5


def render_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A randomly deformed digit as a ``float [34, 34]`` intensity image (rows = y), values in [0, 1]."""
    angle = math.radians(rng.uniform(-12, 12))
    scale = rng.uniform(0.75, 1.0) * 24.0  # the unit square becomes ~18-24 px
    shear = rng.uniform(-0.2, 0.2)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    affine = rot @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    centre = np.array([15.0, 15.0]) + rng.uniform(-1.5, 1.5, 2)  # leaves room for the saccades
    pts = (_POINTS[digit] - 0.5) @ affine.T + centre
    half_width = rng.uniform(0.8, 1.6)
    d2 = ((_GRID ** 2).sum(1)[:, None] - 2.0 * _GRID @ pts.T + (pts ** 2).sum(1)[None, :]).min(1)
    d2 = np.maximum(d2, 0.0)
    return np.clip(half_width + 0.5 - np.sqrt(d2), 0.0, 1.0).reshape(SENSOR, SENSOR)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved right by ``dx >= 0`` and down by ``dy >= 0`` pixels (bilinear, zero fill)."""
    ix, iy = int(dx), int(dy)
    fx, fy = dx - ix, dy - iy
    out = np.zeros_like(image)
    for wy, sy in ((1 - fy, iy), (fy, iy + 1)):
        for wx, sx in ((1 - fx, ix), (fx, ix + 1)):
            if wy * wx and sy < SENSOR and sx < SENSOR:
                out[sy:, sx:] += wy * wx * image[:SENSOR - sy, :SENSOR - sx]
    return out


def make_sample(digit: int, rng: np.random.Generator) -> np.ndarray:
    """Events of one sample as ``int64 [n, 4]`` columns ``x, y, t_us, p``, sorted by time."""
    image = render_digit(digit, rng)
    amp = rng.uniform(2.0, 3.0)
    corners = np.array([[0.0, 0.0], [amp / 2, amp], [amp, 0.0], [0.0, 0.0]]) + rng.uniform(0, 0.3, (4, 2))
    corners[-1] = corners[0]
    n_steps = 3 * STEPS_PER_SACCADE
    frac = np.linspace(0, 1, STEPS_PER_SACCADE + 1)[1:]
    path = [corners[0]] + [corners[s] + (corners[s + 1] - corners[s]) * f for s in range(3) for f in frac]
    step_us = SACCADE_US / STEPS_PER_SACCADE
    contrast = rng.uniform(0.12, 0.18)
    frames = np.stack([_shifted(image, *p) for p in path])  # [n_steps + 1, 34, 34]
    # A DVS pixel's reference level moves in whole contrast steps: level m_k is floor(q) while the
    # intensity q (in contrast units, relative to the start) rises past it and ceil(q) when it falls.
    q = (frames - frames[0]) / contrast
    level = np.zeros((n_steps + 1, SENSOR, SENSOR))
    for k in range(1, n_steps + 1):
        level[k] = np.where(q[k] >= level[k - 1], np.floor(q[k]), np.ceil(q[k]))
    delta = np.diff(level, axis=0).astype(np.int64)  # [n_steps, 34, 34]: + ON events, - OFF events
    ks, ys, xs = np.nonzero(delta)
    n = np.abs(delta[ks, ys, xs])
    ks, ys, xs = np.repeat(ks, n), np.repeat(ys, n), np.repeat(xs, n)
    pol = (np.repeat(delta[delta != 0], n) > 0).astype(np.int64)
    t = ((ks + rng.random(len(ks))) * step_us).astype(np.int64)
    ev = np.stack([xs, ys, t, pol], 1)
    ev = ev[rng.random(len(ev)) < 0.85]
    n_noise = rng.poisson(60)
    noise = np.stack([rng.integers(0, SENSOR, n_noise), rng.integers(0, SENSOR, n_noise),
                      rng.integers(0, 3 * SACCADE_US, n_noise), rng.integers(0, 2, n_noise)], 1)
    ev = np.concatenate([ev, noise]).astype(np.int64)
    return ev[np.argsort(ev[:, 2], kind="stable")]


def encode_events(events: np.ndarray) -> bytes:
    """``int [n, 4]`` (x, y, t_us, p) -> N-MNIST's 5-byte records."""
    x, y, t, p = (events[:, i].astype(np.int64) for i in range(4))
    if len(t) and (t.max() >= 2**23 or t.min() < 0):
        raise ValueError("N-MNIST timestamps are 23-bit microseconds")
    raw = np.empty((len(t), 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def _write_chunk(args) -> int:
    folder, split_id, seed, start, stop = args
    total = 0
    for i in range(start, stop):
        rng = np.random.default_rng([seed, split_id, i])
        digit = i % N_CLASSES
        ev = make_sample(digit, rng)
        path = Path(folder) / str(digit) / f"{i // N_CLASSES:05d}.bin"
        path.write_bytes(encode_events(ev))
        total += len(ev)
    return total


def write_synthetic_nmnist(out_dir: Path, n_train: int = FULL_SIZES[0], n_test: int = FULL_SIZES[1],
                           seed: int = 0, workers: int | None = None) -> Path:
    """Write ``out_dir/NMNIST/{Train,Test}/<digit>/*.bin`` and a marker; returns ``out_dir``.

    Classes are balanced (sample ``i`` shows digit ``i % 10``). Every sample has its own seeded
    generator, so the files do not depend on ``workers``.
    """
    from ..limits import check_disk

    out_dir = Path(out_dir)
    check_disk(out_dir, (n_train + n_test) * BYTES_PER_SAMPLE, f"the synthetic N-MNIST with {n_train + n_test} samples",
               hint="ask for fewer (--train, --test)")
    root = out_dir / "NMNIST"
    workers = workers or min(os.cpu_count() or 1, 16)
    events = 0
    for split_id, (folder, n) in enumerate((("Train", n_train), ("Test", n_test))):
        for d in range(N_CLASSES):
            (root / folder / str(d)).mkdir(parents=True, exist_ok=True)
        chunk = max(1, math.ceil(n / (workers * 4)))
        jobs = [(str(root / folder), split_id, seed, s, min(n, s + chunk)) for s in range(0, n, chunk)]
        if workers > 1 and n > 2000:
            with ProcessPoolExecutor(workers) as pool:
                events += sum(pool.map(_write_chunk, jobs))
        else:
            events += sum(map(_write_chunk, jobs))
    (root / MARKER).write_text(json.dumps({"generator": FORMAT_VERSION, "train": n_train, "test": n_test,
                                           "seed": seed, "mean_events": events / max(1, n_train + n_test)}))
    return out_dir
