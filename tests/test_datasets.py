"""Every data set of ``data.dataset`` on small files written here in the real on-disk formats
(IDX, CIFAR python pickles, UTKFace JPEG names, PNG class folders, npz), offline."""

from __future__ import annotations

import gzip
import http.server
import pickle
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nopeek_repro import data, datasets, paths
from nopeek_repro.data import DataError

# ---------------------------------------------------------------------------------------------
# writers of the real formats


def write_idx(path: Path, arr: np.ndarray, magic: int | None = None, gz: bool = True) -> Path:
    arr = np.asarray(arr, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 | arr.ndim
    blob = struct.pack(">i", magic) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def make_mnist(data_dir: Path, folder: str = "MNIST", n_train: int = 20, n_test: int = 8, gz: bool = True) -> Path:
    raw = data_dir / folder / "raw"
    suffix = ".gz" if gz else ""
    x_tr = np.arange(n_train * 28 * 28).reshape(n_train, 28, 28) % 256
    x_te = (np.arange(n_test * 28 * 28).reshape(n_test, 28, 28) * 3) % 256
    write_idx(raw / f"train-images-idx3-ubyte{suffix}", x_tr, gz=gz)
    write_idx(raw / f"train-labels-idx1-ubyte{suffix}", np.arange(n_train) % 10, gz=gz)
    write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", x_te, gz=gz)
    write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", (np.arange(n_test) + 3) % 10, gz=gz)
    return raw


def write_cifar_batch(path: Path, n: int, offset: int = 0, str_keys: bool = False, **drop) -> None:
    """A batch as the official files load with encoding="bytes" (b'data', b'labels'), or, with
    ``str_keys``, as they load with encoding="latin1" (what torchvision's own reader expects)."""
    rows = (np.arange(n * 3072).reshape(n, 3072) + offset) % 256
    batch = {
        b"batch_label": b"batch",
        b"labels": [(i + offset) % 10 for i in range(n)],
        b"data": rows.astype(np.uint8),
        b"filenames": [b"f%d.png" % i for i in range(n)],
    }
    for key in drop:
        batch.pop(key.encode())
    if str_keys:
        batch = {k.decode(): v for k, v in batch.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch))


def make_cifar(data_dir: Path, per_batch: int = 3, n_test: int = 5, str_keys: bool = False) -> Path:
    folder = data_dir / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", per_batch, offset=i, str_keys=str_keys)
    write_cifar_batch(folder / "test_batch", n_test, offset=100, str_keys=str_keys)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta = {"label_names": names, "num_cases_per_batch": per_batch}
    if not str_keys:
        meta = {k.encode(): [n.encode() for n in v] if k == "label_names" else v for k, v in meta.items()}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def write_image(path: Path, size=(8, 8), mode: str = "L", seed: int = 0, fmt: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=None).convert(mode).save(path, format=fmt)
    return path


UTK_NAMES = [
    # (age, gender, race, chip form)
    *((20 + i % 40, i % 2, i % 5, i % 3 == 0) for i in range(30)),
    (5, 0, 1, True),
    (10, 1, 2, False),
    (65, 0, 0, True),
    (80, 1, 4, False),  # filtered out
    (11, 1, 3, True),
    (64, 0, 4, False),  # kept (the bounds are exclusive)
]


def make_utkface(data_dir: Path, names=UTK_NAMES, size=(24, 24)) -> Path:
    folder = data_dir / "UTKFace"
    for i, (age, gender, race, chip) in enumerate(names):
        name = f"{age}_{gender}_{race}_2017011617{i:07d}.jpg" + (".chip.jpg" if chip else "")
        write_image(folder / name, size, "RGB", seed=i, fmt="JPEG")
    return folder


def make_folder(root: Path, counts: dict[str, int], size=(8, 8), mode: str = "L") -> Path:
    for c, n in counts.items():
        for i in range(n):
            write_image(root / c / f"img{i:02d}.png", size, mode, seed=i)
    return root


def kw(**over):
    base = dict(test_fraction=0.25, split_seed=0, n_train=None, n_test=None)
    return {**base, **over}


# ---------------------------------------------------------------------------------------------
# the data sets


def test_datasets_and_unknown_name(tmp_path):
    assert data.DATASETS == ("mnist-sample", "digits", "mnist", "fashion-mnist", "cifar10", "utkface", "folder", "npz")
    msg = (
        "data.dataset = 'svhn': unknown data set; allowed: mnist-sample, digits, mnist, fashion-mnist, cifar10, "
        "utkface, folder, npz"
    )
    for call in (
        lambda: data.prepare_dataset("svhn", tmp_path, **kw()),
        lambda: data.materialise("svhn", tmp_path),
        lambda: data.check("svhn", tmp_path),
    ):
        with pytest.raises(DataError) as info:
            call()
        assert str(info.value) == msg


def test_mnist_sample_is_exactly_prepare(root):
    raw = data.materialise("mnist-sample", root / "data")
    a = data.prepare(raw, 0.2, 3, 100, 40)
    b = data.prepare_dataset("mnist-sample", root / "data", test_fraction=0.2, split_seed=3, n_train=100, n_test=40)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.y_test, b.y_test)
    assert (a.train_idx == b.train_idx).all() and (a.test_idx == b.test_idx).all()
    assert b.classes is None and b.val_idx is None and b.n_classes == 10
    small = data.prepare_dataset("mnist-sample", root / "data", **kw(n_train=20, n_test=20, image_size=14))
    assert (
        small.x_train.shape == (20, 1, 14, 14)
        and (small.train_idx == data.split_indices(5000, 0.25, 0, 20, 20)[0]).all()
    )


def test_mnist_sample_refuses_altered_file(tmp_path):
    (tmp_path / paths.DATA_FILE).write_bytes(b"x")
    with pytest.raises(DataError, match="differs from the embedded MNIST sample"):
        data.prepare_dataset("mnist-sample", tmp_path, **kw())


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_data_sets_use_the_official_split(tmp_path, dataset, folder, gz):
    make_mnist(tmp_path, folder, n_train=20, n_test=8, gz=gz)
    s = data.prepare_dataset(dataset, tmp_path, **kw(test_fraction=0.9))  # test_fraction does not apply
    assert s.x_train.shape == (20, 1, 28, 28) and s.x_test.shape == (8, 1, 28, 28) and s.x_train.dtype == torch.float32
    assert s.y_train.tolist() == [i % 10 for i in range(20)] and s.y_test.tolist() == [(i + 3) % 10 for i in range(8)]
    assert s.x_train[1, 0, 0, 5] == pytest.approx(((784 + 5) % 256) / 255)
    assert s.x_test[2, 0, 1, 0] == pytest.approx(((2 * 784 + 28) * 3 % 256) / 255)
    assert s.train_idx.tolist() == list(range(20)) and s.test_idx.tolist() == list(range(20, 28))
    assert s.n_classes == 10 and len(s.classes) == 10
    c = data.prepare_dataset(dataset, tmp_path, **kw(n_train=5, n_test=3, split_seed=7))
    c2 = data.prepare_dataset(dataset, tmp_path, **kw(n_train=5, n_test=3, split_seed=7))
    assert len(c.train_idx) == 5 and len(c.test_idx) == 3 and (c.train_idx == c2.train_idx).all()
    assert set(c.test_idx) <= set(range(20, 28)) and torch.equal(c.y_train, s.y_train[c.train_idx])
    assert data.check(dataset, tmp_path) == tmp_path / folder / "raw"
    assert data.materialise(dataset, tmp_path) == tmp_path / folder / "raw"  # present: no download


def test_cifar10_batches(tmp_path):
    make_cifar(tmp_path, per_batch=3, n_test=5)
    s = data.prepare_dataset("cifar10", tmp_path, **kw(image_size=None))
    assert s.x_train.shape == (15, 3, 32, 32) and s.x_test.shape == (5, 3, 32, 32)
    assert s.y_train.tolist() == [(i + b) % 10 for b in range(1, 6) for i in range(3)]
    assert s.y_test.tolist() == [(i + 100) % 10 for i in range(5)]
    # a row is 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    row = (np.arange(3072) + 3072 + 1) % 256  # data_batch_1, image 1
    assert s.x_train[1, 1, 0, 2] == pytest.approx(row[1024 + 2] / 255)
    assert s.x_train[1, 2, 1, 0] == pytest.approx(row[2048 + 32] / 255)
    assert s.classes[0] == "airplane" and s.n_classes == 10 and s.test_idx.tolist() == list(range(15, 20))
    assert data.prepare_dataset("cifar10", tmp_path, **kw(image_size=16)).x_test.shape == (5, 3, 16, 16)
    assert data.check("cifar10", tmp_path) == tmp_path / "cifar-10-batches-py"


def test_utkface_names_filter_split_and_targets(tmp_path):
    folder = make_utkface(tmp_path)
    kept = [(a, g, r) for a, g, r, _ in UTK_NAMES if 10 < a < 65]
    assert len(kept) == 32
    s = data.prepare_dataset("utkface", tmp_path, **kw(test_fraction=0.3))
    n_te = round(32 * 0.3)
    n_val = round((32 - n_te) * 0.3)
    assert len(s.test_idx) == n_te and len(s.val_idx) == n_val and len(s.train_idx) == 32 - n_te - n_val
    assert (
        not set(s.train_idx) & set(s.val_idx)
        and not set(s.train_idx) & set(s.test_idx)
        and not set(s.val_idx) & set(s.test_idx)
    )
    assert s.x_train.shape == (len(s.train_idx), 3, 24, 24) and 0 <= s.x_train.min() and s.x_train.max() <= 1
    files = datasets.list_utkface(tmp_path).files
    truth = [datasets.parse_utkface_name(f) for f in files]
    assert sorted(truth) == sorted(kept) and all(f.parent == folder for f in files)
    assert s.train_targets["age"].tolist() == [truth[i][0] for i in s.train_idx]
    assert s.y_train.tolist() == [truth[i][1] for i in s.train_idx] == s.train_targets["gender"].tolist()
    assert s.test_targets["race"].tolist() == [truth[i][2] for i in s.test_idx]
    assert s.classes == ("male", "female") and s.n_classes == 2
    r = data.prepare_dataset("utkface", tmp_path, **kw(test_fraction=0.3, task="race", image_size=12, n_train=4))
    assert r.classes[4] == "Others" and r.n_classes == 5 and r.x_train.shape == (4, 3, 12, 12)
    assert r.y_test.tolist() == [truth[i][2] for i in r.test_idx] and set(r.train_idx) <= set(s.train_idx)
    # the saved split keeps the extras; old files without them still load
    data.save_split(s, tmp_path / "split.npz")
    back = data.load_split(tmp_path / "split.npz")
    assert back.classes == s.classes and (back.val_idx == s.val_idx).all()
    assert torch.equal(back.train_targets["age"], s.train_targets["age"]) and torch.equal(back.x_test, s.x_test)
    assert data.check("utkface", tmp_path) == folder


def test_utkface_split_matches_the_authors_sizes():
    tr, val, te = data.utkface_split(18529, 0.3, seed=0)
    assert (len(tr), len(val), len(te)) == (9079, 3891, 5559)
    assert (te == data.split_indices(18529, 0.3, 0)[1]).all()


def test_folder_of_class_images(tmp_path):
    make_folder(tmp_path / "pets", {"dog": 5, "cat": 7})
    s = data.prepare_dataset("folder", tmp_path, source="pets", **kw())
    assert s.classes == ("cat", "dog") and len(s.test_idx) == 3 and len(s.train_idx) == 9
    assert s.x_train.shape == (9, 1, 8, 8)
    labels = np.array([0] * 7 + [1] * 5)
    assert s.y_train.tolist() == labels[s.train_idx].tolist() and s.y_test.tolist() == labels[s.test_idx].tolist()
    files = [tmp_path / "pets" / c / f"img{i:02d}.png" for c, n in (("cat", 7), ("dog", 5)) for i in range(n)]
    for pos, row in enumerate(s.test_idx):
        pixels = np.array(Image.open(files[row]), dtype=np.float32) / 255
        assert torch.allclose(s.x_test[pos, 0], torch.from_numpy(pixels))
    write_image(tmp_path / "pets" / "dog" / "rgb.jpg", (8, 8), "RGB", fmt="JPEG")
    (tmp_path / "pets" / "notes.txt").write_text("ignored")
    assert data.prepare_dataset("folder", tmp_path, source="pets", **kw()).x_test.shape[1] == 3  # any colour: all RGB


def test_npz_shapes_and_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(20) % 4
    for name, x in {
        "hw": rng.integers(0, 256, (20, 6, 5), dtype=np.uint8),
        "hwc": rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8),
        "chw": rng.integers(0, 256, (20, 3, 6, 5), dtype=np.uint8),
        "float": rng.random((20, 1, 6, 5)),
    }.items():
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
        s = data.prepare_dataset("npz", tmp_path, source=name, **kw())
        c = 1 if name in ("hw", "float") else 3
        assert s.x_train.shape == (15, c, 6, 5) and s.x_test.shape == (5, c, 6, 5), name
        assert s.y_test.tolist() == y[s.test_idx].tolist() and s.n_classes == 4
    xs = rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "check.npz", x=xs, y=y, classes=np.array(["a", "b", "c", "d"]))
    s = data.prepare_dataset("npz", tmp_path, source="check", **kw(image_size=4))
    assert s.classes == ("a", "b", "c", "d") and s.x_train.shape == (15, 3, 4, 4)
    t = data.prepare_dataset("npz", tmp_path, source="check.npz", **kw())
    assert torch.allclose(t.x_test[0], torch.from_numpy(xs[t.test_idx[0]].transpose(2, 0, 1)).float() / 255)


# ---------------------------------------------------------------------------------------------
# bad input: one DataError that names the file, what was wrong, what is allowed


def err(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_idx_errors(tmp_path):
    raw = make_mnist(tmp_path)
    f = raw / "train-images-idx3-ubyte.gz"
    write_idx(f, np.zeros((20, 28, 28)), magic=2049)
    m = err(lambda: data.prepare_dataset("mnist", tmp_path, **kw()))
    assert str(f) in m and "wrong magic number 2049" in m and "magic 2051" in m
    f.write_bytes(gzip.compress(struct.pack(">4i", 2051, 20, 28, 28) + bytes(100)))
    m = err(lambda: data.check("mnist", tmp_path))
    assert str(f) in m and "truncated IDX file: the header says 20x28x28 = 15680 bytes of data, found 100" in m
    f.write_bytes(b"not gzip")
    assert "not a readable gzip file" in err(lambda: data.check("mnist", tmp_path))
    write_idx(f, np.zeros((19, 28, 28)))
    m = err(lambda: data.check("mnist", tmp_path))
    assert "20 labels for the 19 images" in m and "train-labels-idx1-ubyte.gz" in m
    f.unlink()
    m = err(lambda: data.check("mnist", tmp_path))
    assert m.startswith(f"{raw}: data set 'mnist' incomplete, missing train-images-idx3-ubyte;")
    assert "copy the files there, or use data.dataset: mnist-sample" in m


def test_idx_without_files_says_what_to_do(tmp_path):
    m = err(lambda: data.prepare_dataset("fashion-mnist", tmp_path, **kw()))
    assert str(tmp_path / "FashionMNIST" / "raw") in m and "t10k-labels-idx1-ubyte" in m
    assert "materialise --dataset fashion-mnist" in m and "mnist-sample" in m


def test_cifar_errors(tmp_path):
    folder = make_cifar(tmp_path)
    write_cifar_batch(folder / "data_batch_3", 3, labels=True)
    m = err(lambda: data.prepare_dataset("cifar10", tmp_path, **kw()))
    assert str(folder / "data_batch_3") in m and "without the key(s) labels" in m
    write_cifar_batch(folder / "data_batch_3", 3, data=True)
    assert "without the key(s) data" in err(lambda: data.check("cifar10", tmp_path))
    (folder / "data_batch_3").write_bytes(b"garbage")
    assert "data_batch_3: not a readable CIFAR python pickle" in err(lambda: data.check("cifar10", tmp_path))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}))
    assert "refers to builtins.print" in err(lambda: data.check("cifar10", tmp_path))
    (folder / "batches.meta").unlink()
    assert "missing batches.meta" in err(lambda: data.check("cifar10", tmp_path))


def test_utkface_errors(tmp_path):
    folder = make_utkface(tmp_path, UTK_NAMES[:6])
    bad = write_image(folder / "25_2_0_20170116174525125.jpg.chip.jpg", (24, 24), "RGB", fmt="JPEG")
    m = err(lambda: data.prepare_dataset("utkface", tmp_path, **kw()))
    assert m.startswith(f"{bad}: not a UTKFace file name; expected <age>_<gender>_<race>_<date&time>.jpg")
    bad.unlink()
    trunc = folder / "30_1_1_20170116174525125.jpg"
    trunc.write_bytes(write_image(tmp_path / "x.jpg", (24, 24), "RGB", fmt="JPEG").read_bytes()[:200])
    assert str(trunc) in err(lambda: data.prepare_dataset("utkface", tmp_path, **kw(test_fraction=0.5)))
    assert "not a readable image" in err(lambda: data.check("utkface", tmp_path))
    trunc.unlink()
    write_image(folder / "30_1_1_20170116174525126.jpg", (20, 24), "RGB", fmt="JPEG")
    m = err(lambda: data.check("utkface", tmp_path))
    assert "mixed image sizes: 20x24 here, 24x24 in" in m and "set data.image_size" in m
    data.check("utkface", tmp_path, image_size=16)
    assert "unknown UTKFace task; allowed: gender, race" in err(
        lambda: data.prepare_dataset("utkface", tmp_path, **kw(task="age"))
    )
    m = err(lambda: data.materialise("utkface", tmp_path / "nowhere"))
    assert "UTKFace: UTKFace folder missing; put the original UTKFace JPEG files" in m and "mnist-sample" in m


def test_folder_errors(tmp_path):
    root = tmp_path / "imgs"
    m = err(lambda: data.prepare_dataset("folder", tmp_path, source="imgs", **kw()))
    assert m.startswith(f"{root}: image folder missing; put the images there as {root}/<class_name>/*.png|jpg|jpeg|bmp")
    (root / "a").mkdir(parents=True)
    (root / "a" / "readme.txt").write_text("x")
    assert err(lambda: data.prepare_dataset("folder", tmp_path, source="imgs", **kw())).startswith(
        f"{root}: no images; expected"
    )
    make_folder(root, {"a": 3, "b": 3})
    (root / "c").mkdir()
    assert err(lambda: data.check("folder", tmp_path, "imgs")).startswith(f"{root / 'c'}: class folder without images")
    (root / "c").rmdir()
    big = write_image(root / "b" / "big.png", (9, 8))
    m = err(lambda: data.prepare_dataset("folder", tmp_path, source="imgs", **kw()))
    assert m.startswith(f"{big}: mixed image sizes: 9x8 here, 8x8 in {root / 'a' / 'img00.png'}")
    assert data.prepare_dataset("folder", tmp_path, source="imgs", **kw(image_size=8)).x_train.shape[1:] == (1, 8, 8)
    broken = root / "a" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    m = err(lambda: data.prepare_dataset("folder", tmp_path, source="imgs", **kw(image_size=8)))
    assert m.startswith(f"{broken}: not a readable image")
    assert "data.source: required for data set 'folder'" in err(lambda: data.check("folder", tmp_path))
    assert "must be a name inside data/" in err(lambda: data.check("folder", tmp_path, "../x"))
    assert "data.image_size = 0: must be a positive whole number" in err(
        lambda: data.prepare_dataset("folder", tmp_path, source="imgs", **kw(image_size=0))
    )


def test_npz_errors(tmp_path):
    f = tmp_path / "d.npz"
    x = np.zeros((10, 4, 4), np.uint8)
    cases = [
        (dict(x=x), "no array 'y' (found: x)"),
        (dict(x=x, y=np.arange(9)), "'x' has shape (10, 4, 4) and 'y' 9 labels"),
        (dict(x=x + 0.5 * 3, y=np.arange(10)), "float images must be in [0, 1]"),
        (dict(x=np.zeros((10, 3, 4, 3), np.uint8), y=np.arange(10)), "cannot tell the channel axis"),
        (dict(x=x, y=np.arange(10) * 0.5), "expected 1-D integer labels"),
    ]
    for arrays, message in cases:
        np.savez(f, **arrays)
        m = err(lambda: data.prepare_dataset("npz", tmp_path, source="d", **kw()))
        assert m.startswith(f"{f}: ") and message in m, m
    f.write_bytes(b"not a zip")
    assert "not an npz file (a zip of .npy arrays" in err(lambda: data.check("npz", tmp_path, "d"))
    m = err(lambda: data.check("npz", tmp_path, "missing"))
    assert m.startswith(f"{tmp_path / 'missing.npz'}: npz file missing; save one with numpy.savez")


# ---------------------------------------------------------------------------------------------
# downloads (no network: an unreachable local address, and a local server with wrong files)


@pytest.mark.parametrize(
    "dataset,files",
    [("mnist", "train-images-idx3-ubyte"), ("fashion-mnist", "t10k-labels-idx1-ubyte"), ("cifar10", "data_batch_1")],
)
def test_offline_download_fails_fast_and_clearly(tmp_path, monkeypatch, dataset, files):
    monkeypatch.setenv("NOPEEK_DATA_MIRROR", "http://127.0.0.1:9/")
    t0 = time.monotonic()
    m = err(lambda: data.materialise(dataset, tmp_path))
    assert time.monotonic() - t0 < 5
    where = tmp_path / datasets.OFFICIAL[dataset].folder
    assert m.startswith(f"data set {dataset!r}: cannot download it, no connection (http://127.0.0.1:9/")
    assert f"into {where}/" in m and files in m and "or use data.dataset: mnist-sample" in m
    assert list(tmp_path.iterdir()) == []


class _WrongFiles(http.server.BaseHTTPRequestHandler):
    def _send(self, body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "9")
        self.end_headers()
        if body:
            self.wfile.write(b"not mnist")

    def do_HEAD(self):  # noqa: N802
        self._send(False)

    def do_GET(self):  # noqa: N802
        self._send(True)

    def log_message(self, *args):
        pass


def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WrongFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("NOPEEK_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        m = err(lambda: data.materialise("mnist", tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert m.startswith("data set 'mnist': download failed (RuntimeError:")
    assert f"nothing was written to {tmp_path / 'MNIST' / 'raw'}" in m
    assert list(tmp_path.iterdir()) == []  # no staging folder, no partial MNIST/


def test_present_but_broken_files_are_not_downloaded_over(tmp_path, monkeypatch):
    monkeypatch.setenv("NOPEEK_DATA_MIRROR", "http://127.0.0.1:9/")
    raw = make_mnist(tmp_path)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    m = err(lambda: data.materialise("mnist", tmp_path))
    assert (
        "missing t10k-labels-idx1-ubyte" in m
        and "materialise --dataset mnist --force` to download all of them again" in m
    )
    assert m.count("--force") == 1
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(8), magic=2051)
    m = err(lambda: data.materialise("mnist", tmp_path))
    assert (
        "wrong magic number 2051" in m
        and "; or run `python -m nopeek_repro.data materialise --dataset mnist --force`" in m
    )
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "cannot download it, no connection" in err(lambda: data.materialise("mnist", tmp_path, force=True))
    assert sorted(p.name for p in raw.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_other_data_sets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOPEEK_ROOT", str(tmp_path))
    monkeypatch.setenv("NOPEEK_DATA_MIRROR", "http://127.0.0.1:9/")
    make_cifar(tmp_path / "data")
    assert data.main(["check", "--dataset", "cifar10"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'data' / 'cifar-10-batches-py'}: ok\n"
    assert data.main(["materialise", "--dataset", "cifar10"]) == 0
    for argv, message in [
        (["check", "--dataset", "bogus"], "error: data.dataset = 'bogus': unknown data set; allowed: mnist-sample,"),
        (["materialise", "--dataset", "mnist"], "error: data set 'mnist': cannot download it, no connection"),
        (["check", "--dataset", "npz", "--source", "x"], f"error: {tmp_path / 'data' / 'x.npz'}: npz file missing"),
    ]:
        capsys.readouterr()
        assert data.main(argv) == 2
        errout = capsys.readouterr().err
        assert errout.startswith(message) and errout.count("\n") == 1, errout
    (tmp_path / "params.yaml").write_text("data:\n  dataset: cifar10\n")
    assert data.main(["check", "--from-params"]) == 0
    (tmp_path / "p.yaml").write_text("data:\n  dataset: npz\n  source: nothing\n")
    capsys.readouterr()
    assert data.main(["materialise", "--from-params", "p.yaml"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'data' / 'nothing.npz'}: npz file missing; " + (
        "save one with numpy.savez('nothing.npz', x=images, y=labels) ('x': images (n, h, w), (n, h, w, c) or "
        "(n, c, h, w) with c = 1 or 3, uint8 0..255 or float in [0, 1]; 'y': n integer labels >= 0; optional "
        "'classes': the class names), or use data.dataset: mnist-sample (embedded, works offline)\n"
    )
    (tmp_path / "p.yaml").write_text("data:\n  dataset: npz\n")
    assert data.main(["check", "--from-params", "p.yaml"]) == 2
    errout = capsys.readouterr().err
    assert errout.startswith("error: p.yaml: ") and "data.source" in errout and errout.count("\n") == 1
    make_folder(tmp_path / "data" / "mine", {"x": 2, "y": 2})
    write_image(tmp_path / "data" / "mine" / "y" / "odd.png", (5, 5))
    assert data.main(["check", "--dataset", "folder", "--source", "mine"]) == 2
    assert data.main(["check", "--dataset", "folder", "--source", "mine", "--image-size", "8"]) == 0


def _serve(folder: Path):
    handler = lambda *a, **k: _Quiet(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_through_torchvision_from_a_local_mirror(tmp_path, monkeypatch):
    """The whole download path with torchvision's own downloader and checksum test: a local mirror
    serves small IDX / CIFAR files, and torchvision is told their md5 instead of the official ones."""
    import hashlib
    import tarfile

    import torchvision.datasets as tvd

    md5 = lambda p: hashlib.md5(p.read_bytes()).hexdigest()  # noqa: E731
    site = tmp_path / "site"
    raw = make_mnist(site / "m", n_train=12, n_test=4)
    monkeypatch.setattr(tvd.MNIST, "resources", [(f.name, md5(f)) for f in sorted(raw.iterdir())])
    cifar = make_cifar(site / "c", str_keys=True)
    with tarfile.open(site / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(cifar, arcname="cifar-10-batches-py")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(site / "cifar-10-python.tar.gz"))
    monkeypatch.setattr(
        tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5(cifar / f"data_batch_{i}")] for i in range(1, 6)]
    )
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5(cifar / "test_batch")]])
    monkeypatch.setattr(
        tvd.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5(cifar / "batches.meta")}
    )
    for f in raw.iterdir():
        f.rename(site / f.name)
    server = _serve(site)
    data_dir = tmp_path / "data"
    try:
        monkeypatch.setenv("NOPEEK_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
        assert data.materialise("mnist", data_dir) == data_dir / "MNIST" / "raw"
        assert data.materialise("cifar10", data_dir) == data_dir / "cifar-10-batches-py"
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in data_dir.iterdir()) == ["MNIST", "cifar-10-batches-py"]  # no staging folder left
    s = data.prepare_dataset("mnist", data_dir, **kw())
    assert (len(s.train_idx), len(s.test_idx)) == (12, 4)
    c = data.prepare_dataset("cifar10", data_dir, **kw())
    assert (len(c.train_idx), len(c.test_idx)) == (15, 5)
    monkeypatch.setenv("NOPEEK_DATA_MIRROR", "http://127.0.0.1:9/")
    assert data.materialise("mnist", data_dir) == data_dir / "MNIST" / "raw"  # there: no download
    assert data.materialise("cifar10", data_dir, force=True) == data_dir / "cifar-10-batches-py"  # official: kept
    (data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"altered")
    assert "cannot download it" in err(lambda: data.materialise("mnist", data_dir, force=True))  # altered: fetch again


def test_digits_are_offline_upscaled_and_split_like_the_others(tmp_path):
    s = data.prepare_dataset("digits", tmp_path, **kw())
    assert s.x_train.shape[1:] == (1, 16, 16) and len(s.y_train) + len(s.y_test) == 1797
    assert s.n_classes == 10 and s.classes == tuple("0123456789")
    assert float(s.x_train.min()) == 0.0 and float(s.x_train.max()) == 1.0
    train, test = data.split_indices(1797, 0.25, 0)
    assert s.train_idx.tolist() == train.tolist() and s.test_idx.tolist() == test.tolist()
    images, labels = datasets.load_digits()
    assert (
        images.shape == (1797, 8, 8, 1)
        and images.dtype == np.uint8
        and labels[s.test_idx].tolist() == s.y_test.tolist()
    )
    assert data.prepare_dataset("digits", tmp_path, **kw(image_size=12)).x_test.shape[1:] == (1, 12, 12)
    assert data.check("digits", tmp_path) == tmp_path and not list(tmp_path.iterdir())  # nothing written


def test_digits_at_their_native_8x8_are_refused_before_training(tmp_path):
    from nopeek_repro import config

    with pytest.raises(DataError, match=r"data.image_size = 8: images of 8x8 pixels are smaller than the 11x11"):
        data.prepare_from_params(config.DataParams(dataset="digits", image_size=8), tmp_path)
