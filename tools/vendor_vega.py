"""Write the page `dvc plots show` / `dvc plots diff` fill: Vega, Vega-Lite and vega-embed inlined, so it draws offline.

DVC's own page loads the three libraries from a CDN (dvc_render's VegaRenderer.SCRIPTS, put where the
page's ``{scripts}`` placeholder is); without internet every Vega plot stays blank. This page has no
such placeholder and carries the minified builds of pinned npm releases instead; `.dvc/config`
names it (`plots.html_template`). To move to other releases, change VERSIONS and run
`python tools/vendor_vega.py` (needs `npm` and the npm registry, nothing else); commit what it
writes into .dvc/plots/: the page, each library's licence, and THIRD_PARTY_LICENSES (the licences
of the npm packages each build bundles, read from the build's source map).
tests/test_plots_offline.py checks the page in headless Chromium.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".dvc" / "plots"
PAGE = OUT / "offline.html"

#: The releases inlined, in load order. The 5.x / 6.x majors are the ones DVC's specs
#: (Vega-Lite v5 schema) and its CDN page target.
VERSIONS = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BUILDS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js", "vega-embed": "build/vega-embed.min.js"}

#: The `vega` npm package ships no licence file; its monorepo's packages carry the project's one.
VEGA_MONOREPO = "vega/vega"
VEGA_MONOREPO_LICENSED = "vega-view"

#: What DVC replaces in the page (dvc_render.html.HTML.embed): none may appear inside a library.
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")

#: DVC's divs call `vegaEmbed('#id', spec)` with no options; these defaults drop the one action
#: that goes online (open in the Vega Editor) and keep saving as SVG / PNG.
EMBED_DEFAULTS = """(function () {
  var embed = window.vegaEmbed;
  var defaults = {actions: {export: true, source: false, compiled: false, editor: false}};
  window.vegaEmbed = function (el, spec, opt) { return embed(el, spec, Object.assign({}, defaults, opt)); };
})();"""

PAGE_HEAD = """<!DOCTYPE html>
<!-- fraudpipe's page for `dvc plots show` / `dvc plots diff` (.dvc/config: plots.html_template).
     It carries {libraries} (minified npm builds, BSD-3-Clause: LICENSE-* and
     THIRD_PARTY_LICENSES beside this file), so the plots draw without internet. It has no
     placeholder for DVC's scripts: those load the libraries from a CDN.
     Written by tools/vendor_vega.py; do not edit by hand. -->
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<title>fraudpipe plots</title>
<style>
  body { font-family: sans-serif; margin: 16px; }
  body > div { display: inline-block; vertical-align: top; margin: 8px; }
</style>
"""

PAGE_TAIL = """</head>
<body>
{plot_divs}
</body>
</html>
"""


def npm_install(prefix: Path) -> None:
    """Install the pinned releases with their dependencies (whose licences the builds need)."""
    specs = [f"{name}@{version}" for name, version in VERSIONS.items()]
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--ignore-scripts", "--no-audit", "--no-fund", *specs],
        check=True,
        capture_output=True,
    )


def inline_script(name: str, source: str, integrity: str) -> str:
    """One library as a <script> element, named with its npm integrity; its source map link dropped."""
    source = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "", source)
    for forbidden in ("</script", *DVC_PLACEHOLDERS):
        if forbidden in source:
            raise SystemExit(f"{name} contains {forbidden!r}: it cannot be inlined into DVC's page as it is")
    return f"<script>/* {name} {VERSIONS[name]} (npm {integrity}) */\n{source}\n</script>\n"


def page(prefix: Path) -> str:
    """The whole template: head, the three libraries, the vegaEmbed defaults, DVC's plot divs."""
    locked = json.loads((prefix / "package-lock.json").read_text())["packages"]
    libraries = ", ".join(f"{name} {version}" for name, version in VERSIONS.items())
    scripts = "".join(
        inline_script(
            name,
            (prefix / "node_modules" / name / BUILDS[name]).read_text(),
            locked[f"node_modules/{name}"]["integrity"],
        )
        for name in VERSIONS
    )
    return (
        PAGE_HEAD.replace("{libraries}", libraries) + scripts + f"<script>\n{EMBED_DEFAULTS}\n</script>\n" + PAGE_TAIL
    )


def licence_file(package: Path) -> Path | None:
    """The package's own licence file, if its npm tarball has one."""
    found = sorted(p for p in package.iterdir() if re.match(r"(licen[cs]e|copying)", p.name, re.IGNORECASE))
    return found[0] if found else None


def licence_text(modules: Path, name: str) -> str:
    """A package's licence text; a vega/vega monorepo package without one has the monorepo's."""
    package = modules / name
    found = licence_file(package)
    if found is None and json.loads((package / "package.json").read_text()).get("repository") == VEGA_MONOREPO:
        found = licence_file(modules / VEGA_MONOREPO_LICENSED)
    if found is None:
        raise SystemExit(f"no licence file for {name}: add its licence to THIRD_PARTY_LICENSES by hand")
    return found.read_text().strip() + "\n"


def bundled_packages(modules: Path, name: str) -> set[str]:
    """The npm packages a build bundles, by the node_modules paths in its source map."""
    sources = json.loads((modules / name / (BUILDS[name] + ".map")).read_text())["sources"]
    found = {m[-1] for m in (re.findall(r"node_modules/((?:@[^/]+/)?[^/]+)", s) for s in sources) if m}
    return found - set(VERSIONS)


def third_party_licences(modules: Path) -> str:
    """The licences of everything the builds bundle, one block per distinct text."""
    by_text: dict[str, list[str]] = defaultdict(list)
    for library in VERSIONS:
        for package in sorted(bundled_packages(modules, library)):
            meta = json.loads((modules / package / "package.json").read_text())
            by_text[licence_text(modules, package)].append(f"{package} ({meta.get('license')}, in {library})")
    blocks = [
        "\n".join(sorted(set(names))) + "\n\n" + text for text, names in sorted(by_text.items(), key=lambda i: i[1])
    ]
    header = f"Code bundled into the minified builds inlined in offline.html ({', '.join(VERSIONS)}).\n"
    return header + "".join(f"\n{'-' * 78}\n{block}" for block in blocks)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        modules = Path(tmp) / "node_modules"
        npm_install(Path(tmp))
        OUT.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page(Path(tmp)))
        for name in VERSIONS:
            (OUT / f"LICENSE-{name}").write_text(licence_text(modules, name))
        (OUT / "THIRD_PARTY_LICENSES").write_text(third_party_licences(modules))
    print(f"wrote {PAGE.relative_to(ROOT)} ({PAGE.stat().st_size:,} bytes) and the licences beside it")


if __name__ == "__main__":
    main()
