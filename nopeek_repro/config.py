"""Reading and validating ``params.yaml``, the single source of every experiment setting.

Each section of the file is a pydantic model with its allowed ranges. A wrong value stops
everything before any training with one :class:`ParamsError` that names the file, the
parameter, what was wrong and what is allowed, e.g.::

    params.yaml: nopeek.alpha_dcor[1] = -1.0: Input should be greater than or equal to 0

Unknown keys are errors too (a typo must not silently fall back to a default).
The notebooks build the same models from their parameters cells, so running a notebook by hand
with a bad value gives the same message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import paths

NonNegFloat = Annotated[float, Field(ge=0.0)]
Seed = Annotated[int, Field(ge=0)]


def _as_written(value: int | float) -> int | float:
    """A sweep value names its DVC stage and folders as written (``1000.0`` -> ``nopeek-a1000.0``),
    while run names use the shortest form (``nopeek-a1000``): whole numbers must be written as such."""
    if isinstance(value, float) and value.is_integer():
        raise ValueError(f"write whole numbers without a decimal point ({int(value)}, not {value}): "
                         "DVC names the stage and its output folders after the value as written")
    return value


SweepValue = Annotated[int | float, Field(gt=0.0), AfterValidator(_as_written)]

Dataset = Literal["mnist-sample", "mnist", "fashion-mnist", "cifar10", "utkface", "folder", "npz"]
Arch = Literal["cnn", "resnet29", "utkface"]
Device = Literal["cpu", "cuda", "auto"]


class ParamsError(ValueError):
    """A bad experiment setting: one message naming the parameter and the allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    """Which data set, and how the held-out test part is drawn (see :mod:`nopeek_repro.data`).

    ``test_fraction`` applies to the data sets without an official test split (mnist-sample,
    utkface, folder, npz); mnist, fashion-mnist and cifar10 use their official train/test files.
    ``val_fraction`` of the training part, drawn with ``split_seed``, becomes the **validation
    part**: never trained on by the split models, never leaked to the attacker; every selection
    (the chosen NoPeek run, the judge's early stopping) is made on it, every reported number is on
    the test part.
    """

    dataset: Dataset = "mnist-sample"
    source: str | None = Field(None, validate_default=True,
                               description="folder / npz: the path under data/ (e.g. 'custom' or 'custom.npz')")
    image_size: int | None = Field(None, ge=8, le=512, description="resize images to this square size (None = keep)")
    task: Literal["gender", "race"] = "gender"  # utkface: which label the model predicts
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    val_fraction: float = Field(0.1, gt=0.0, le=0.5,
                                description="share of the training part held out as validation (every selection)")
    split_seed: Seed = 0
    n_train: int | None = Field(None, ge=16, description="cap on training images (None = all)")
    n_test: int | None = Field(None, ge=16, description="cap on test images (None = all)")

    @field_validator("source")
    @classmethod
    def _source_matches_dataset(cls, source: str | None, info: ValidationInfo) -> str | None:
        dataset = info.data.get("dataset")
        if dataset in ("folder", "npz") and not source:
            what = "a folder of class sub-folders" if dataset == "folder" else "an .npz file with arrays x and y"
            raise ValueError(f"needed for data.dataset = {dataset!r}: the path under data/ of {what}")
        return source


class ModelParams(_Section):
    """The split network: an architecture and the cut point (the client holds the units up to the cut).

    ``cut_layer`` is a unit name of the architecture (``nopeek_repro.models.cut_points``), a
    1-based count of client units, or None for the architecture's default cut
    (``nopeek_repro.models.default_cut``); ``depth`` sets the ResNet-v2 depth (9k + 2) of
    resnet29/utkface.
    """

    arch: Arch = "cnn"
    depth: int | None = Field(None, ge=11, le=200, description="ResNet-v2 depth, 9k+2 (None = the architecture's own)")
    cut_layer: int | str | None = Field(1, validate_default=True)

    @field_validator("cut_layer")
    @classmethod
    def _cut_exists(cls, cut: int | str | None, info: ValidationInfo) -> int | str | None:
        from . import models

        arch = info.data.get("arch")
        if arch is None or cut is None:  # an invalid arch is reported itself; None is the arch's default cut
            return cut
        depth = info.data.get("depth")
        names = models.cut_points(arch, **({} if depth is None else {"depth": depth}))
        if (isinstance(cut, int) and not 1 <= cut <= len(names)) or (isinstance(cut, str) and cut not in names):
            raise ValueError(f"not a cut point of {arch}; allowed: {', '.join(names)}, or 1..{len(names)}")
        return cut

    def options(self) -> dict[str, Any]:
        """Keyword options for :func:`nopeek_repro.models.build_split_model`."""
        return {} if self.depth is None else {"depth": self.depth}


class TrainParams(_Section):
    """Split training, shared by the baseline and every defended model."""

    seeds: list[Seed] = Field([0], min_length=1)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    lr_milestones: list[Annotated[int, Field(ge=1)]] = Field([], description="epochs at which lr is multiplied by lr_gamma")
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0)
    alpha_task: float = Field(1.0, gt=0.0)
    threads: int = Field(2, ge=1)
    device: Device = "cpu"  # auto: CUDA when available (paper-scale runs); the default run stays on the CPU


class NopeekParams(_Section):
    """The NoPeek sweep: one model per ``alpha_dcor`` (0 would be the baseline)."""

    alpha_dcor: list[SweepValue] = Field([1], min_length=1)


class NoiseParams(_Section):
    """The uniform-noise baseline defence: U(-b, b) on the activations, one model per b."""

    scale: list[SweepValue] = Field([1], min_length=1)


class AttackParams(_Section):
    """The attacks on leaked (X, Z) training pairs, scored on held-out test images, and their judge.

    Three attacks per model and seed, all on the same leaked pairs (:mod:`nopeek_repro.attacks`):
    a learned decoder, a ridge regression Z -> X and the no-information baseline (the mean leaked
    image). ``holdout_fraction`` of the leaked pairs is held out from fitting: the decoder's early
    stopping, the ridge regulariser and the choice of the strongest attack are made on it.
    The decoder (Adam at ``decoder_lr``) is evaluated on the held-out slice every ``eval_every``
    optimiser steps; an evaluation improves when the held-out MSE falls more than
    ``min_improvement`` (relative) below that of the last evaluation that improved; after ``patience`` evaluations without one
    its learning rate drops (at most ``lr_drops`` times), then it stops (best weights kept), or at
    ``max_steps`` (reported when hit). ``ridge_grid``: regularisers as fractions of the mean squared row norm of
    the centred Z. ``leak_sweep`` adds attacks at other leak fractions (the leak-fraction figure),
    on the first ``sweep_seeds`` seeds (null = all); ``authors_split`` is the share of the
    test-set pairs the authors' protocol trains on (0.9; the rest scores it), on the same seeds.
    The judge (attack accuracy) is its own network (:func:`nopeek_repro.models.build_judge`), seed
    ``classifier_seed`` (outside ``train.seeds``), trained on clean training images for at most
    ``classifier_epochs`` epochs with early stopping on the validation part (``classifier_patience``),
    Adam at ``classifier_lr``. ``batch_size`` is the decoder's and the judge's mini-batch.
    """

    leak_fraction: float = Field(0.5, gt=0.0, le=1.0)
    leak_sweep: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field([], description="extra leak fractions")
    sweep_seeds: int | None = Field(None, ge=1, description="the leak sweep and the authors' protocol: first N seeds")
    authors_split: float | None = Field(0.9, gt=0.0, lt=1.0, description="authors' 90/10 protocol (None = skip)")
    decoder: Literal["simple", "resnet"] = "simple"
    decoder_width: int = Field(32, ge=4, le=512)
    holdout_fraction: float = Field(0.1, gt=0.0, le=0.5, description="leaked pairs held out for selection")
    max_steps: int = Field(3000, ge=1, description="decoder optimiser steps at most")
    eval_every: int = Field(25, ge=1, description="decoder steps between held-out evaluations")
    patience: int = Field(4, ge=1, description="held-out evaluations without improvement before a drop or the stop")
    min_improvement: float = Field(0.01, ge=0.0, lt=1.0, description="relative fall of the held-out MSE that counts")
    lr_drops: int = Field(2, ge=0, description="decoder learning-rate drops at plateaus before it stops")
    decoder_lr: float = Field(1e-2, gt=0.0, description="Adam, the decoder")
    ridge_grid: list[Annotated[float, Field(gt=0.0)]] = Field(
        [1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e4], min_length=1)
    batch_size: int = Field(64, ge=2)
    classifier_lr: float = Field(3e-3, gt=0.0, description="Adam, the judge")
    n_examples: int = Field(8, ge=1, le=64)
    classifier_epochs: int = Field(30, ge=1, description="the judge's epochs at most")
    classifier_patience: int = Field(3, ge=1, description="the judge: epochs without validation gain before stopping")
    classifier_seed: Seed = 1000


class LeakageParams(_Section):
    """Leakage DCOR(X, Z) over the whole test set, computed block by block."""

    block_size: int = Field(1024, ge=1)


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    nopeek: NopeekParams = NopeekParams()
    noise: NoiseParams = NoiseParams()
    attack: AttackParams = AttackParams()
    leakage: LeakageParams = LeakageParams()

    @model_validator(mode="after")
    def _judge_is_independent(self) -> "Params":
        if self.attack.classifier_seed in self.train.seeds:
            raise ValueError(
                f"attack.classifier_seed = {self.attack.classifier_seed} is also in train.seeds "
                f"{list(self.train.seeds)}: the judge must not share initial weights or batch order with an "
                "attacked model; allowed: any seed >= 0 outside train.seeds")
        return self


def _format(err: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = prefix
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        got = "" if e["type"] == "missing" or not e["loc"] else f" = {e['input']!r}"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter (check the spelling; see params.yaml for the allowed keys)"
        lines.append(f"{source}: {loc}{got}: {msg}" if loc else f"{source}: {msg}")
    return lines[0] if len(lines) == 1 else "; ".join(lines)


def validate(model: type[_Section], values: dict[str, Any], source: str = "parameters", prefix: str = "") -> Any:
    """Build a params model, turning pydantic's errors into one :class:`ParamsError` line."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise ParamsError(_format(err, source, prefix)) from None


def load(path: str | Path | None = None) -> Params:
    """Read and validate ``params.yaml`` (default: the one at the repository root)."""
    p = paths.resolve(path or "params.yaml")
    if not p.is_file():
        raise ParamsError(f"{p}: parameters file not found (expected params.yaml at the repository root)")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{p.name}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{p.name}: must be a mapping of sections (data, model, train, ...)")
    return validate(Params, raw, source=p.name)


def main(argv: list[str] | None = None) -> int:
    """``python -m nopeek_repro.config check [FILE]``: validate a parameters file (exit 2 with one line if bad)."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.config", description=main.__doc__)
    ap.add_argument("command", choices=["check"])
    ap.add_argument("file", nargs="?", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        load(Path(args.file).resolve() if Path(args.file).exists() else args.file)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.file}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
