"""Data: byte-for-byte materialisation, the on-disk CSV format, and the seeded split."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from nopeek_repro import data, paths
from nopeek_repro.data import DataError


def test_materialise_is_byte_identical_and_idempotent(tmp_path):
    dst = data.materialise("mnist-sample", tmp_path)
    assert dst.read_bytes() == data.sample_source().read_bytes()
    mtime = dst.stat().st_mtime_ns
    assert data.materialise("mnist-sample", tmp_path) == dst and dst.stat().st_mtime_ns == mtime


def test_altered_file_is_not_overwritten_silently(tmp_path):
    dst = data.materialise("mnist-sample", tmp_path)
    dst.write_bytes(b"changed")
    with pytest.raises(DataError, match=r"differs from the embedded MNIST sample; run `python3 kit.py data`"):
        data.materialise("mnist-sample", tmp_path)
    assert data.materialise("mnist-sample", tmp_path, force=True).read_bytes() == data.sample_source().read_bytes()
    dst.write_bytes(b"changed")
    assert data.materialise("mnist-sample", tmp_path, force=True).read_bytes() == data.sample_source().read_bytes()
    assert data.check("mnist-sample", tmp_path) == dst


def test_repository_data_matches_data_dvc(root):
    """data/ as materialised is exactly what data.dvc records (size check; dvc status is in the slow tests)."""
    import yaml

    rec = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]
    assert rec["path"] == "data" and rec["nfiles"] == 1
    assert rec["size"] == data.sample_source().stat().st_size


def _write_csv(path, rows):
    with gzip.open(path, "wt") as fh:
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")


def test_loader_reads_the_real_format(tmp_path):
    rows = [[(i * 7 + j) % 256 for j in range(784)] + [i % 10] for i in range(12)]
    f = tmp_path / paths.DATA_FILE
    _write_csv(f, rows)
    x, y = data.load_mnist_csv(f)
    assert x.shape == (12, 28, 28) and x.dtype == np.uint8
    assert y.tolist() == [i % 10 for i in range(12)]
    assert x[3, 0, 5] == (3 * 7 + 5) % 256


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "data file missing; run `python3 kit.py data`"),
        ([[0] * 10], "expected 785 columns"),
        ([[300] * 784 + [1]], "pixel values must be integers in 0..255"),
        ([[0] * 784 + [11]], "labels must be the digits 0..9"),
        ("garbage", "not a readable gzip CSV"),
    ],
)
def test_loader_errors_name_the_file(tmp_path, content, message):
    f = tmp_path / paths.DATA_FILE
    if content == "garbage":
        f.write_bytes(b"this is not gzip")
    elif content is not None:
        _write_csv(f, content)
    with pytest.raises(DataError, match=message) as info:
        data.load_mnist_csv(f)
    assert str(f) in str(info.value)


def test_split_is_disjoint_seeded_and_capped():
    tr, te = data.split_indices(5000, 0.2, seed=3)
    assert len(te) == 1000 and len(tr) == 4000 and not set(tr) & set(te)
    tr2, te2 = data.split_indices(5000, 0.2, seed=3)
    assert (tr == tr2).all() and (te == te2).all()
    assert not (data.split_indices(5000, 0.2, seed=4)[1] == te).all()
    tr3, te3 = data.split_indices(5000, 0.2, seed=3, n_train=100, n_test=50)
    assert len(tr3) == 100 and len(te3) == 50 and set(tr3) <= set(tr) and set(te3) <= set(te)


def test_prepare_save_load_roundtrip(tmp_path, tiny_split):
    assert tiny_split.x_train.min() >= 0 and tiny_split.x_train.max() <= 1
    data.save_split(tiny_split, tmp_path / "split.npz")
    back = data.load_split(tmp_path / "split.npz")
    assert (back.x_test == tiny_split.x_test).all() and (back.y_train == tiny_split.y_train).all()
    assert (back.test_idx == tiny_split.test_idx).all()
    assert back.classes is None and back.val_idx is None and back.train_targets == {} and back.n_classes == 10
    assert sorted(np.load(tmp_path / "split.npz").files) == sorted(
        ["x_train", "y_train", "x_test", "y_test", "train_idx", "test_idx"]
    )  # the sample's file is as before
    with pytest.raises(DataError, match="prepared split missing"):
        data.load_split(tmp_path / "none.npz")


def test_cli_reports_altered_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOPEEK_ROOT", str(tmp_path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / paths.DATA_FILE).write_bytes(b"x")
    assert data.main(["check"]) == 2
    assert (
        "differs from the embedded MNIST sample (data set 'mnist-sample'); run `python3 kit.py data`"
        in capsys.readouterr().err
    )
    (tmp_path / "data" / paths.DATA_FILE).unlink()
    assert data.main(["check"]) == 2
    assert "data file missing; run `python3 kit.py data`" in capsys.readouterr().err
    assert data.main(["materialise"]) == 0 and data.main(["check", "--dataset", "mnist-sample"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{tmp_path / 'data' / paths.DATA_FILE}: ok"


def test_images_smaller_than_the_ssim_window_are_refused_before_training(tmp_path):
    """8x8 digits as an npz: refused when the data are prepared (one message naming the fix), not after
    every model has trained; upscaled to the window's 11 pixels they pass."""
    from nopeek_repro.config import DataParams
    from nopeek_repro.metrics import SSIM_MIN_SIDE

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "digits.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 4)
    params = DataParams(dataset="npz", source="digits", test_fraction=0.25)
    with pytest.raises(DataError) as info:
        data.prepare_from_params(params, tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'digits.npz'}: images of 8x8 pixels are smaller than the 11x11 window of the attacks' SSIM; "
        "allowed: at least 11 pixels a side (data.image_size: 11 or more upscales)"
    )
    split = data.prepare_from_params(params.model_copy(update={"image_size": SSIM_MIN_SIDE}), tmp_path)
    assert split.image_shape == (1, SSIM_MIN_SIDE, SSIM_MIN_SIDE)
