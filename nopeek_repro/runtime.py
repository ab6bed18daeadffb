"""How the kit runs, shared by training, attacks and stages: determinism, devices, mini-batches, progress.

Contracts: :func:`set_determinism` makes a CPU run bitwise repeatable for a seed and thread count;
:func:`resolve_device` turns ``cpu | cuda | auto`` into a device or one clear error;
:func:`batches` gives one epoch's shuffled mini-batch indices from a seeded generator;
:class:`Progress` shows a long loop live and leaves exactly one byte-stable final line in the
notebook; :func:`show_logs` sends the package's log records to the notebook; :func:`make_layout`
is where every notebook starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from types import TracebackType

import torch
from tqdm import tqdm

from . import paths
from .config import ParamsError

TERMINAL_ENV = "NOPEEK_TERMINAL"
"""Set to ``1`` by the stage runner (:func:`nopeek_repro.pipeline.execute`) for the kernel it
starts, whose own stderr is then the terminal that runs ``dvc repro``: live progress goes there."""

_ACTIVE: list[Progress] = []  # open progress lines, innermost last (see Progress.current)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """One long loop's progress: ``with Progress(total, desc, unit) as p: ... p.update(1, loss=...)``.

    - In a Jupyter kernel the notebook shows one line, updated in place (at most twice a second);
      what an executed notebook keeps is only the final state, e.g. ``baseline seed 0: 285/285
      batches, epoch 5/5, acc 0.945, dcor 0.9862`` (counts and the last numbers, no timings: the
      same bytes on every run). Outside a kernel the final line is printed to stdout.
    - When the stage runner started the kernel (:data:`TERMINAL_ENV`), the terminal gets a live
      tqdm line while the loop runs (when it is a terminal) and the final line when it ends.
    - nbval does not apply display updates (it keeps the first state), so a cell whose output
      nbval checks (``# NBVAL_CHECK_OUTPUT``) must not run a progress line: the notebooks run the
      loop in one cell and print its numbers in the next.
    - Code deeper in the loop adds numbers to the innermost open line with :meth:`current`
      (e.g. the decoder's held-out MSE), without a progress argument of its own.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True) -> None:
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.n = 0
        self.fields: dict[str, str] = {}
        self._terminal = enabled and os.environ.get(TERMINAL_ENV) == "1" and sys.__stderr__ is not None
        self._live: tqdm | None = None
        self._handle = None
        self._shown = 0.0

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        if self._terminal and sys.__stderr__ is not None and sys.__stderr__.isatty():
            self._live = tqdm(
                total=self.total, desc=self.desc, unit=self.unit, file=sys.__stderr__, leave=False, mininterval=0.5
            )
        shell = _ipython_kernel()
        if shell is not None:
            from IPython.display import display

            sys.stdout.flush()  # the cell's earlier prints first: the same order on every run
            self._handle = display({"text/plain": self.line()}, raw=True, display_id=True)
        _ACTIVE.append(self)
        return self

    def line(self) -> str:
        """The current state as one line: ``desc: n/total unit, key value, ...``."""
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit}", *(f"{k} {v}" for k, v in self.fields.items())]
        return ", ".join(parts)

    def update(self, n: int = 1, **fields: object) -> None:
        """Advance by ``n`` and set the numbers shown after the count (kept until changed)."""
        self.n += n
        self.note(**fields)
        if self._live is not None:
            self._live.update(n)

    def note(self, **fields: object) -> None:
        """Set numbers shown after the count, without advancing."""
        if not self.enabled:
            return
        self.fields.update({k: _fmt(v) for k, v in fields.items()})
        if self._live is not None:
            self._live.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.fields.items()), refresh=False)
        if self._handle is not None and time.monotonic() - self._shown >= 0.5:
            self._handle.update({"text/plain": self.line()}, raw=True)
            self._shown = time.monotonic()

    @staticmethod
    def current() -> Progress | None:
        """The innermost open progress line, if any."""
        return _ACTIVE[-1] if _ACTIVE else None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if not self.enabled:
            return
        _ACTIVE.remove(self)
        if self._live is not None:
            self._live.close()
        final = self.line()
        if self._handle is not None:
            self._handle.update({"text/plain": final}, raw=True)
        else:
            print(final, flush=True)
        if self._terminal and sys.__stderr__ is not None:
            print(final, file=sys.__stderr__, flush=True)


def _ipython_kernel():
    """The running IPython kernel's shell, or None (plain Python, pytest)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


class _LogHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` is at the time of each record (a notebook cell's output,
    pytest's capture), which lifts the live terminal lines out of the way of the record."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        live = [p._live for p in _ACTIVE if p._live is not None]
        for bar in live:
            bar.clear()
        super().emit(record)
        self.flush()
        for bar in live:
            bar.refresh()


def show_logs(level: int = logging.INFO) -> None:
    """Send the package's log records (``level`` and above) to stdout, once: in a notebook, its
    output (and, under the stage runner, the terminal too, which the kernel echoes to). Stdout,
    not stderr: a kernel flushes the two streams separately, so records on stderr could land
    before or after the cell's prints from run to run, and executed notebooks must be the same
    bytes on every run."""
    logger = logging.getLogger("nopeek_repro")
    if not any(isinstance(h, _LogHandler) for h in logger.handlers):
        handler = _LogHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch, fix the CPU thread count, ask for deterministic kernels and flush subnormal floats to zero.

    Flushing subnormals (``torch.set_flush_denormal``) is deterministic too and keeps CPU speed
    independent of the weights: a decoder whose sigmoid saturates carries subnormal gradients, and
    was measured 5x slower per step without it (4.2 s against 21.9 s for 300 steps here).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, when on CUDA
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) as a torch device; a clear error for CUDA without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError(
            "train.device = 'cuda': no CUDA device is available here; allowed: cpu, or auto "
            "(CUDA when available, else the CPU)"
        )
    return torch.device(device)


def n_batches(n: int, batch_size: int) -> int:
    """How many mini-batches :func:`batches` gives for ``n`` rows."""
    return n // batch_size + (1 if n % batch_size >= 2 else 0)


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled mini-batch indices for one epoch; a last batch smaller than 2 is dropped (DCOR needs 2)."""
    perm = torch.randperm(n, generator=generator)
    out = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) >= 2]


def make_layout(results: str | Path, figures_dir: str | Path | None = None) -> paths.Layout:
    """A :class:`nopeek_repro.paths.Layout` from paths relative to the repository root (figures default:
    results/figures).

    Every notebook starts with it, so it also turns on the package's log in the notebook
    (:func:`show_logs`)."""
    show_logs()
    res = paths.resolve(results)
    return paths.Layout(res, paths.resolve(figures_dir) if figures_dir is not None else res / "figures")


class UnsafeFileError(ValueError):
    """A weights file that ``torch.load(weights_only=True)`` refuses: it carries more than tensors."""


def load_weights(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)``: tensors only, no code runs. A file it refuses raises
    :class:`UnsafeFileError` naming the file, instead of torch's text (which suggests ``weights_only=False``)."""
    try:
        return torch.load(path, weights_only=True, map_location=map_location)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - UnpicklingError, RuntimeError: torch's own refusals
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        why = next(
            (ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[-1] if lines else type(err).__name__
        )
        raise UnsafeFileError(
            f"{path}: refused: not a plain weights file ({why[:160]}); do NOT load it "
            "with weights_only=False unless you trust where it came from (that runs any code it carries); "
            "re-create it with `dvc repro` (or `dvc checkout` for the committed one)"
        ) from None
