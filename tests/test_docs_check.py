"""tools/docs_check.py (`make docs-check`): its pure parts here, without a browser; one test drives Chromium and
is skipped where chromium, chromedriver or Selenium is missing (as on CI)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "docs_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("docs_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


dc = _load()


# -- maths ------------------------------------------------------------------------------------------------

MATHS_PAGE = r"""
<html><head><script>var s = "\\(not maths\\)";</script></head><body>
<p>Raw inline <span class="arithmatex">\(x^\top\theta\)</span> and display:</p>
<div class="arithmatex">\[ A = \lambda I \]</div>
<p>KaTeX <span class="arithmatex"><span class="katex"><span class="katex-mathml"><math><semantics>
  <annotation encoding="application/x-tex">\(y\)</annotation></semantics></math></span>
  <span class="katex-html">y</span></span></span></p>
<p>MathJax <span class="arithmatex"><mjx-container class="MathJax"><mjx-math>z</mjx-math></mjx-container></span></p>
<p>Broken <span class="arithmatex"><span class="katex-error" title="ParseError">\frac{</span></span></p>
<p>Dollars <span class="arithmatex">$$ 1 + 1 $$</span>; code outside maths: <code>\(ignored\)</code></p>
</body></html>
"""


def test_maths_detection_flags_raw_tex_and_errors_only():
    problems = dc.find_unrendered_math(dc.parse_html(MATHS_PAGE))
    assert problems == [
        r"unrendered maths: \(x^\top\theta\)",
        r"unrendered maths: \[ A = \lambda I \]",
        r"maths error: \frac{",
        r"unrendered maths: $$ 1 + 1 $$",
    ]


def test_rendered_page_has_no_maths_problems():
    page = '<p><span class="arithmatex"><span class="katex">x</span></span></p><div class="arithmatex"></div>'
    assert dc.find_unrendered_math(dc.parse_html(page)) == []


# -- API entries ------------------------------------------------------------------------------------------

API_PAGE = """
<div class="doc doc-object doc-class">
  <h3 id="banditlib.LinUCB" class="doc doc-heading"><span>banditlib.LinUCB</span></h3>
  <div class="doc doc-contents first">
    <p class="doc doc-class-bases">Bases: <code>RidgeEstimator</code></p>
    <p>LinUCB: ridge regression plus an upper-confidence bonus.</p>
    <div class="doc doc-children">
      <div class="doc doc-object doc-function">
        <h4 id="banditlib.LinUCB.select" class="doc doc-heading">select</h4>
        <div class="doc doc-contents"><p>Pick arms.</p></div>
      </div>
    </div>
  </div>
</div>
<div class="doc doc-object doc-class">
  <h3 id="banditlib.policies.linear.LinTS" class="doc doc-heading">LinTS</h3>
  <div class="doc doc-contents first">
    <p class="doc doc-class-bases">Bases: <code>RidgeEstimator</code></p>
    <div class="doc doc-children">
      <div class="doc doc-object doc-function">
        <h4 id="banditlib.policies.linear.LinTS.load" class="doc doc-heading">load</h4>
        <div class="doc doc-contents"><p>Load.</p></div>
      </div>
    </div>
  </div>
</div>
<h3 id="banditlib.adapters.rlvr.RolloutScheduler" class="doc doc-heading">RolloutScheduler</h3>
"""


def test_api_matching_rule_on_html():
    ids = dc.element_ids(dc.parse_html(API_PAGE))
    expected = [
        dc.Expected("banditlib", "LinUCB"),  # documented where exported
        dc.Expected("banditlib", "LinTS"),  # documented under another module: same object decides
        dc.Expected("banditlib", "load"),  # only a *method* named load is on the page
        dc.Expected("banditlib.adapters.rlvr.scheduler", "RolloutScheduler"),
        dc.Expected("banditlib.adapters.trl", "BanditGRPOTrainer"),
    ]
    asked = []

    def same(item, prefix):
        asked.append((item.path, prefix))
        return prefix in ("banditlib.policies.linear", "banditlib.adapters.rlvr")

    found, missing = dc.match_api_names(expected, ids, same)
    assert found == {
        expected[0]: "banditlib.LinUCB",
        expected[1]: "banditlib.policies.linear.LinTS",
        expected[3]: "banditlib.adapters.rlvr.RolloutScheduler",
    }
    assert missing == [expected[2], expected[4]]
    assert ("banditlib.load", "banditlib.policies.linear.LinTS") in asked  # asked, and refused


def test_same_object_accepts_defining_module_and_refuses_classes():
    import banditlib

    item = dc.Expected("banditlib", "LinUCB")
    assert dc.same_object(item, banditlib.LinUCB.__module__)
    assert not dc.same_object(item, "banditlib.envs")  # a module without that object
    assert not dc.same_object(dc.Expected("banditlib", "load"), "banditlib.Policy")  # a class, not a module
    assert not dc.same_object(item, "numpy")  # only banditlib's own modules


def test_expected_public_names():
    modules, errors = dc.public_modules()
    assert errors == []
    assert modules[0] == "banditlib"
    assert "banditlib.adapters.rlvr" in modules and "banditlib.adapters.rlvr.sim" in modules
    assert not any(part.startswith("_") for m in modules for part in m.split("."))
    wanted, exempt = dc.expected_api_names(modules)
    paths = {e.path for e in wanted}
    assert {"banditlib.LinUCB", "banditlib.adapters.rlvr.RolloutScheduler"} <= paths
    assert dc.Expected("banditlib", "__version__") in exempt
    assert "banditlib.__version__" not in paths


def test_check_api_reports_missing_names_per_module_once():
    ids = dc.entry_ids(dc.parse_html(API_PAGE))
    assert "banditlib.LinUCB.select" in ids and "banditlib.adapters.rlvr.RolloutScheduler" in ids
    failures, notes = dc.check_api(ids, ["api/"])
    by_module = {
        line.split(" from ", 1)[1].split(".__all__", 1)[0]: line.split(": ", 1)[1].split(", ") for line in failures
    }
    assert "LinUCB" not in by_module["banditlib"] and "EpsilonGreedy" in by_module["banditlib"]
    assert not any("RolloutScheduler" in names for names in by_module.values())
    assert "MaxVarianceScheduler" in by_module["banditlib.adapters.rlvr"]
    assert "MaxVarianceScheduler" not in by_module["banditlib.adapters.rlvr.baselines"]  # listed once, above
    assert any("exempt" in n and "banditlib.__version__" in n for n in notes)


def test_empty_doc_entries():
    page = (
        API_PAGE
        + """
    <div class="doc doc-object doc-function">
      <h3 id="banditlib.load" class="doc doc-heading">load</h3>
      <div class="doc doc-contents first">  </div>
    </div>"""
    )
    # LinTS has only a base-class line and members: no docstring text of its own.
    assert dc.empty_doc_entries(dc.parse_html(page)) == ["banditlib.policies.linear.LinTS", "banditlib.load"]


# -- network and console ----------------------------------------------------------------------------------


def _sent(rid, url):
    return {"method": "Network.requestWillBeSent", "params": {"requestId": rid, "request": {"url": url}}}


def test_network_failures():
    base = "http://127.0.0.1:8000/"
    events = [
        _sent("1", base),
        _sent("2", "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),
        {"method": "Network.loadingFailed", "params": {"requestId": "2", "errorText": "net::ERR_NAME_NOT_RESOLVED"}},
        _sent("3", base + "missing.js"),
        {
            "method": "Network.responseReceived",
            "params": {"requestId": "3", "response": {"status": 404, "url": base + "missing.js"}},
        },
        _sent("4", base + "slow.js"),
        {"method": "Network.loadingFailed", "params": {"requestId": "4", "errorText": "net::ERR_FAILED"}},
        _sent("5", base + "aborted.js"),
        {"method": "Network.loadingFailed", "params": {"requestId": "5", "errorText": "x", "canceled": True}},
        {"method": "Network.loadingFailed", "params": {"requestId": "other-page", "errorText": "x"}},
        _sent("6", "data:image/png;base64,AAAA"),
        _sent("7", "http://localhost:8000/not-127.css"),
    ]
    assert dc.network_failures(events) == [
        "external request (the site must work offline): https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
        f"HTTP 404: {base}missing.js",
        f"request failed (net::ERR_FAILED): {base}slow.js",
        "external request (the site must work offline): http://localhost:8000/not-127.css",
    ]


def test_console_errors_split_network_entries():
    network = ["HTTP 404: http://127.0.0.1:1/a.js"]
    entries = [
        {"level": "SEVERE", "source": "javascript", "message": "http://127.0.0.1:1/ 3:7 Uncaught ReferenceError"},
        {"level": "SEVERE", "source": "network", "message": "http://127.0.0.1:1/a.js - Failed to load resource"},
        {"level": "SEVERE", "source": "network", "message": "http://127.0.0.1:1/b.js - Failed to load resource"},
        {"level": "WARNING", "source": "console-api", "message": "just a warning"},
    ]
    errors, extra = dc.console_errors(entries, network)
    assert errors == ["http://127.0.0.1:1/ 3:7 Uncaught ReferenceError"]
    assert extra == ["network error: http://127.0.0.1:1/b.js - Failed to load resource"]


# -- site, server, links ----------------------------------------------------------------------------------


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "api").mkdir(parents=True)
    (site / "assets").mkdir()
    (site / "index.html").write_text(
        '<h1 id="top">Home</h1><a href="api/#banditlib.LinUCB">ok</a> <a href="api/#nope">bad anchor</a>'
        ' <a href="gone/">gone</a> <a href="#top">self</a> <a href="https://example.org/">external</a>'
    )
    (site / "api" / "index.html").write_text('<h3 id="banditlib.LinUCB">LinUCB</h3>')
    (site / "404.html").write_text("<p>not found</p>")
    (site / "assets" / "x.html").write_text("<p>theme asset</p>")
    return site


def test_site_pages_and_files(tmp_path):
    site = _site(tmp_path)
    assert dc.site_pages(site) == ["", "404.html", "api/"]
    assert dc.page_file(site, "api/") == site / "api" / "index.html"
    assert dc.page_file(site, "api") == site / "api" / "index.html"
    assert dc.page_file(site, "gone/") is None


def test_link_checker(tmp_path):
    site = _site(tmp_path)
    with dc.serve(site) as base:
        checker = dc.LinkChecker(base, site)
        hrefs = [base + h for h in ("api/#banditlib.LinUCB", "api/#nope", "gone/", "#top")]
        hrefs.append("https://example.org/")
        assert checker.broken(hrefs, {"top"}, base) == [
            "broken anchor: /api/#nope",
            "broken link (HTTP 404): /gone/",
        ]


def test_summary_table_lists_every_page():
    ok = dc.PageResult("/", math_count=3)
    bad = dc.PageResult("api/", api=["missing API entries from banditlib.__all__ (1): X"])
    table = dc.summary_table([ok, bad])
    assert "FAIL" in table.splitlines()[3] and " ok " in table.splitlines()[2]


# -- the browser ------------------------------------------------------------------------------------------

BROWSER = dc.find_browser(None)
DRIVER = dc.find_driver(None)
HAVE_SELENIUM = importlib.util.find_spec("selenium") is not None


@pytest.mark.skipif(not (BROWSER and DRIVER and HAVE_SELENIUM), reason="needs chromium, chromedriver and selenium")
def test_pages_in_chromium(tmp_path):
    site = tmp_path / "site"
    (site / "good").mkdir(parents=True)
    # A stand-in maths renderer served by the site itself, as KaTeX would be.
    (site / "render.js").write_text(
        "window.katex = {};"
        "document.querySelectorAll('.arithmatex').forEach(e => {"
        " e.innerHTML = '<span class=\"katex\">' + e.textContent.slice(2, -2) + '</span>'; });"
    )
    (site / "good" / "index.html").write_text(
        '<html><head><link rel="icon" href="data:,"></head><body>'
        '<p><span class="arithmatex">\\(x\\)</span></p><a href="../">home</a>'
        '<script src="../render.js"></script></body></html>'
    )
    (site / "index.html").write_text(
        '<html><head><link rel="icon" href="data:,"></head><body><p><span class="arithmatex">\\(x\\)</span></p>'
        '<img src="missing.png"><a href="nowhere/">broken</a>'
        '<script src="https://cdn.example.invalid/maths.js"></script>'
        "<script>undefinedFunction();</script></body></html>"
    )
    shots = tmp_path / "shots"
    shots.mkdir()
    with dc.serve(site) as base, dc.chromium(BROWSER, DRIVER, timeout=20) as driver:
        links = dc.LinkChecker(base, site)
        good = dc.check_page(driver, base, "good/", links, shots, settle=3)
        bad = dc.check_page(driver, base, "", links, shots, settle=1.5)
    assert good.failures == [], good.failures
    assert good.math_count == 1
    assert (shots / "good.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (shots / "index.png").exists()
    assert bad.maths == [r"unrendered maths: \(x\)"]
    assert any("external request" in line and "cdn.example.invalid" in line for line in bad.network)
    assert any("HTTP 404" in line and "missing.png" in line for line in bad.network)
    assert any("undefinedFunction" in line for line in bad.console)
    assert bad.images == ["missing.png"]
    assert bad.links == ["broken link (HTTP 404): /nowhere/"]


def test_script_loads_without_selenium():
    # CI has no Selenium: the module must import (and the pure parts work) with it blocked.
    code = (
        "import sys, importlib.util; sys.modules['selenium'] = None; "
        f"spec = importlib.util.spec_from_file_location('docs_check', {str(SCRIPT)!r}); "
        "m = importlib.util.module_from_spec(spec); sys.modules['docs_check'] = m; spec.loader.exec_module(m); "
        "print(m.find_unrendered_math(m.parse_html('<span class=arithmatex>\\\\(x\\\\)</span>')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "unrendered maths" in out


def test_the_api_docs_see_the_derived_policy_signatures() -> None:
    """The griffe extension of mkdocs.yml (tools/griffe_policies.py) gives static analysis the signatures and
    ``Args:`` sections that banditlib.policies._params derives at import time; without it the API page would
    show ``LinUCB(dim, arms=None, **kwargs)`` and no argument list."""
    griffe = pytest.importorskip("griffe")
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    try:
        from griffe_policies import DerivedPolicyDocs
    finally:
        sys.path.pop(0)
    pkg = griffe.load("banditlib", extensions=griffe.load_extensions(DerivedPolicyDocs()), search_paths=[str(root)],
                      resolve_aliases=False)  # fmt: skip
    for path, first in [("policies.linear.LinUCB", "alpha"), ("policies.neural.NeuralUCB", "gamma")]:
        cls = pkg[path]
        names = [p.name for p in cls.members["__init__"].parameters]
        assert names[:4] == ["self", "dim", "arms", first] and names[-1] == "backend", names
        assert f"    {first}: " in cls.docstring.value
    assert "__init__" not in pkg["policies.ridge.RidgeEstimator"].members  # building blocks keep Policy's
