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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import paths

NonNegFloat = Annotated[float, Field(ge=0.0)]
Seed = Annotated[int, Field(ge=0)]

DATASETS = ("mnist-sample",)
CUT_LAYERS = (1, 2)


class ParamsError(ValueError):
    """A bad experiment setting: one message naming the parameter and the allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    """Which data set, and how the held-out test part is drawn."""

    dataset: Literal["mnist-sample"] = "mnist-sample"
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: Seed = 0
    n_train: int | None = Field(None, ge=16, description="cap on training images (None = all)")
    n_test: int | None = Field(None, ge=16, description="cap on test images (None = all)")


class ModelParams(_Section):
    """The split CNN: the client holds conv blocks 1..cut_layer, the server the rest."""

    cut_layer: Literal[1, 2] = 1


class TrainParams(_Section):
    """Split training, shared by the baseline and every defended model."""

    seeds: list[Seed] = Field([0], min_length=1)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    alpha_task: float = Field(1.0, gt=0.0)
    threads: int = Field(2, ge=1)


class NopeekParams(_Section):
    """The NoPeek sweep: one model per ``alpha_dcor`` (0 would be the baseline)."""

    alpha_dcor: list[Annotated[float, Field(gt=0.0)]] = Field([1.0], min_length=1)


class NoiseParams(_Section):
    """The uniform-noise baseline defence: U(-b, b) on the activations, one model per b."""

    scale: list[Annotated[float, Field(gt=0.0)]] = Field([1.0], min_length=1)


class AttackParams(_Section):
    """The decoder attack on leaked (X, Z) training pairs, scored on held-out test images."""

    leak_fraction: float = Field(0.5, gt=0.0, le=1.0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    n_examples: int = Field(8, ge=1, le=64)


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


def _format(err: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = prefix
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        got = "" if e["type"] == "missing" else f" = {e['input']!r}"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter (check the spelling; see params.yaml for the allowed keys)"
        lines.append(f"{source}: {loc}{got}: {msg}")
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
