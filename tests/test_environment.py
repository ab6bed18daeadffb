"""The environment files agree: environment.yml (conda) and pyproject.toml (pip) name the same
packages, and requirements.lock (what kit.py installs) pins every one of them, with hashes, at a
version that satisfies both. Reads files only: no network, no install."""

from __future__ import annotations

import importlib.util
import re

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
LOCK_PYTHON = "3.11"  # the lock is resolved for CPython 3.11 on Linux x86_64 (kit.lock_applies)
# what pip-compile resolves markers against (the lock is made on such a machine)
LOCK_ENV = {
    "python_version": LOCK_PYTHON,
    "python_full_version": f"{LOCK_PYTHON}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _project(root) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())


def _pip_requirements(root) -> list[Requirement]:
    """pyproject.toml's dependencies and every extra (kit.py installs them all)."""
    project = _project(root)["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def _lock_entries(root) -> dict[str, tuple[Version, list[str]]]:
    """requirements.lock as {canonical name: (pinned version, hashes)}."""
    text = (root / "requirements.lock").read_text()
    entries = {}
    for block in re.split(r"\n(?=\S)", text):  # an entry starts in column 0; its hashes and comments are indented
        if block.startswith("#") or not block.strip():
            continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        assert m, f"requirements.lock: not an exact pin: {block.splitlines()[0]!r}"
        name = canonicalize_name(m.group(1))
        assert name not in entries, f"requirements.lock pins {name} twice"
        entries[name] = (Version(m.group(2)), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def _lock_header_command(root) -> str:
    m = re.search(r"^#\s+(pip-compile .+)$", (root / "requirements.lock").read_text(), re.M)
    assert m, "requirements.lock has no pip-compile command in its header"
    return m.group(1).strip()


def _conda_specs(root) -> tuple[dict[str, str], list[str]]:
    """environment.yml's conda dependencies as {PyPI name: version spec}, and its pip section."""
    env = yaml.safe_load((root / "environment.yml").read_text())
    conda, pip_section = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
        else:
            name = _name(dep)
            conda[CONDA_NAMES.get(name, name)] = dep.strip()[len(name) :].strip()
    return conda, pip_section


def _conda_specifier(spec: str) -> SpecifierSet:
    """A conda version spec as a PEP 440 one: `=3.11` (conda's 3.11.*) and `>=`, `<`, `==`, `,` lists."""
    parts = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if re.fullmatch(r"=[^=].*", part):
            part = f"=={part[1:].removesuffix('.*')}.*"
        parts.append(part)
    return SpecifierSet(",".join(parts))


def test_conda_and_pip_dependencies_agree(root):
    pip_deps = {_name(str(r)) for r in _pip_requirements(root)}
    conda_specs, pip_section = _conda_specs(root)
    conda = set(conda_specs) - {"python", "pip"}
    assert conda == pip_deps, f"only conda: {conda - pip_deps}; only pip: {pip_deps - conda}"
    # conda users then install the package itself, with its extras, from the checkout
    assert any(line.startswith("-e .[") and "notebooks" in line and "tests" in line for line in pip_section)
    assert "python" in conda_specs


def test_lock_pins_every_dependency_within_its_pyproject_range(root):
    lock = _lock_entries(root)
    missing, outside = [], []
    for req in _pip_requirements(root):
        if req.marker is not None and not req.marker.evaluate(LOCK_ENV):
            continue
        name = canonicalize_name(req.name)
        if name not in lock:
            missing.append(name)
        elif not req.specifier.contains(lock[name][0], prereleases=True):
            outside.append(f"{req} locked at {lock[name][0]}")
    assert not missing, f"in pyproject.toml, not in requirements.lock: {missing}; refresh the lock (see its header)"
    assert not outside, f"locked outside pyproject.toml's range: {outside}; refresh the lock (see its header)"


def test_lock_pins_the_inputs_in_requirements_in(root):
    lock = _lock_entries(root)
    pins = {}
    for line in (root / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            name = canonicalize_name(req.name)
            assert name in lock, f"{name} (requirements.in) is not in requirements.lock"
            assert req.specifier.contains(lock[name][0], prereleases=True), f"{req} locked at {lock[name][0]}"
            pins[name] = req
    # the heavy binaries are pinned exactly in one place (requirements.in), and the lock follows
    for name in ("torch", "torchvision"):
        assert name in pins and [s.operator for s in pins[name].specifier] == ["=="], f"pin {name} exactly"
    # what kit.py installs before the lock: pip itself and the setuptools that builds the project
    assert {"pip", "setuptools"} <= set(pins)


def test_lock_satisfies_the_build_system(root):
    """kit.py builds the project with --no-build-isolation, so the lock must hold its build requirements."""
    lock = _lock_entries(root)
    for req in map(Requirement, _project(root)["build-system"]["requires"]):
        name = canonicalize_name(req.name)
        assert name in lock and req.specifier.contains(lock[name][0]), f"build requirement {req} not locked"


def test_every_locked_package_has_hashes(root):
    lock = _lock_entries(root)
    assert len(lock) > 50  # the whole tree, not only the direct dependencies
    assert not [name for name, (_, hashes) in lock.items() if not hashes]
    assert "nopeek-repro" not in lock  # the project itself installs editable, on top of the lock


def test_lock_header_is_the_refresh_command(root):
    """The lock says how it was made; the README gives the same command (with where pip-compile comes from)."""
    command = _lock_header_command(root)
    text = (root / "requirements.lock").read_text()
    assert f"autogenerated by pip-compile with Python {LOCK_PYTHON}" in text
    for flag in ("--generate-hashes", "--allow-unsafe", "--output-file=requirements.lock"):
        assert flag in command.split()
    assert command.split()[-2:] == ["pyproject.toml", "requirements.in"]
    # every extra of pyproject.toml is in the lock (kit.py's fallback installs the same extras)
    extras = set(_project(root)["project"]["optional-dependencies"])
    assert {f.removeprefix("--extra=") for f in command.split() if f.startswith("--extra=")} == extras
    kit = (root / "kit.py").read_text()
    assert f'".[{",".join(sorted(extras))}]"' in kit
    assert command in " ".join((root / "README.md").read_text().split()), "README's refresh command differs"


def test_environment_yml_versions_admit_the_locked_ones(root):
    lock = _lock_entries(root)
    conda_specs, _ = _conda_specs(root)
    assert Version(f"{LOCK_PYTHON}.0") in _conda_specifier(conda_specs.pop("python"))
    conda_specs.pop("pip")
    bad = {
        name: f"{spec} vs locked {lock[canonicalize_name(name)][0]}"
        for name, spec in conda_specs.items()
        if not _conda_specifier(spec).contains(lock[canonicalize_name(name)][0], prereleases=True)
    }
    assert not bad, f"environment.yml excludes the locked versions: {bad}"


@pytest.mark.parametrize(
    "spec, version, ok",
    [
        ("=3.11", "3.11.7", True),
        ("=3.11", "3.12.0", False),
        (">=2.4", "2.14.1", True),
        (">=2.4,<2.5", "2.14.1", False),
        ("", "1.0", True),
    ],
)
def test_conda_specifier(spec, version, ok):
    assert (Version(version) in _conda_specifier(spec)) is ok


def test_install_stamp_covers_the_lock(root, tmp_path):
    """A changed lock (or its inputs, or pyproject.toml) reinstalls the packages."""
    spec = importlib.util.spec_from_file_location("kit_stamp", root / "kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    for name in ("pyproject.toml", "requirements.in", "requirements.lock"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    kit.ROOT, kit.LOCK, kit.PINS = tmp_path, tmp_path / "requirements.lock", tmp_path / "requirements.in"
    stamp = kit.wanted_stamp()
    for name in ("pyproject.toml", "requirements.in", "requirements.lock"):
        original = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(original + b"\n# changed\n")
        assert kit.wanted_stamp() != stamp, f"changing {name} must reinstall"
        (tmp_path / name).write_bytes(original)
    assert kit.wanted_stamp() == stamp
    assert "pip==" in kit.locked_entries("pip", "setuptools") and "--hash=sha256:" in kit.locked_entries("pip")
