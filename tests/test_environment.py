"""environment.yml (conda) and pyproject.toml (pip) name the same packages."""

from __future__ import annotations

import re

import tomllib
import yaml

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_conda_and_pip_dependencies_agree(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pip_deps = {_name(r) for r in project["dependencies"]}
    for extra in ("notebooks", "tests"):
        pip_deps |= {_name(r) for r in project["optional-dependencies"][extra]}
    env = yaml.safe_load((root / "environment.yml").read_text())
    conda, pip_section = set(), []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
        else:
            conda.add(CONDA_NAMES.get(_name(dep), _name(dep)))
    conda.discard("python")
    conda.discard("pip")
    assert conda == pip_deps, f"only conda: {conda - pip_deps}; only pip: {pip_deps - conda}"
    # conda users then install the package itself, with its extras, from the checkout
    assert any(line.startswith("-e .[") and "notebooks" in line and "tests" in line for line in pip_section)
    assert any(_name(d) == "python" for d in env["dependencies"] if isinstance(d, str))


def test_torch_pins_agree(root):
    constraints = (root / "constraints.txt").read_text()
    assert "torch==2.14.1" in constraints and "torchvision==0.29.1" in constraints
