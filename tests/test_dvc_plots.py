"""`dvc plots show`: dvc.yaml's top-level charts, drawn offline with one line (or point) per model and seed.

The fast tests run the real `dvc plots show` in a throw-away repository that holds the checkout's
dvc.yaml, params.yaml, .dvc/config, .dvc/plots/ and the committed files the charts read (no pipeline
run), with the page template written by ``nopeek_repro.dvc_plots``, and read the page DVC writes: no
script from the network, Vega inlined, one chart per quantity with the titles and axis labels of
dvc.yaml, the PNG figures included, and in every chart one series per model and seed of params.yaml.
The slow test opens that page in headless Chromium with the network cut off and checks what it
draws: a screenshot in the models' colours, and in the DOM one SVG line (or point) per model and seed.

Chromium: Debian's ``apt-get install -y chromium`` (/usr/bin/chromium), or set CHROMIUM to a Chrome
or Chromium binary. By hand: ``python -m pytest -m slow tests/test_dvc_plots.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nopeek_repro import dvc_plots
from nopeek_repro.defences import all_runs

from .conftest import run

TEMPLATES = {"runs_lines": "line", "runs_lines_loglog": "line", "runs_points_logx": "point"}
TABLEAU10 = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d"]


def _definitions(root: Path) -> dict[str, dict | None]:
    """dvc.yaml's top-level plots: {id: properties} (None for a bare path: images here)."""
    out: dict[str, dict | None] = {}
    for entry in yaml.safe_load((root / "dvc.yaml").read_text())["plots"]:
        if isinstance(entry, str):
            out[entry] = None
        else:
            ((plot_id, props),) = entry.items()
            out[plot_id] = props
    return out


def _charts(root: Path) -> dict[str, dict]:
    return {k: v for k, v in _definitions(root).items() if v is not None and isinstance(v.get("y"), dict)}


def _sources(root: Path) -> set[str]:
    """Every file or folder the top-level plots read."""
    found: set[str] = set()
    for plot_id, props in _definitions(root).items():
        if props is None or not isinstance(props.get("y"), dict):
            found.add(plot_id)
        else:
            found |= set(props["y"]) | (set(props["x"]) if isinstance(props.get("x"), dict) else set())
    return found


def _models_and_seeds(root: Path) -> tuple[list[str], list[int]]:
    """The models and seeds of params.yaml: what every chart must show."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    runs = all_runs(list(params["nopeek"]["alpha_dcor"]), list(params["noise"]["scale"]))
    return [r.name for r in runs], [int(s) for s in params["train"]["seeds"]]


def _specs(page: str) -> dict[str, dict]:
    """The Vega-Lite spec of every chart in a page DVC wrote: {div id: spec}."""
    decoder = json.JSONDecoder()
    specs = {}
    for m in re.finditer(r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = ', page):
        specs[m.group(1)], _ = decoder.raw_decode(page, m.end())
    return specs


@pytest.fixture(scope="module")
def plots_repo(root, tmp_path_factory) -> Path:
    """A repository with the checkout's plot definitions, templates, config and committed chart data."""
    missing = sorted(s for s in _sources(root) if not (root / s).exists())
    if missing:
        pytest.fail(f"the charts read {missing}, not in the checkout: run `dvc repro` (the figures stage) and commit")
    repo = tmp_path_factory.mktemp("plots") / "repo"
    names = ["dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", *_sources(root)]
    names += [p.relative_to(root).as_posix() for p in (root / ".dvc" / "plots").glob("*.json")]
    for name in names:
        src, dest = root / name, repo / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest)
        elif src.is_file():
            shutil.copy2(src, dest)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc_plots.write_template(repo)
    return repo


@pytest.fixture(scope="module")
def page(plots_repo) -> Path:
    """`dvc plots show -o out` run in the throw-away repository: the index.html it writes."""
    proc = run(["dvc", "plots", "show", "-o", "out"], plots_repo)
    assert "failed to load" not in proc.stderr.lower(), proc.stderr
    return plots_repo / "out" / "index.html"


def test_config_names_the_generated_template_and_git_ignores_it(root):
    proc = run(["dvc", "config", "plots.html_template"], root)
    assert (root / ".dvc" / proc.stdout.strip()).resolve() == (root / dvc_plots.TEMPLATE).resolve()
    ignored = subprocess.run(["git", "check-ignore", "-q", dvc_plots.TEMPLATE.as_posix()], cwd=root)
    assert ignored.returncode == 0, f"{dvc_plots.TEMPLATE} is generated: it must be git-ignored"


def test_template_inlines_vega_and_leaves_out_dvcs_cdn_scripts(tmp_path):
    path = dvc_plots.write_template(tmp_path)
    text = path.read_text()
    assert "{plot_divs}" in text and "{scripts}" not in text  # where DVC puts the charts / its CDN <script src>
    assert "window.vegaEmbed=" in text.replace(" ", "") and not re.search(r"<script[^>]*\bsrc\s*=", text)
    stamp = path.stat().st_mtime_ns
    assert dvc_plots.write_template(tmp_path) == path and path.stat().st_mtime_ns == stamp  # unchanged: not rewritten


def test_every_chart_reads_a_committed_output_of_the_pipeline(root):
    """The charts read what `dvc repro` writes and git keeps; only top-level plots define charts."""
    outs: dict[str, bool] = {}
    for where in ("dvc.yaml", "study/dvc.yaml"):  # the study's stages run in the root (wdir ..)
        for name, stage in yaml.safe_load((root / where).read_text())["stages"].items():
            stage = stage.get("do", stage)
            assert "plots" not in stage, f"stage {name}: plot definitions belong in dvc.yaml's top-level plots"
            for out in stage.get("outs", []):
                path, props = (out, {}) if isinstance(out, str) else next(iter(out.items()))
                outs[path] = props.get("cache", True) is False
    for source in sorted(_sources(root)):
        # a folder of images: every image in it is a committed output of some stage
        files = [p.relative_to(root).as_posix() for p in sorted((root / source).glob("*.png"))]
        for path in files if (root / source).is_dir() else [source]:
            assert path in outs, f"dvc.yaml's plots read {path}, which no stage writes"
            assert outs[path], f"{path} is read by a chart: make it `cache: false` so git keeps it"


def test_page_is_offline_with_one_chart_per_quantity_and_the_figures(root, page):
    html = page.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", html), "a script loaded from elsewhere: not offline"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "something loaded from the network"
    assert html.count("window.vegaEmbed=") == 1  # the bundle, inline
    specs = _specs(html)
    charts = _charts(root)
    assert sorted(specs) == sorted(charts)
    for plot_id, props in charts.items():
        spec = specs[plot_id]
        assert spec["title"]["text"] == props["title"]
        assert spec["encoding"]["x"]["title"] == props["x_label"] and spec["encoding"]["y"]["title"] == props["y_label"]
        assert spec["encoding"]["color"]["field"] == "run"  # colour = model
    titles = [s["title"]["text"] for s in specs.values()]
    assert len(set(titles)) == len(titles)
    assert any("V-statistic" in t and "DCOR" in t for t in titles)
    figures = sorted(p.name for p in (root / "figures").glob("*.png"))
    assert figures
    for name in figures:
        src = f"static/workspace_figures_{name}"
        assert f'<img src="{src}">' in html and (page.parent / src).is_file(), f"figures/{name} is not on the page"


def test_every_chart_has_one_series_per_model_and_seed(root, page):
    models, seeds = _models_and_seeds(root)
    expected = {(m, s) for m in models for s in seeds}
    for plot_id, spec in _specs(page.read_text()).items():
        data = pd.DataFrame(spec["data"]["values"])
        got = set(zip(data["run"], data["seed"].astype(int)))
        assert got == expected, f"{plot_id}: missing {expected - got}, unexpected {got - expected}"
        template = _charts(root)[plot_id]["template"]
        if TEMPLATES[template] == "line":
            details = {d["field"] for d in spec["encoding"]["detail"]}
            assert details == {"seed", "rev"}  # one line per model, seed and revision
            x = spec["encoding"]["x"]["field"]
            repeated = data.duplicated(["rev", "run", "seed", x])
            assert not repeated.any(), f"{plot_id}: a line visits the same {x} twice (a zig-zag)"
        else:
            assert not data.duplicated(["rev", "run", "seed"]).any(), f"{plot_id}: one point per model and seed"


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _headless(chromium: str, url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium, headless, with the network unusable: no name resolves and no proxy answers."""
    cmd = [
        chromium,
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",  # let vega-embed finish (virtual time: no real wait)
        *(["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),  # root in a container
        "--enable-logging=stderr",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_chromium_draws_every_chart_offline(root, page, tmp_path):
    """The done-criterion: the page renders offline in a real browser, one line (or point) per model and seed."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium found: apt-get install -y chromium (Debian/Ubuntu), or set CHROMIUM=/path/to/chrome")
    url = page.as_uri()
    dom = _headless(chromium, url, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, "the page logged: " + "\n".join(console)

    models, seeds = _models_and_seeds(root)
    n = len(models) * len(seeds)
    parts = re.split(r'<div id="([^"]+)" class="vega-embed[^"]*">', dom.stdout)
    drawn = dict(zip(parts[1::2], parts[2::2]))
    charts = _charts(root)
    assert sorted(drawn) == sorted(charts), "a chart vega-embed did not draw"
    for plot_id, svg in drawn.items():
        svg = svg.split("</svg>", 1)[0]
        assert all(f">{m}</text>" in svg for m in models), f"{plot_id}: the legend misses a model"
        if TEMPLATES[charts[plot_id]["template"]] == "line":
            lines = re.findall(r'<g class="mark-line role-mark[^>]*>\s*<path[^>]* d="M[^"]+"', svg)
            assert len(lines) == n, f"{plot_id}: {len(lines)} lines drawn, expected {n} (models x seeds)"
        else:
            group = re.search(r'<g class="mark-symbol role-mark[^>]*>(.*?)</g>', svg, re.S)
            assert group and group.group(1).count("<path") == n, f"{plot_id}: expected {n} points (models x seeds)"

    shot = tmp_path / "plots.png"
    proc = _headless(chromium, url, tmp_path / "profile", "--window-size=1280,1400", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-3000:]
    from PIL import Image

    pixels = Image.open(shot).convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    counts = {c: k for k, c in colours}
    for hexcode in TABLEAU10[: len(models)]:  # each model's colour is on screen (lines, points, legend)
        rgb = tuple(int(hexcode[i : i + 2], 16) for i in (1, 3, 5))
        near = sum(k for c, k in counts.items() if sum(abs(a - b) for a, b in zip(c, rgb)) <= 24)
        assert near > 50, f"colour {hexcode} of a model is not on the screenshot"
