"""The experiment settings: declared, valued and validated here; ``params.yaml`` is written from them.

Each section of ``params.yaml`` is a pydantic model below. A field is declared once, with its
allowed range, its value in the **default run** (the field's default) and a one-line description.
``params.yaml`` is generated from these models (``python -m nopeek_repro.config write``; a test
checks that the committed file is what they give), so adding a setting is one field here plus
that command. A named parameter set in ``params/`` is an **overlay**: only the values that differ
from the default run, merged onto it by ``write --overlay FILE`` (``kit.py repro --params FILE``);
the merged file is what DVC sees.

A wrong value stops everything before any training with one :class:`ParamsError` that names the
file, the parameter, what was wrong and what is allowed, e.g.::

    params.yaml: nopeek.alpha_dcor[1] = -1.0: Input should be greater than or equal to 0

Unknown keys are errors too (a typo must not silently fall back to a default). The notebooks
validate the whole sections they are given with the same models (missing keys take the default
run's values), so running a notebook by hand with a bad value gives the same message.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import paths

NonNegFloat = Annotated[float, Field(ge=0.0)]
Seed = Annotated[int, Field(ge=0)]


SWEEP_MAX = 100_000
"""The largest sweep value (alpha_dcor, noise b): far beyond any published setting (10,000); larger values
overflow float32 in training or leave nothing of Z."""


def sweep_label(value: int | float) -> str:
    """The one name of a sweep value in run names and folders (``nopeek-a<label>``): ``%g``, 6 significant digits."""
    return f"{value:g}"


def _sweep_value(value: Any) -> int | float:
    """A sweep value (alpha_dcor, noise b): a plain positive number, at most :data:`SWEEP_MAX`, whose run name
    (:func:`sweep_label`) is the value as written, which DVC names the stage and its output folders after."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (YAML reads a number such as 1e3 without a decimal point as text: write 1000 or 1.0e+3)"
        raise ValueError(
            f"must be a plain number written in digits (e.g. 10 or 0.5){hint if isinstance(value, str) else ''}"
        )
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if value <= 0:
        raise ValueError("must be greater than 0")
    if value > SWEEP_MAX:
        raise ValueError(f"must be at most {SWEEP_MAX} (larger values overflow float32 in training or drown Z)")
    if isinstance(value, float) and value.is_integer():
        raise ValueError(
            f"write whole numbers without a decimal point ({int(value)}, not {value}): "
            "DVC names the stage and its output folders after the value as written"
        )
    if sweep_label(value) != str(value):
        raise ValueError(
            f"has more than 6 significant digits: runs are named with 6 significant digits ({sweep_label(value)}) "
            f"and DVC names the stage after the value as written ({value}); write at most 6 significant digits"
        )
    return value


def _unique(values: list[Any]) -> list[Any]:
    """A list of sweep values or seeds: each one model (or point), so each listed once."""
    seen = set()
    for v in values:
        key = repr(v)
        if key in seen:
            raise ValueError(f"duplicate value {v}: each value is one model (or point); list each once")
        seen.add(key)
    return values


SweepValue = Annotated[int | float, PlainValidator(_sweep_value)]
Unique = AfterValidator(_unique)

Dataset = Literal["mnist-sample", "digits", "mnist", "fashion-mnist", "cifar10", "utkface", "folder", "npz"]
Arch = Literal["cnn", "resnet29", "utkface"]
Device = Literal["cpu", "cuda", "auto"]


class ParamsError(ValueError):
    """A bad experiment setting: one message naming the parameter and the allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    """Which data set, and how its test and validation parts are drawn (see :mod:`nopeek_repro.data`).

    ``test_fraction`` applies to the data sets without an official test split (mnist-sample,
    utkface, folder, npz); mnist, fashion-mnist and cifar10 use their official train/test files.
    ``val_fraction`` of the training part, drawn with ``split_seed``, becomes the **validation
    part**: never trained on by the split models, never leaked to the attacker; every selection
    (the chosen NoPeek run, the judge's early stopping) is made on it, every reported number is on
    the test part.
    """

    dataset: Dataset = Field(
        "mnist-sample",
        description="mnist-sample (embedded), digits (scikit-learn's 8x8, offline), mnist, fashion-mnist, cifar10, "
        "utkface, folder, npz",
    )
    source: str | None = Field(
        None, validate_default=True, description="folder / npz only: the path under data/ of your own images"
    )
    image_size: int | None = Field(
        None,
        ge=8,
        le=512,
        description="resize to this square size (utkface; folders of mixed sizes); null = keep (digits: 16)",
    )
    task: Literal["gender", "race"] = Field("gender", description="utkface only: the label the model predicts")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="held-out test part: never trained on, never leaked to the attacker"
    )
    val_fraction: float = Field(
        0.1, gt=0.0, le=0.5, description="of the training part: the validation part, where every selection is made"
    )
    split_seed: Seed = Field(0, description="seed of the test and validation draws")
    n_train: int | None = Field(None, ge=16, description="cap on the training images (null = all)")
    n_test: int | None = Field(None, ge=16, description="cap on the test images (null = all)")

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
    1-based count of client units, or None for the architecture's own default cut
    (``nopeek_repro.models.default_cut``: cnn block1, resnet29 stage2.block1, utkface the last
    block of stage 0); ``depth`` sets the ResNet-v2 depth (9k + 2) of resnet29/utkface. The default run
    cuts the cnn after block 2, the design-space study's choice; another architecture needs its own
    ``cut_layer`` (a named set in ``params/`` gives it).
    """

    arch: Arch = Field("cnn", description="cnn (2 conv blocks), resnet29 (the authors' CIFAR-10 ResNet-v2), utkface")
    depth: int | None = Field(
        None, ge=11, le=200, description="ResNet-v2 depth 9k+2 for resnet29 / utkface (null = the architecture's own)"
    )
    cut_layer: int | str | None = Field(
        "block2",
        validate_default=True,
        description="the last client unit (name or 1-based count; null = the architecture's default); "
        "block2 (Z = 32x7x7) is the design-space study's choice (README h)",
    )
    at_cut: Literal["none", "batchnorm", "leakyrelu"] = Field(
        "none",
        description="what ends the client: none, batchnorm (no affine parameters, appended) or leakyrelu "
        "(its last ReLU becomes LeakyReLU 0.01)",
    )

    @field_validator("cut_layer")
    @classmethod
    def _cut_exists(cls, cut: int | str | None, info: ValidationInfo) -> int | str | None:
        arch = info.data.get("arch")
        if arch is None or cut is None:  # an invalid arch is reported itself; None is the arch's default cut
            return cut
        from . import models

        depth = info.data.get("depth")
        names = models.cut_points(arch, **({} if depth is None else {"depth": depth}))
        if (isinstance(cut, int) and not 1 <= cut <= len(names)) or (isinstance(cut, str) and cut not in names):
            raise ValueError(f"not a cut point of {arch}; allowed: {', '.join(names)}, or 1..{len(names)}")
        return cut

    def options(self) -> dict[str, Any]:
        """Keyword options for :func:`nopeek_repro.models.build_split_model`."""
        return {
            **({} if self.depth is None else {"depth": self.depth}),
            **({} if self.at_cut == "none" else {"at_cut": self.at_cut}),
        }


class TrainParams(_Section):
    """Split training, shared by the baseline and every defended model."""

    seeds: Annotated[list[Seed], Unique] = Field(
        [0, 1, 2], min_length=1, description="one model per seed, for every defence"
    )
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0, description="Adam, the server and (unless client_lr) the client")
    lr_milestones: Annotated[list[Annotated[int, Field(ge=1)]], Unique] = Field(
        [], description="epochs at which the learning rate is multiplied by lr_gamma (step decay)"
    )
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0)
    alpha_task: float = Field(1.0, gt=0.0, description="weight of the cross-entropy term")
    alpha_ramp: float = Field(
        0.0,
        ge=0.0,
        description="epochs over which alpha_dcor rises linearly from 0 (0 = the full weight from the start)",
    )
    client_optimizer: Literal["adam", "sgd"] = Field(
        "adam", description="the client's optimiser: adam, or sgd (momentum 0.9); the server's is Adam"
    )
    client_lr: float | None = Field(None, gt=0.0, description="the client's learning rate (null = lr)")
    threads: int = Field(2, ge=1, description="torch CPU threads (fixed for bitwise-repeatable CPU runs)")
    device: Device = Field("cpu", description="cpu, cuda, or auto (CUDA when available)")


class NopeekParams(_Section):
    """The NoPeek sweep: one model per ``alpha_dcor`` (0 would be the baseline)."""

    alpha_dcor: Annotated[list[SweepValue], Unique] = Field(
        [3, 10, 30], min_length=1, description="one NoPeek model per value: L = alpha_dcor*DCOR + alpha_task*CE"
    )
    distance: Literal["euclidean", "squared"] = Field(
        "euclidean",
        description="the DCOR the client trains with: euclidean (the paper's) or squared (several public codes; = sqrt RV)",
    )


class NoiseParams(_Section):
    """The uniform-noise baseline defence: U(-b, b) on the activations, one model per b."""

    scale: Annotated[list[SweepValue], Unique] = Field(
        [2, 8, 32, 128], min_length=1, description="one uniform-noise model per b: Z + U(-b, b), train and test time"
    )


class AttackParams(_Section):
    """The attacks on leaked (X, Z) training pairs, scored on held-out test images, and their judge.

    Three attacks per model and seed, all on the same leaked pairs (:mod:`nopeek_repro.attacks`):
    a learned decoder, a ridge regression Z -> X and the no-information baseline (the mean leaked
    image). ``holdout_fraction`` of the leaked pairs is held out from fitting: the decoder's early
    stopping, the ridge regulariser and the choice of the strongest attack are made on it.
    The decoder (Adam at ``decoder_lr``) is evaluated on the held-out slice every ``eval_every``
    optimiser steps; an evaluation improves when the held-out MSE falls more than
    ``min_improvement`` (relative) below that of the last evaluation that improved; after
    ``patience`` evaluations without one its learning rate drops (at most ``lr_drops`` times),
    then it stops (best weights kept), or at ``max_steps`` (reported when hit). ``ridge_grid``:
    regularisers as fractions of the mean squared row norm of the centred Z. ``leak_sweep`` adds
    attacks at other leak fractions (the leak-fraction figure), on the first ``sweep_seeds`` seeds
    (null = all); ``authors_split`` is the share of the test-set pairs the authors' protocol trains
    on (0.9; the rest scores it), on the same seeds (null = skip).
    The judge (attack accuracy) is its own network (:func:`nopeek_repro.models.build_judge`), seed
    ``classifier_seed`` (outside ``train.seeds``), trained on clean training images for at most
    ``classifier_epochs`` epochs with early stopping on the validation part (``classifier_patience``),
    Adam at ``classifier_lr``. ``batch_size`` is the decoder's and the judge's mini-batch.
    """

    leak_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="share of the training set whose (X, Z) pairs the attacker holds"
    )
    leak_sweep: Annotated[list[Annotated[float, Field(gt=0.0, le=1.0)]], Unique] = Field(
        [0.01], description="further leak fractions, attacked too (the leak-fraction figure)"
    )
    sweep_seeds: int | None = Field(
        1, ge=1, description="the leak sweep and the authors' protocol attack the first N seeds (null = all)"
    )
    authors_split: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="the authors' protocol: train on this share of the test-set pairs, "
        "score on the rest (0.9 as theirs; null = skip)",
    )
    holdout_fraction: float = Field(
        0.1,
        gt=0.0,
        le=0.5,
        description="leaked pairs held out from fitting: early stopping, ridge regulariser, strongest attack",
    )
    decoder: Literal["simple", "resnet"] = Field(
        "simple", description="simple (small upsampling CNN) or resnet (the authors' ResNet generator)"
    )
    decoder_width: int = Field(32, ge=4, le=512)
    max_steps: int = Field(1500, ge=1, description="decoder optimiser steps at most (reported when hit)")
    eval_every: int = Field(25, ge=1, description="decoder steps between evaluations on the held-out slice")
    patience: int = Field(
        4, ge=1, description="evaluations without improvement before the decoder's lr drops (or it stops)"
    )
    min_improvement: float = Field(
        0.01, ge=0.0, lt=1.0, description="an evaluation improves when the held-out MSE falls by more than this share"
    )
    lr_drops: int = Field(2, ge=0, description="learning-rate drops (x 0.2) at plateaus; the next plateau stops it")
    ridge_grid: Annotated[list[Annotated[float, Field(gt=0.0)]], Unique] = Field(
        [1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e4],
        min_length=1,
        description="ridge regularisers, relative to the mean squared norm of the centred Z",
    )
    batch_size: int = Field(64, ge=2, description="the decoder's and the judge's mini-batch")
    decoder_lr: float = Field(1e-2, gt=0.0, description="Adam, the decoder")
    classifier_lr: float = Field(3e-3, gt=0.0, description="Adam, the judge")
    n_examples: int = Field(10, ge=1, le=64, description="test images kept for the reconstruction figure")
    classifier_epochs: int = Field(30, ge=1, description="the judge: epochs at most, early stopping on validation")
    classifier_patience: int = Field(3, ge=1, description="the judge: epochs without a validation gain before it stops")
    classifier_seed: Seed = Field(1000, description="the judge's own seed: must not be one of train.seeds")


class LeakageParams(_Section):
    """Leakage DCOR(X, Z) over the whole test set, computed block by block."""

    block_size: int = Field(1024, ge=1, description="rows per block when computing DCOR(X, Z) over the test set")


class StudyParams(_Section):
    """The design-space study (opt-in: ``python3 kit.py study``): one axis at a time from a reference setting.

    The reference is the default run (``params.yaml``) with the overlay file ``reference`` merged in: the
    kit's default before the study chose a new one (``params/cut-block1.yaml``), so the study's numbers do
    not move with the default run. Each axis below lists the values that replace the reference's one
    setting (:mod:`nopeek_repro.study`); every setting trains the baseline and NoPeek at every
    ``alpha_dcor``, with every seed, and attacks each model with the strongest of the kit's attacks
    (main protocol). The ``dataset`` axis runs on the default run's setting, not the reference's.
    ``choose_from`` lists the axes whose settings may become the default run.
    """

    reference: str = Field(
        "params/cut-block1.yaml",
        min_length=1,
        description="overlay (a file in params/) merged onto the default run: the reference (the pre-study default)",
    )
    alpha_dcor: Annotated[list[SweepValue], Unique] = Field(
        [1, 3, 10, 30, 100], min_length=1, description="NoPeek weights at every setting (and alpha 0, the baseline)"
    )
    seeds: Annotated[list[Seed], Unique] = Field(
        [0, 1, 2], min_length=1, description="one model per seed at every point"
    )
    cut_layer: Annotated[list[int | str], Unique] = Field(["block2"], description="axis: model.cut_layer")
    batch_size: Annotated[list[Annotated[int, Field(ge=2)]], Unique] = Field(
        [128, 256], description="axis: train.batch_size (the per-batch DCOR's n)"
    )
    alpha_ramp: Annotated[list[Annotated[float, Field(gt=0.0)]], Unique] = Field(
        [1.0], description="axis: train.alpha_ramp (epochs of linear rise)"
    )
    at_cut: Annotated[list[Literal["batchnorm", "leakyrelu"]], Unique] = Field(
        ["batchnorm", "leakyrelu"], description="axis: model.at_cut"
    )
    client_optimizer: Annotated[list[Literal["sgd", "adam"]], Unique] = Field(
        ["sgd"], description="axis: train.client_optimizer"
    )
    sgd_lr: float = Field(
        0.01, gt=0.0, description="the client's learning rate on the client_optimizer axis (train.client_lr)"
    )
    epochs: Annotated[list[Annotated[int, Field(ge=1)]], Unique] = Field([20], description="axis: train.epochs")
    task: Annotated[list[Literal["lt5"]], Unique] = Field(
        ["lt5"], description="axis: the labels (lt5: digit < 5, two classes, same images)"
    )
    distance: Annotated[list[Literal["squared", "euclidean"]], Unique] = Field(
        ["squared"], description="axis: nopeek.distance (the peers' variant)"
    )
    dataset: Annotated[list[Literal["digits"]], Unique] = Field(
        ["digits"], description="axis: data.dataset, on the default run's setting"
    )
    choose_from: Annotated[list[str], Unique] = Field(
        ["reference", "cut_layer", "batch_size", "alpha_ramp", "at_cut", "client_optimizer"],
        description="axes whose settings may become the default run (see the README: why not the others)",
    )
    accuracy_margin: float = Field(
        0.02,
        ge=0.0,
        lt=1.0,
        description="a chosen NoPeek point's validation accuracy is at most this below its baseline's",
    )


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    nopeek: NopeekParams = NopeekParams()
    noise: NoiseParams = NoiseParams()
    attack: AttackParams = AttackParams()
    leakage: LeakageParams = LeakageParams()
    study: StudyParams = StudyParams()

    @model_validator(mode="after")
    def _judge_is_independent(self) -> "Params":
        if self.attack.classifier_seed in self.train.seeds:
            raise ValueError(
                f"attack.classifier_seed = {self.attack.classifier_seed} is also in train.seeds "
                f"{list(self.train.seeds)}: the judge must not share initial weights or batch order with an "
                "attacked model; allowed: any seed >= 0 outside train.seeds"
            )
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
        elif e["type"] == "list_type":
            msg = "must be a list (in YAML: [10, 30] or one '- 10' line per value)"
        lines.append(f"{source}: {loc}{got}: {msg}" if loc else f"{source}: {msg}")
    return lines[0] if len(lines) == 1 else "; ".join(lines)


def validate(model: type[_Section], values: dict[str, Any], source: str = "parameters", prefix: str = "") -> Any:
    """Build a params model, turning pydantic's errors into one :class:`ParamsError` line."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise ParamsError(_format(err, source, prefix)) from None


def _read_yaml(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise ParamsError(f"{p}: parameters file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{p.name}: not valid YAML{at}: {what}") from None
    sections = ", ".join(Params.model_fields)
    if not isinstance(raw, dict):
        raise ParamsError(f"{p.name}: must be a mapping of sections ({sections}), each a mapping of keys")
    for key, value in raw.items():
        if key not in Params.model_fields:
            raise ParamsError(f"{p.name}: {key}: unknown section; allowed: {sections}")
        if not isinstance(value, dict):
            raise ParamsError(f"{p.name}: {key} = {value!r}: must be a mapping of keys (see params.yaml)")
    return raw


def load(path: str | Path | None = None) -> Params:
    """Read and validate ``params.yaml`` (default: the one at the repository root) or an overlay.

    A key or section the file leaves out takes the default run's value, so an overlay (a partial
    file) loads as the default run with its values merged in.
    """
    p = paths.resolve(path or "params.yaml")
    if not p.is_file():
        where = " (expected params.yaml at the repository root)" if p.name == "params.yaml" else ""
        raise ParamsError(f"{p}: parameters file not found{where}")
    return validate(Params, _read_yaml(p), source=p.name)


HEADER = """\
# Every experiment setting of the pipeline: {what}.
# Written by `python -m nopeek_repro.config write{args}` from the models in nopeek_repro/config.py,
# which declare each setting, its allowed range, its default-run value and the comment shown here.
# One run with another value: `dvc exp run -S section.key=value` (e.g. -S train.epochs=10).
# Paper-scale settings: the overlays in params/ (`python3 kit.py repro --params params/cifar10-paper.yaml`).
"""


def _yaml_lines(key: str, value: Any) -> list[str]:
    """``key: value`` in the layout DVC writes back after ``dvc exp run -S`` (block lists, blank nulls)."""
    if value is None:
        return [f"{key}:"]
    if isinstance(value, list) and value:
        return [f"{key}:"] + [f"- {yaml.safe_dump([v], default_flow_style=True).strip()[1:-1]}" for v in value]
    return [f"{key}: {yaml.safe_dump([value], default_flow_style=True, width=10_000).strip()[1:-1]}"]


def render(params: Params, source: str | None = None) -> str:
    """``params`` as the text of ``params.yaml``: sections in declaration order, each key with its comment.

    The layout is the one DVC itself writes when ``dvc exp run -S`` changes a value (lists in block
    style, a null as an empty value, comments kept), so an experiment changes only its own lines.
    """
    what = "the default run" if source is None else f"the default run with the overlay {source}"
    out = [HEADER.format(what=what, args="" if source is None else f" --overlay {source}")]
    for name in Params.model_fields:
        section = getattr(params, name)
        doc = re.sub(
            r":\w+:`([^`]*)`|``([^`]*)``",
            lambda m: m.group(1) or m.group(2),
            (type(section).__doc__ or "").strip().split("\n")[0],
        )
        # DVC drops a blank line that follows a list: none there, so its rewrite changes nothing else
        gap = "" if out[-1].startswith("  - ") else "\n"
        out.append(f"{gap}{name}:  # {doc}\n" if doc else f"{gap}{name}:\n")
        entries = [
            (_yaml_lines(key, getattr(section, key)), info.description)
            for key, info in type(section).model_fields.items()
        ]
        width = min(max(len(lines[0]) for lines, _ in entries), 26) + 2  # aligned comments, unless a value is long
        for lines, desc in entries:
            first = f"  {lines[0]:<{width}}  # {desc}" if desc else f"  {lines[0]}"
            out += [first.rstrip() + "\n", *(f"  {line}\n" for line in lines[1:])]
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m nopeek_repro.config check [FILE]``: validate a parameters file (exit 2 with one line if bad).

    ``python -m nopeek_repro.config write [--overlay FILE] [--check]``: write ``params.yaml`` from the
    models' default-run values, with the overlay FILE's values merged in (``--check``: only compare,
    exit 1 when the file differs).
    """
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.config", description=main.__doc__)
    ap.add_argument("command", choices=["check", "write"])
    ap.add_argument("file", nargs="?", default="params.yaml")
    ap.add_argument("--overlay", help="write: a partial params file merged onto the default run")
    ap.add_argument("--check", action="store_true", help="write: compare instead of writing")
    args = ap.parse_intermixed_args(argv)
    try:
        if args.command == "check":
            load(Path(args.file).resolve() if Path(args.file).exists() else args.file)
            print(f"{args.file}: ok")
            return 0
        source = None if args.overlay is None else Path(args.overlay).as_posix()
        text = render(Params() if args.overlay is None else load(Path(args.overlay).resolve()), source)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = paths.resolve(args.file)
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(
                f"{args.file} differs from what the models in nopeek_repro/config.py give: run "
                f"`python -m nopeek_repro.config write{'' if source is None else ' --overlay ' + source}`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.file}: up to date")
        return 0
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(target)  # never a half-written params.yaml
    print(f"wrote {args.file}" + ("" if source is None else f" (default run + {source})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
