"""The defences a trained model can carry, and the name each run gets.

- ``none``: plain split learning (the baseline, ``alpha_dcor = 0``).
- ``nopeek``: the client adds ``alpha_dcor * DCOR(X, Z)`` to its loss (see :mod:`nopeek_repro.split`).
- ``noise``: the client adds U(-b, b) noise to the activations it sends, in training and at test
  time (the paper's uniform-noise baseline); ``b`` is ``noise``.

Run names are stable strings used as folder names and DVC stage items:
``baseline``, ``nopeek-a<alpha_dcor>``, ``noise-b<b>`` (numbers by :func:`nopeek_repro.config.sweep_label`, which
config also requires to equal the value as written: the DVC stage name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .config import sweep_label

Defence = Literal["none", "nopeek", "noise"]


@dataclass(frozen=True)
class RunSpec:
    """One trained configuration (all seeds share it)."""

    defence: Defence = "none"
    alpha_dcor: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.defence not in ("none", "nopeek", "noise"):
            raise ValueError(f"defence must be one of none, nopeek, noise; got {self.defence!r}")
        if self.alpha_dcor < 0 or self.noise < 0:
            raise ValueError("alpha_dcor and noise must be >= 0")
        if self.defence == "none" and (self.alpha_dcor or self.noise):
            raise ValueError("defence 'none' takes alpha_dcor = 0 and noise = 0")
        if self.defence == "nopeek" and (self.alpha_dcor <= 0 or self.noise):
            raise ValueError("defence 'nopeek' needs alpha_dcor > 0 and noise = 0")
        if self.defence == "noise" and (self.noise <= 0 or self.alpha_dcor):
            raise ValueError("defence 'noise' needs noise > 0 and alpha_dcor = 0")

    @property
    def name(self) -> str:
        if self.defence == "nopeek":
            return f"nopeek-a{sweep_label(self.alpha_dcor)}"
        if self.defence == "noise":
            return f"noise-b{sweep_label(self.noise)}"
        return "baseline"

    @property
    def short(self) -> str:
        """The run's key in the DVC metrics: ``base``, ``a<alpha_dcor>`` (NoPeek), ``b<noise>`` (uniform noise)."""
        return "base" if self.defence == "none" else self.name.split("-", 1)[1]

    @classmethod
    def from_name(cls, name: str) -> "RunSpec":
        """Inverse of :attr:`name`."""
        try:
            if name == "baseline":
                return cls()
            if name.startswith("nopeek-a"):
                return cls("nopeek", alpha_dcor=float(name[len("nopeek-a") :]))
            if name.startswith("noise-b"):
                return cls("noise", noise=float(name[len("noise-b") :]))
        except ValueError:
            pass
        raise ValueError(f"unknown run name {name!r}: expected baseline, nopeek-a<alpha_dcor> or noise-b<b>")


def all_runs(alpha_dcor: list[float], noise: list[float]) -> list[RunSpec]:
    """The baseline, the NoPeek sweep and the noise sweep, in that order."""
    return [
        RunSpec(),
        *(RunSpec("nopeek", alpha_dcor=a) for a in alpha_dcor),
        *(RunSpec("noise", noise=b) for b in noise),
    ]
