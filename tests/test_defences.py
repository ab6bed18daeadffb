from __future__ import annotations

import pytest

from nopeek_repro.defences import RunSpec, all_runs


def test_names_round_trip():
    for spec in all_runs([0.5, 10, 1000], [1, 2.5]):
        assert RunSpec.from_name(spec.name) == spec
    assert [r.name for r in all_runs([10], [2])] == ["baseline", "nopeek-a10", "noise-b2"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(defence="nopeek"), "needs alpha_dcor > 0"),
        (dict(defence="noise", noise=0), "needs noise > 0"),
        (dict(defence="none", alpha_dcor=1), "takes alpha_dcor = 0"),
        (dict(defence="laplace"), "must be one of none, nopeek, noise"),
    ],
)
def test_invalid_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunSpec(**kwargs)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown run name 'nopeek-aX'"):
        RunSpec.from_name("nopeek-aX")
