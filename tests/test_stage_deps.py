"""Stage dependencies that cannot go stale: every module a stage can import is among its DVC deps."""

from __future__ import annotations

import ast
from pathlib import Path

import pathspec
import pytest
import yaml

PACKAGE = "nopeek_repro"


def package_imports(path: Path, root: Path) -> set[str]:
    """Names of the package modules that ``path`` imports anywhere (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.level == 0 and node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + ".")}
    return {m for m in found if (root / PACKAGE / f"{m}.py").is_file()}


def import_closure(entries: list[Path], root: Path) -> set[str]:
    """Every package module reachable by imports from ``entries`` (a static over-approximation)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        for module in package_imports(todo.pop(), root) - seen:
            seen.add(module)
            todo.append(root / PACKAGE / f"{module}.py")
    return seen


def covered(deps: list[str], root: Path) -> set[str]:
    """Package modules whose changes DVC sees for ``deps``: listed files, or the folder minus .dvcignore."""
    ignore = pathspec.PathSpec.from_lines("gitignore", (root / ".dvcignore").read_text().splitlines())
    out = {Path(d).stem for d in deps if d.startswith(PACKAGE + "/") and d.endswith(".py")}
    if PACKAGE in deps:
        out |= {p.stem for p in (root / PACKAGE).glob("*.py") if not ignore.match_file(p.relative_to(root).as_posix())}
    return out


def _stages(root: Path) -> dict[str, dict]:
    """Every stage of dvc.yaml and of study/dvc.yaml (whose stages run in the root: wdir ..)."""
    out = {}
    for where in ("dvc.yaml", "study/dvc.yaml"):
        stages = yaml.safe_load((root / where).read_text())["stages"]
        out |= {name: st.get("do", st) for name, st in stages.items()}
    return out


def test_every_stage_depends_on_its_whole_import_closure(root):
    for name, stage in _stages(root).items():
        entries = [root / PACKAGE / "pipeline.py", *(root / d for d in stage["deps"] if d.startswith("notebooks/"))]
        missing = import_closure(entries, root) | {"pipeline"}
        missing -= covered(stage["deps"], root)
        assert not missing, f"dvc.yaml stage {name}: imports {sorted(missing)} but does not depend on them"


def test_the_closure_sees_lazy_imports(tmp_path):
    """Imports inside functions count: a stage that calls them runs that module's code."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from nopeek_repro.c import x\n")
    (pkg / "c.py").write_text("x = 1\n")
    (tmp_path / ".dvcignore").write_text("c.py\n")
    assert import_closure([pkg / "a.py"], tmp_path) == {"b", "c"}
    assert covered([PACKAGE], tmp_path) == {"a", "b"}  # .dvcignore hides c from DVC: a stage needing c is caught


@pytest.mark.parametrize("ignored", ["readme", "dvc_plots"])
def test_modules_dvc_ignores_are_imported_by_no_stage(root, ignored):
    for name, stage in _stages(root).items():
        entries = [root / PACKAGE / "pipeline.py", *(root / d for d in stage["deps"] if d.startswith("notebooks/"))]
        assert ignored not in import_closure(entries, root), f"stage {name} imports {ignored}, which .dvcignore hides"


def test_prepare_is_given_exactly_the_attack_settings_dvc_tracks_for_it(root):
    """The prepare notebook receives the judge's settings only, the ones dvc.yaml lists: no stale decoder
    settings in its executed notebook when a decoder setting changes and DVC rightly skips it."""
    from nopeek_repro import config, pipeline

    listed = {k.split(".", 1)[1] for k in _stages(root)["prepare"]["params"] if str(k).startswith("attack.")}
    assert listed == set(pipeline.JUDGE_KEYS)
    given = pipeline.STAGES["prepare"].parameters(config.Params(), None)["attack"]
    assert set(given) == set(pipeline.JUDGE_KEYS)
