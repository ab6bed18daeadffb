"""Readers for every data set but the embedded sample: on-disk layouts, file formats, checks.

Everything here works on numpy arrays of uint8 images shaped (n, h, w, c) (c = 1 or 3) and int64
labels; :mod:`nopeek_repro.data` turns them into the train/test :class:`~nopeek_repro.data.Split`.
No torchvision reader is used, each for a reason checked against torchvision 0.29 (issue 9 asked
for torchvision's readers "where they serve"):

* CIFAR-10: ``torchvision.datasets.CIFAR10(download=False)`` verifies the md5 of every official
  batch file and refuses any other, so it cannot read files a user or a test wrote in the format.
* MNIST / Fashion-MNIST: ``torchvision.datasets.MNIST`` looks only for the uncompressed raw files
  (a folder of the official ``.gz`` files counts as missing), and its IDX parser
  (``read_sn3_pascalvincent_tensor``) stops a malformed file with a bare ``assert``; the reader here
  takes either form and names the file and the defect (magic number, truncation, trailing bytes).
* class folders: ``ImageFolder`` decodes lazily, so a broken or odd-sized image surfaces mid-training;
  the reader here checks every file (decodable, one size unless ``data.image_size`` resizes)
  before any training, with one message naming the file.

Layouts under ``data/`` (the folder ``data.dvc`` tracks):

* ``mnist``: ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (each may be ``.gz``)
* ``fashion-mnist``: ``FashionMNIST/raw/`` with the same four IDX files
* ``cifar10``: ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (python pickles)
* ``utkface``: ``UTKFace/<age>_<gender>_<race>_<date>.jpg[.chip.jpg]`` (the original JPEG files)
* ``folder``: ``<source>/<class_name>/*.{png,jpg,jpeg,bmp}`` (one sub-folder per class)
* ``npz``: ``<source>.npz`` with arrays ``x`` (images) and ``y`` (integer labels)
"""

from __future__ import annotations

import gzip
import pickle
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A missing, altered or malformed data file: the message names the file and the fix."""


DATASETS: tuple[str, ...] = ("mnist-sample", "digits", "mnist", "fashion-mnist", "cifar10", "utkface", "folder", "npz")
DIGITS_SIZE = 16
"""The side the 8x8 digits are upscaled to unless ``data.image_size`` says otherwise (SSIM needs 11)."""
SAMPLE_HINT = "or use data.dataset: mnist-sample (embedded, works offline)"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# ---------------------------------------------------------------------------------------------
# parameters


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise DataError(f"data.dataset = {dataset!r}: unknown data set; allowed: {', '.join(DATASETS)}")
    return dataset


def check_image_size(image_size: int | None) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise DataError(
            f"data.image_size = {image_size!r}: must be a positive whole number of pixels (or null = native size)"
        )
    return int(image_size)


def source_path(dataset: str, data_dir: Path, source: str | None) -> Path:
    """``data/<source>`` (folder) or ``data/<source>.npz`` (npz); ``source`` must be a name under data/."""
    example = "data/<source>/<class_name>/*.png" if dataset == "folder" else "data/<source>.npz"
    if not source:
        raise DataError(f"data.source: required for data set {dataset!r} (the name under data/: {example})")
    parts = Path(source).parts
    if Path(source).is_absolute() or ".." in parts or not parts:
        raise DataError(f"data.source = {source!r}: must be a name inside data/ (no absolute path, no '..'): {example}")
    where = data_dir / (source if dataset == "folder" or source.endswith(".npz") else f"{source}.npz")
    if where.exists() and not where.resolve().is_relative_to(data_dir.resolve()):
        raise DataError(
            f"{where}: leads to {where.resolve()}, outside data/ (a link); data paths must stay inside data/ "
            "after following links: copy the data into data/"
        )
    return where


# ---------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files

IDX_IMAGES, IDX_LABELS = 2051, 2049  # 0x00000803 (uint8, 3 dims), 0x00000801 (uint8, 1 dim)
IDX_STEMS = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Official:
    """A data set with an official train/test split, in torchvision's on-disk layout."""

    name: str
    folder: str  # under data/
    files: tuple[str, ...]
    classes: tuple[str, ...]
    torchvision: str  # class name in torchvision.datasets

    def where(self, data_dir: Path) -> Path:
        return data_dir / self.folder


MNIST_FILES = tuple(IDX_STEMS.values())
OFFICIAL = {
    "mnist": Official("mnist", "MNIST/raw", MNIST_FILES, tuple(str(i) for i in range(10)), "MNIST"),
    "fashion-mnist": Official(
        "fashion-mnist",
        "FashionMNIST/raw",
        MNIST_FILES,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "FashionMNIST",
    ),
    "cifar10": Official(
        "cifar10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        "CIFAR10",
    ),
}


def missing_message(dataset: str, data_dir: Path, missing: list[str]) -> str:
    spec = OFFICIAL[dataset]
    folder = spec.where(data_dir)
    gz = " (each may be gzipped, name.gz)" if dataset != "cifar10" else ""
    partial = len(missing) < len(spec.files)
    get = (
        f"run `python -m nopeek_repro.data materialise --dataset {dataset} --force` to download all of them again "
        "(needs internet; replaces the files there)"
        if partial
        else f"run `python -m nopeek_repro.data materialise --dataset {dataset}` to download them (needs internet)"
    )
    return (
        f"{folder}: data set {dataset!r} incomplete, missing {', '.join(missing)}; "
        f"expected {', '.join(spec.files)}{gz}; {get}, copy the files there, {SAMPLE_HINT}"
    )


def idx_file(raw_dir: Path, stem: str) -> Path | None:
    """The IDX file ``stem`` in ``raw_dir``: uncompressed if present, else ``stem.gz``, else None."""
    for name in (stem, f"{stem}.gz"):
        if (raw_dir / name).is_file():
            return raw_dir / name
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped when the name ends in .gz) with the given magic."""
    what = (
        "images (magic 2051 = 0x00000803, then n, rows, cols)"
        if magic == IDX_IMAGES
        else "labels (magic 2049 = 0x00000801, then n)"
    )
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a readable gzip file ({err}); expected a gzipped IDX file of {what}") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no header); expected IDX {what}")
    found = struct.unpack(">i", raw[:4])[0]
    if found != magic:
        raise DataError(
            f"{path}: wrong magic number {found} (0x{found & 0xFFFFFFFF:08x}); expected IDX {what}, big-endian"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes); expected IDX {what}")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    need = int(np.prod(dims))
    have = len(raw) - header
    if have < need:
        shape = "x".join(map(str, dims))
        raise DataError(f"{path}: truncated IDX file: the header says {shape} = {need} bytes of data, found {have}")
    if have > need:
        raise DataError(f"{path}: {have - need} unexpected bytes after the {'x'.join(map(str, dims))} IDX data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_pair(raw_dir: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, h, w, 1) and labels (n,) of the ``train`` or ``test`` part."""
    xf = idx_file(raw_dir, IDX_STEMS[(part, "images")])
    yf = idx_file(raw_dir, IDX_STEMS[(part, "labels")])
    assert xf is not None and yf is not None, "caller checks presence"
    x = read_idx(xf, IDX_IMAGES)
    y = read_idx(yf, IDX_LABELS).astype(np.int64)
    if len(x) != len(y):
        raise DataError(f"{yf}: {len(y)} labels for the {len(x)} images of {xf}; the counts must match")
    if len(y) and y.max() > 9:
        raise DataError(f"{yf}: label {int(y.max())} out of range; labels must be the classes 0..9")
    return x[..., None], y


def load_mnist_like(dataset: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of ``mnist`` or ``fashion-mnist``, as uint8 NHWC."""
    raw_dir = OFFICIAL[dataset].where(data_dir)
    missing = [s for s in MNIST_FILES if idx_file(raw_dir, s) is None]
    if missing:
        raise DataError(missing_message(dataset, data_dir, missing))
    x_tr, y_tr = load_idx_pair(raw_dir, "train")
    x_te, y_te = load_idx_pair(raw_dir, "test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{raw_dir}: train images are {x_tr.shape[1]}x{x_tr.shape[2]}, "
            f"test images {x_te.shape[1]}x{x_te.shape[2]}; they must match"
        )
    return x_tr, y_tr, x_te, y_te


# ---------------------------------------------------------------------------------------------
# CIFAR-10: python pickle batches


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches hold (dicts, lists, bytes, numpy arrays): no code runs."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("builtins", "bytearray"),
        ("__builtin__", "bytearray"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            obj = _SafeUnpickler(fh, encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise DataError(f"{path}: not a readable CIFAR python pickle ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: holds a {type(obj).__name__}, expected a dict (a CIFAR python batch)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: images (n, 32, 32, 3) uint8 and labels (n,) int64."""
    d = _unpickle(path)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise DataError(
            f"{path}: CIFAR batch without the key(s) {', '.join(missing)}; expected a dict with "
            f"'data' ((n, 3072) uint8, 3 colour planes of 32x32) and 'labels' (n ints 0..9)"
        )
    x = np.asarray(d["data"])
    y = np.asarray(d["labels"])
    if x.ndim != 2 or x.shape[1] != 3072 or x.dtype != np.uint8:
        raise DataError(f"{path}: 'data' is {x.dtype} {x.shape}; expected uint8 (n, 3072) (3 colour planes of 32x32)")
    if (
        y.ndim != 1
        or len(y) != len(x)
        or not np.issubdtype(y.dtype, np.integer)
        or (len(y) and (y.min() < 0 or y.max() > 9))
    ):
        raise DataError(
            f"{path}: 'labels' must be {len(x)} integers 0..9 (one per row of 'data'), found {y.dtype} {y.shape}"
        )
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int64)


def read_cifar_meta(path: Path) -> tuple[str, ...]:
    d = _unpickle(path)
    names = d.get("label_names")
    if names is None or len(names) != 10:
        raise DataError(f"{path}: CIFAR meta without 'label_names' (the 10 class names)")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    spec = OFFICIAL["cifar10"]
    folder = spec.where(data_dir)
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing:
        raise DataError(missing_message("cifar10", data_dir, missing))
    train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_te, y_te = read_cifar_batch(folder / "test_batch")
    classes = read_cifar_meta(folder / "batches.meta")
    return np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), x_te, y_te, classes


# ---------------------------------------------------------------------------------------------
# image files (UTKFace, class folders)

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def unreadable(path: Path, err: Exception) -> str:
    return f"{path}: not a readable image ({err}); allowed: {', '.join(IMAGE_EXTENSIONS)} files Pillow can decode"


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_EXTENSIONS)


def image_header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode from the file header (no full decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(unreadable(path, err)) from None


def decode_image(path: Path, rgb: bool, size: int | None) -> np.ndarray:
    """The image as uint8 (h, w, c), converted to RGB (c = 3) or grey (c = 1), resized to size x size."""
    from PIL import Image, UnidentifiedImageError

    im: Image.Image  # the opened file, then the converted (and resized) image
    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if rgb else "L")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(unreadable(path, err)) from None
    return arr if rgb else arr[..., None]


@dataclass
class ImageFiles:
    """A list of image files with their labels, read lazily (headers first, pixels on demand)."""

    files: list[Path]
    labels: np.ndarray
    classes: tuple[str, ...]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    rgb: bool = True

    def scan(self, image_size: int | None) -> None:
        """Read every header: unreadable files and (without image_size) mixed sizes are errors."""
        first: tuple[Path, tuple[int, int]] | None = None
        gray = True
        for f in self.files:
            size, mode = image_header(f)
            gray = gray and mode in GRAY_MODES
            if first is None:
                first = (f, size)
            elif image_size is None and size != first[1]:
                raise DataError(
                    f"{f}: mixed image sizes: {size[0]}x{size[1]} here, {first[1][0]}x{first[1][1]} in {first[0]}; "
                    "set data.image_size to resize every image to one square size"
                )
        self.rgb = self.rgb or not gray

    def decode(self, rows: np.ndarray, image_size: int | None) -> np.ndarray:
        """uint8 (len(rows), h, w, c) of the given rows (call :meth:`scan` first)."""
        out: np.ndarray | None = None
        for i, r in enumerate(rows):
            img = decode_image(self.files[int(r)], self.rgb, image_size)
            if out is None:
                out = np.empty((len(rows), *img.shape), dtype=np.uint8)
            out[i] = img
        if out is None:
            raise DataError("no rows to decode")
        return out

    def check_all(self, image_size: int | None) -> None:
        self.scan(image_size)
        for f in self.files:
            decode_image(f, self.rgb, None)


UTKFACE_FOLDER = "UTKFace"
UTKFACE_PATTERN = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$", re.IGNORECASE)
UTKFACE_NAME = "<age>_<gender>_<race>_<date&time>.jpg[.chip.jpg]"
UTKFACE_EXPECTED = (
    f"{UTKFACE_NAME}, e.g. 25_0_2_20170116174525125.jpg.chip.jpg (age in years, gender 0 male / "
    "1 female, race 0 White / 1 Black / 2 Asian / 3 Indian / 4 Others)"
)
UTKFACE_CLASSES = {"gender": ("male", "female"), "race": ("White", "Black", "Asian", "Indian", "Others")}
UTKFACE_AGES = (10, 65)  # kept: 10 < age < 65, as the authors did


def parse_utkface_name(path: Path) -> tuple[int, int, int]:
    """(age, gender, race) from an original UTKFace file name; DataError naming the file otherwise."""
    m = UTKFACE_PATTERN.match(path.name)
    if not m:
        raise DataError(f"{path}: not a UTKFace file name; expected {UTKFACE_EXPECTED}; rename or remove the file")
    return int(m[1]), int(m[2]), int(m[3])


def list_utkface(data_dir: Path, task: str = "gender") -> ImageFiles:
    """The UTKFace files kept by the age filter, sorted by name (the row order of every index)."""
    if task not in UTKFACE_CLASSES:
        raise DataError(f"data.task = {task!r}: unknown UTKFace task; allowed: {', '.join(UTKFACE_CLASSES)}")
    folder = data_dir / UTKFACE_FOLDER
    if not folder.is_dir():
        raise DataError(
            f"{folder}: UTKFace folder missing; put the original UTKFace JPEG files ({UTKFACE_NAME}, "
            f"from https://susanqq.github.io/UTKFace/) directly in it, {SAMPLE_HINT}"
        )
    files = sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)
    if not files:
        raise DataError(f"{folder}: no images; expected the UTKFace JPEG files named {UTKFACE_EXPECTED}")
    parsed = [parse_utkface_name(p) for p in files]
    lo, hi = UTKFACE_AGES
    keep = [i for i, (age, _, _) in enumerate(parsed) if lo < age < hi]
    if not keep:
        raise DataError(
            f"{folder}: none of the {len(files)} images has an age with {lo} < age < {hi} (the authors' filter)"
        )
    arr = np.array([parsed[i] for i in keep], dtype=np.int64).reshape(-1, 3)
    targets = {"age": arr[:, 0], "gender": arr[:, 1], "race": arr[:, 2]}
    return ImageFiles([files[i] for i in keep], targets[task].copy(), UTKFACE_CLASSES[task], targets, rgb=True)


def list_folder(root: Path) -> ImageFiles:
    """``root/<class_name>/*.{png,jpg,jpeg,bmp}``: classes sorted by name, files by (class, name)."""
    layout = f"{root}/<class_name>/*.png|jpg|jpeg|bmp (one sub-folder per class)"
    if not root.is_dir():
        raise DataError(f"{root}: image folder missing; put the images there as {layout}, {SAMPLE_HINT}")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    files: list[Path] = []
    labels: list[int] = []
    classes: list[str] = []
    empty: list[str] = []
    for d in class_dirs:
        imgs = sorted((p for p in d.iterdir() if _is_image(p)), key=lambda p: p.name)
        if not imgs:
            empty.append(d.name)
            continue
        labels += [len(classes)] * len(imgs)
        classes.append(d.name)
        files += imgs
    if not files:
        raise DataError(f"{root}: no images; expected {layout}")
    if empty:
        raise DataError(
            f"{root / empty[0]}: class folder without images ({', '.join(IMAGE_EXTENSIONS)}); "
            f"add images or remove the folder (expected {layout})"
        )
    return ImageFiles(files, np.array(labels, dtype=np.int64), tuple(classes), rgb=False)


# ---------------------------------------------------------------------------------------------
# npz

NPZ_EXPECTED = (
    "'x': images (n, h, w), (n, h, w, c) or (n, c, h, w) with c = 1 or 3, uint8 0..255 or float in [0, 1]; "
    "'y': n integer labels >= 0; optional 'classes': the class names"
)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Images as uint8 NHWC (floats in [0, 1] are rounded to 1/255 steps), labels int64, class names."""
    if not path.is_file():
        raise DataError(
            f"{path}: npz file missing; save one with numpy.savez({path.name!r}, x=images, y=labels) "
            f"({NPZ_EXPECTED}), {SAMPLE_HINT}"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        raise DataError(
            f"{path}: not an npz file (a zip of .npy arrays, as numpy.savez writes; this one starts with {head!r}); "
            f"expected {NPZ_EXPECTED}"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("x", "y") if k not in keys]
            if missing:
                found = ", ".join(sorted(keys)) or "none"
                raise DataError(
                    f"{path}: no array {' or '.join(repr(k) for k in missing)} (found: {found}); "
                    f"expected {NPZ_EXPECTED}"
                )
            x, y = z["x"], z["y"]
            names = z["classes"] if "classes" in keys else None
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - zip, pickle and format errors alike
        raise DataError(
            f"{path}: not a readable npz file ({type(err).__name__}: {err}); expected {NPZ_EXPECTED}"
        ) from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DataError(f"{path}: 'y' is {y.dtype} {y.shape}; expected 1-D integer labels >= 0")
    if x.ndim not in (3, 4) or len(x) != len(y):
        raise DataError(
            f"{path}: 'x' has shape {x.shape} and 'y' {len(y)} labels; expected {NPZ_EXPECTED} with the same n"
        )
    if len(y) == 0:
        raise DataError(f"{path}: no images (n = 0)")
    if x.ndim == 3:
        x = x[..., None]
    else:
        last, second = x.shape[-1] in (1, 3), x.shape[1] in (1, 3)
        if second and not last:
            x = x.transpose(0, 2, 3, 1)
        elif not last or second:
            raise DataError(
                f"{path}: 'x' has shape {x.shape}: cannot tell the channel axis; "
                "expected (n, h, w, c) or (n, c, h, w) with c = 1 or 3"
            )
    if x.dtype == np.uint8:
        pass
    elif np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: 'x' ({x.dtype}) has values {x.min()}..{x.max()}; expected 0..255")
        x = x.astype(np.uint8)
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            raise DataError(f"{path}: 'x' has {bad} values that are not finite (NaN or inf); expected values in [0, 1]")
        if x.min() < 0 or x.max() > 1:
            raise DataError(
                f"{path}: 'x' ({x.dtype}) has values outside [0, 1]; float images must be in [0, 1] (or use uint8 0..255)"
            )
        x = np.round(x * 255).astype(np.uint8)
    else:
        raise DataError(f"{path}: 'x' has dtype {x.dtype}; expected uint8 0..255 or float in [0, 1]")
    classes = None
    if names is not None:
        classes = tuple(str(n) for n in np.asarray(names).ravel())
        if y.max() >= len(classes):
            raise DataError(f"{path}: label {int(y.max())} but only {len(classes)} names in 'classes'")
    return np.ascontiguousarray(x), y.astype(np.int64), classes


# ---------------------------------------------------------------------------------------------
# arrays


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits (1,797 images, shipped inside scikit-learn: no download):
    uint8 NHWC images (values 0..16 scaled to 0..255) and int64 labels 0..9."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as err:
        raise DataError(f"data.dataset = 'digits' needs scikit-learn ({err}); {SAMPLE_HINT}") from None
    bunch = sk_load_digits()
    images = np.round(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    return images[..., None], np.asarray(bunch.target, dtype=np.int64)


def resize_stack(x: np.ndarray, size: int | None) -> np.ndarray:
    """Resize uint8 NHWC images to size x size (bilinear, Pillow); unchanged when already that size."""
    if size is None or x.shape[1:3] == (size, size):
        return x
    from PIL import Image

    out = np.empty((len(x), size, size, x.shape[3]), dtype=np.uint8)
    for i, img in enumerate(x):
        im = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
        out[i] = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR)).reshape(size, size, -1)
    return out
