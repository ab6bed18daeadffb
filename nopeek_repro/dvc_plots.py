"""The page ``dvc plots show`` writes, made to work offline: Vega inlined instead of loaded from a CDN.

DVC draws the charts that ``dvc.yaml`` defines (its top-level ``plots:``, with the Vega-Lite templates
in ``.dvc/plots/``) into ``dvc_plots/index.html``. Its default page loads Vega, Vega-Lite and
vega-embed from cdn.jsdelivr.net, so offline it stays blank. ``.dvc/config`` names another page
template instead (``plots.html_template``; DVC takes a relative path from the ``.dvc`` folder), and
``python -m nopeek_repro.dvc_plots template`` writes it (``python3 kit.py setup`` runs it).

Contract of :func:`write_template`:

- it writes :data:`TEMPLATE` (``.dvc/tmp/plots-offline.html`` under the repository root): a page with
  dvc_render's ``{plot_divs}`` placeholder (where the charts go) and its ``{refresh_tag}``, but no
  ``{scripts}`` placeholder (where DVC would add its CDN ``<script src>`` tags); instead one inline
  ``<script>`` holding :func:`vl_convert.javascript_bundle`, which defines ``vegaEmbed``, ``vegaLite``
  and ``vega`` on ``window``, from the installed vl-convert-python package (no network, ever);
- the Vega-Lite it bundles is the newest 6.x that package carries: the templates declare the v6
  schema, and Vega-Lite 6 compiles for the Vega 6 in the bundle (with 5.x the page warns about v5);
- it is idempotent: the file is rewritten only when its text would change; it returns the path;
- it raises ``ValueError`` when the bundle holds text that would break the page (a placeholder that
  dvc_render substitutes, or ``</script``), rather than writing a page that renders wrongly.

The file is generated, not committed: 0.9 MB of minified JavaScript that belongs to the installed
package version. ``.dvc/tmp`` is DVC's own scratch folder, git-ignored by ``.dvc/.gitignore`` and
left alone by DVC, so a fresh clone has none until the set-up writes it; until then ``dvc plots
show`` stops with DVC's "HTML template has to contain '{plot_divs}'" (it reads the missing file's
path as the template). No pipeline stage imports this module (``.dvcignore`` leaves it out of the
stages' dependencies).
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import version
from pathlib import Path

from . import paths

log = logging.getLogger("nopeek_repro.dvc_plots")  # also under python -m

TEMPLATE = Path(".dvc") / "tmp" / "plots-offline.html"  # .dvc/config: plots.html_template = tmp/plots-offline.html
VEGA_LITE_MAJOR = "6"  # the $schema of the templates in .dvc/plots/
# what dvc_render's HTML.embed replaces in the whole page text, and what would end the inline script
_FORBIDDEN = ("{scripts}", "{plot_divs}", "{refresh_tag}", "</script")
# the bundle's snippet: what DVC's chart divs call (vegaEmbed), and the libraries, as globals
_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vegaLite = vegaLite; window.vega = vega;"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<title>nopeek-repro: DVC plots</title>
<!-- Vega @VEGA@, Vega-Lite @VEGA_LITE@ and vega-embed @EMBED@, inlined from vl-convert-python @VLC@
     by python -m nopeek_repro.dvc_plots template: this page loads nothing from the network. -->
<script>
@BUNDLE@
</script>
<style>
body { font-family: sans-serif; margin: 16px; }
header p { color: #555; margin: 4px 0 12px; }
main { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
main > div { max-width: 100%; overflow-x: auto; }
main img { max-width: 900px; }
</style>
</head>
<body>
<header>
<h1>nopeek-repro: DVC plots</h1>
<p>Charts drawn by DVC from the CSV files under results/ (dvc.yaml's top-level plots): colour is the model,
one line or point per model and seed; in <code>dvc plots diff</code> dashes (or shapes) tell revisions apart.
Hover for values, drag to pan, scroll to zoom, double-click to reset. The PNG figures follow the charts.</p>
</header>
<main>
{plot_divs}
</main>
</body>
</html>
"""


def vega_lite_version() -> str:
    """The newest Vega-Lite of major :data:`VEGA_LITE_MAJOR` that the installed vl-convert carries."""
    import vl_convert

    versions = [v for v in vl_convert.get_vegalite_versions() if v.split(".")[0] == VEGA_LITE_MAJOR]
    if not versions:
        raise RuntimeError(f"vl-convert-python {version('vl-convert-python')} bundles no Vega-Lite {VEGA_LITE_MAJOR}.x")
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def page() -> str:
    """The template's text: :data:`PAGE` with the Vega bundle inlined (see the module docstring)."""
    import vl_convert

    vl = vega_lite_version()
    bundle = vl_convert.javascript_bundle(_GLOBALS, vl_version=vl)
    bad = [s for s in _FORBIDDEN if s in bundle.lower()]
    if bad:
        raise ValueError(f"the Vega bundle of vl-convert-python contains {bad}: it cannot be inlined in the page")
    fields = {
        "@VEGA@": vl_convert.get_vega_version(),
        "@VEGA_LITE@": vl,
        "@EMBED@": vl_convert.get_vega_embed_version(),
        "@VLC@": version("vl-convert-python"),
    }
    text = PAGE
    for key, value in fields.items():
        text = text.replace(key, value)
    return text.replace("@BUNDLE@", bundle.strip())


def write_template(root: Path | None = None) -> Path:
    """Write the offline page template to ``root``/:data:`TEMPLATE` if its text differs; return its path."""
    path = (root or paths.find_root()) / TEMPLATE
    text = page()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        log.info("%s is up to date", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # never a half-written template for a concurrent `dvc plots show`
    log.info("wrote %s (%d kB): dvc plots show now works offline", path, len(text) // 1000)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.dvc_plots", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("template", help=f"write {TEMPLATE.as_posix()}, the page template .dvc/config names")
    ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    write_template()
    return 0


if __name__ == "__main__":
    sys.exit(main())
