"""Bit-packing, binning, the synthetic SHD writer and the tonic loader."""

import h5py
import numpy as np
import pytest

from snnbench.data import shd
from snnbench.data.staging import SpikeDataset, pack, unpack
from snnbench.errors import SnnbenchError


def test_packbits_roundtrip():
    rng = np.random.default_rng(0)
    dense = (rng.random((7, 64, 13)) < 0.2).astype(np.uint8)
    packed = pack(dense)
    assert packed.dtype == np.uint8 and packed.shape == (7, 8, 13)
    np.testing.assert_array_equal(unpack(packed), dense)
    ds = SpikeDataset(packed, np.arange(7, dtype=np.int32), 64)
    np.testing.assert_array_equal(ds.dense(slice(2, 4)), dense[2:4].astype(np.float32))
    assert ds.nbytes_dense == 8 * 4 * ds.nbytes_packed


def test_jax_unpack_matches_numpy():
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(1)
    dense = (rng.random((5, 32, 9)) < 0.3).astype(np.uint8)
    got = jnp.unpackbits(jnp.asarray(pack(dense)), axis=1)
    np.testing.assert_array_equal(np.asarray(got), dense)


def test_bin_events_places_and_clips():
    t = [np.array([0.0, 10.0, 10.0, 999_999.0, 1_000_000.0]), np.array([500_000.0])]
    x = [np.array([0, 699, 699, 350, 1]), np.array([3])]
    dense = shd.bin_events(t, x, time_steps=8, channels=7, duration_s=1.0)
    assert dense.shape == (2, 8, 7)
    assert dense[0, 0, 0] == 1 and dense[0, 0, 6] == 1  # two events on one bin clip to 1
    assert dense[0, 7, 3] == 1  # 350 * 7 // 700
    assert dense[0].sum() == 3  # the event at exactly 1 s falls outside the window
    assert dense[1, 4, 0] == 1


def test_synthetic_files_have_shd_layout(small_shd):
    path = small_shd / "SHD" / "shd_train.h5"
    with h5py.File(path) as f:
        assert f["spikes/times"].shape == (256,) and f["spikes/units"].shape == (256,)
        t, u = f["spikes/times"][0], f["spikes/units"][0]
        assert t.dtype.kind == "f" and np.all(np.diff(t) >= 0) and t.max() < 1.0
        assert u.max() < 700 and len(t) == len(u) > 100
        assert set(np.unique(f["labels"][:])) <= set(range(20))
        assert len(f["extra/keys"]) == 20 and f["extra/speaker"].shape == (256,)
    assert (small_shd / "SHD" / "shd_train.h5.zip").exists()


def test_tonic_loader_reads_generated_files(small_shd):
    tonic = pytest.importorskip("tonic")
    ds = shd.load_split(small_shd, "test", time_steps=64, channels=32, duration_s=1.0)
    assert len(ds) == 128 and ds.packed.shape == (128, 8, 32) and ds.meta["synthetic"]
    # Same as reading through tonic by hand and binning sample 5.
    events, label = tonic.datasets.SHD(save_to=str(small_shd), train=False)[5]
    want = shd.bin_events([events["t"]], [events["x"]], 64, 32, 1.0)[0]
    np.testing.assert_array_equal(ds.dense(5), want)
    assert ds.labels[5] == label
    # Second load comes from the cache and is identical.
    again = shd.load_split(small_shd, "test", time_steps=64, channels=32, duration_s=1.0)
    np.testing.assert_array_equal(again.packed, ds.packed)


def test_truncated_h5_is_a_clear_error(tmp_path, small_shd):
    root = tmp_path / "bad"
    (root / "SHD").mkdir(parents=True)
    data = (small_shd / "SHD" / "shd_train.h5").read_bytes()
    (root / "SHD" / "shd_train.h5").write_bytes(data[: len(data) // 3])
    (root / "SHD" / "shd_test.h5").write_bytes((small_shd / "SHD" / "shd_test.h5").read_bytes())
    with pytest.raises(SnnbenchError, match="truncated or corrupt"):
        shd.load_split(root, "train", time_steps=64, channels=32, duration_s=1.0)


def test_subset_is_seeded():
    packed = np.zeros((50, 1, 3), np.uint8)
    ds = SpikeDataset(packed, np.arange(50, dtype=np.int32), 8)
    a, b = ds.subset(10, seed=1), ds.subset(10, seed=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert len(a) == 10 and ds.subset(None) is ds
