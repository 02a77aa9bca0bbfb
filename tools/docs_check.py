#!/usr/bin/env python3
"""Check the built documentation site in a real (headless) browser: ``make docs-check``.

The script builds the site (``mkdocs build --strict`` into a temporary folder, or takes ``--site-dir``), serves
it on 127.0.0.1, opens every page in headless Chromium (Selenium with the system ``chromedriver``; nothing is
downloaded) and fails, with a per-page report, on:

* JavaScript console errors, and network requests that fail (HTTP >= 400, or a load error) or that leave
  127.0.0.1 at all: the site must work offline, so a script or font from a CDN is an error. The browser runs
  with every host name but 127.0.0.1 unresolvable, so the result does not depend on the machine's network;
* unrendered maths: raw ``\\(``, ``\\[`` or ``$$`` still in the visible text of an ``.arithmatex`` element
  once the page has settled (neither KaTeX's ``.katex`` nor MathJax's ``mjx-container`` replaced it), and
  KaTeX/MathJax error output inside one;
* images that did not load (``img.complete && img.naturalWidth === 0``) and internal links to a missing page
  or a missing ``#anchor``;
* public names (``banditlib.__all__`` and the ``__all__`` of every public ``banditlib.adapters`` module)
  without a mkdocstrings entry (see ``match_api_names`` for the rule; entries count on any page, since the
  API reference spans ``api/`` and its sibling pages; the findings are listed under ``api/``), and entries
  whose docstring area (``doc-contents``) is empty. Dunder names such as ``__version__`` are exempt.

It leaves a full-page PNG screenshot of every page in ``--screenshots`` (default ``docs-check/``) and prints
the runtime. Selenium is imported only when the browser runs, so the pure parts work without it (the tests
use them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import html.parser
import http.server
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
API_PAGE = "api/"
# Packages whose public names (``__all__``) must be on the API page: the top level, and every public module
# under banditlib.adapters that defines ``__all__`` (found with pkgutil.walk_packages).
ROOT_PACKAGE = "banditlib"
ADAPTER_PACKAGE = "banditlib.adapters"
# Further public submodules of banditlib whose ``__all__`` must be documented too.
EXTRA_MODULES = ("banditlib.offline",)
TEX_DELIMITERS = ("\\(", "\\[", "$$")
SCREENSHOT_MARKER = ".docs-check"  # a folder holding this file was made by us: old PNGs in it may go


# --------------------------------------------------------------------------------------------------------
# A small DOM, enough to read mkdocs' and Chromium's HTML (the standard library has no tree builder).
# --------------------------------------------------------------------------------------------------------

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
NOT_VISIBLE = frozenset({"script", "style", "template", "noscript", "head"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        """This element and every element below it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def text(self, skip: Callable[[Node], bool] = lambda n: False) -> str:
        """Text content, leaving out invisible elements and the subtrees for which ``skip`` is true."""
        parts: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag not in NOT_VISIBLE and not skip(child):
                parts.append(child.text(skip))
        return "".join(parts)


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching open element; a stray end tag is ignored, as browsers do.
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def element_ids(doc: Node) -> set[str]:
    return {n.attrs["id"] for n in doc.iter() if n.attrs.get("id")}


# --------------------------------------------------------------------------------------------------------
# Maths
# --------------------------------------------------------------------------------------------------------


def _rendered_math(node: Node) -> bool:
    return "katex" in node.classes or node.tag in ("mjx-container", "mjx-assistive-mml")


def find_unrendered_math(doc: Node) -> list[str]:
    """Problems with the ``.arithmatex`` elements of a (rendered) page, one line each.

    An element is unrendered when raw TeX delimiters remain in its visible text outside KaTeX's and MathJax's
    output; KaTeX's ``.katex-error`` and MathJax's ``mjx-merror`` inside it count as failed maths too.
    """
    problems: list[str] = []
    for node in doc.iter():
        if "arithmatex" not in node.classes:
            continue
        raw = " ".join(node.text(skip=_rendered_math).split())
        if any(d in raw for d in TEX_DELIMITERS):
            problems.append(f"unrendered maths: {_clip(raw)}")
            continue
        for sub in node.iter():
            if "katex-error" in sub.classes or sub.tag == "mjx-merror":
                problems.append(f"maths error: {_clip(' '.join(sub.text().split()))}")
                break
    return problems


def _clip(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------------------------------------
# API entries
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    module: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


def is_exempt(name: str) -> bool:
    """Dunder names (``__version__``) are metadata, not API objects with a docstring of their own."""
    return name.startswith("__") and name.endswith("__")


def public_modules() -> tuple[list[str], list[str]]:
    """The modules whose ``__all__`` must be documented, and the errors met while importing them."""
    errors: list[str] = []
    names = [ROOT_PACKAGE, *EXTRA_MODULES]
    try:
        adapters = importlib.import_module(ADAPTER_PACKAGE)
    except Exception as exc:  # an adapter that cannot even be imported is a finding, not a crash
        return names, [f"cannot import {ADAPTER_PACKAGE}: {exc!r}"]
    if hasattr(adapters, "__all__"):
        names.append(ADAPTER_PACKAGE)

    def onerror(name: str) -> None:
        errors.append(f"cannot import {name}: {sys.exc_info()[1]!r}")

    for info in pkgutil.walk_packages(adapters.__path__, ADAPTER_PACKAGE + ".", onerror=onerror):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private modules (and everything under them)
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:
            errors.append(f"cannot import {info.name}: {exc!r}")
            continue
        if hasattr(module, "__all__"):
            names.append(info.name)
    return names, errors


def expected_api_names(modules: Iterable[str]) -> tuple[list[Expected], list[Expected]]:
    """(names that need an entry, exempt names) from the ``__all__`` of each module."""
    wanted: list[Expected] = []
    exempt: list[Expected] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            (exempt if is_exempt(name) else wanted).append(Expected(module_name, name))
    return wanted, exempt


_MISSING = object()


@functools.cache
def _module_or_none(name: str) -> Any:
    if name != ROOT_PACKAGE and not name.startswith(ROOT_PACKAGE + "."):
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # not a module (a class path such as banditlib.LinUCB), or unimportable
        return None


def same_object(expected: Expected, module_name: str) -> bool:
    """True when ``module_name`` is a banditlib module whose attribute ``expected.name`` is the same object."""
    module = _module_or_none(module_name)
    if module is None:
        return False
    target = getattr(importlib.import_module(expected.module), expected.name, _MISSING)
    return target is not _MISSING and getattr(module, expected.name, _MISSING) is target


def match_api_names(
    expected: Iterable[Expected],
    ids: Iterable[str],
    same: Callable[[Expected, str], bool] = same_object,
) -> tuple[dict[Expected, str], list[Expected]]:
    """Match each expected public name to a documented id; return ({name: id}, missing names).

    The rule: ``module.Name`` is documented when the page has an element with id ``module.Name`` (documented
    where it is exported), or with an id ``P.Name`` where ``P`` is a banditlib *module* (not a class: a
    method of the same name does not count) whose attribute ``Name`` is the very same object, e.g.
    ``banditlib.policies.linear.LinUCB`` for ``banditlib.LinUCB``, or ``banditlib.adapters.rlvr.X`` for
    ``banditlib.adapters.rlvr.scheduler.X``. ``same(expected, P)`` decides the second case.
    """
    ids = set(ids)
    by_name: dict[str, list[str]] = {}
    for ident in ids:
        prefix, _, last = ident.rpartition(".")
        if prefix:
            by_name.setdefault(last, []).append(prefix)
    found: dict[Expected, str] = {}
    missing: list[Expected] = []
    for item in expected:
        if item.path in ids:
            found[item] = item.path
            continue
        for prefix in sorted(by_name.get(item.name, [])):
            if same(item, prefix):
                found[item] = f"{prefix}.{item.name}"
                break
        else:
            missing.append(item)
    return found, missing


def empty_doc_entries(doc: Node) -> list[str]:
    """Ids of mkdocstrings entries whose ``doc-contents`` hold no docstring text at all.

    The base-class line and the members (``doc-children``) do not count as the entry's own text.
    """
    empty: list[str] = []
    for node in doc.iter():
        if not {"doc", "doc-object"} <= node.classes:
            continue
        kids = [c for c in node.children if isinstance(c, Node)]
        heading = next((c for c in kids if "doc-heading" in c.classes and c.attrs.get("id")), None)
        contents = next((c for c in kids if "doc-contents" in c.classes), None)
        if heading is None:
            continue
        own = (
            ""
            if contents is None
            else contents.text(skip=lambda n: bool({"doc-children", "doc-class-bases"} & n.classes))
        )
        if not own.strip():
            empty.append(heading.attrs["id"])
    return empty


def entry_ids(doc: Node) -> set[str]:
    """Ids of the mkdocstrings entries (``doc-heading`` elements) on a page."""
    return {n.attrs["id"] for n in doc.iter() if "doc-heading" in n.classes and n.attrs.get("id")}


def check_api(ids: set[str], pages: list[str]) -> tuple[list[str], list[str]]:
    """(failures, notes) for the public names, given the entry ids gathered from ``pages``."""
    modules, failures = public_modules()
    wanted, exempt = expected_api_names(modules)
    found, missing = match_api_names(wanted, ids)
    notes = [
        f"API: {len(wanted)} public names from {len(modules)} modules ({', '.join(modules)}); "
        f"{len(found)} documented, {len(missing)} missing",
        f"API: {len(ids)} mkdocstrings entries found on {len(pages)} pages ({', '.join(pages) or 'none'})",
        "API: exempt (dunder metadata, no docstring of its own): " + (", ".join(e.path for e in exempt) or "none"),
        "API: rule: an id equal to module.Name, or P.Name where P is a banditlib module whose Name is the same object",
    ]
    # Each missing object is listed once, under the first module (in walk order: parents first) exporting it.
    listed: set[tuple[str, int]] = set()
    for module in modules:
        names = []
        for item in (m for m in missing if m.module == module):
            key = (item.name, id(getattr(importlib.import_module(module), item.name, None)))
            if key not in listed:
                listed.add(key)
                names.append(item.name)
        if names:
            also = sum(m.module == module for m in missing) - len(names)
            extra = f"; {also} more already listed above" if also else ""
            failures.append(f"missing API entries from {module}.__all__ ({len(names)}{extra}): {', '.join(names)}")
    return failures, notes


# --------------------------------------------------------------------------------------------------------
# Network and console logs
# --------------------------------------------------------------------------------------------------------

LOCAL_HOSTS = frozenset({"127.0.0.1"})
NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})


def is_external(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in NETWORK_SCHEMES and parts.hostname not in LOCAL_HOSTS


def network_failures(events: Iterable[dict[str, Any]]) -> list[str]:
    """Failures among DevTools ``Network.*`` events (``{"method": ..., "params": ...}``), one line each."""
    urls: dict[str, str] = {}
    problems: dict[str, None] = {}  # ordered set
    for event in events:
        method, params = event.get("method", ""), event.get("params", {})
        request_id = params.get("requestId", "")
        if method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            urls[request_id] = url
            if is_external(url):
                problems[f"external request (the site must work offline): {url}"] = None
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            status, url = int(response.get("status", 0)), response.get("url", "")
            if status >= 400:
                problems[f"HTTP {status}: {url}"] = None
        elif method == "Network.loadingFailed":
            url = urls.get(request_id)
            if url is None or params.get("canceled") or is_external(url):
                continue  # not this page's request, cancelled on purpose, or already reported as external
            reason = params.get("blockedReason") or params.get("errorText", "failed")
            problems[f"request failed ({reason}): {url}"] = None
    return list(problems)


def console_errors(entries: Iterable[dict[str, Any]], network: list[str]) -> tuple[list[str], list[str]]:
    """(console errors, extra network failures) from Chromium's ``browser`` log.

    A failed resource also shows as a console error with source ``network``; it goes with the network
    failures unless its URL is already there.
    """
    errors: list[str] = []
    extra: list[str] = []
    for entry in entries:
        if entry.get("level") != "SEVERE":
            continue
        message = " ".join(str(entry.get("message", "")).split())
        if entry.get("source") == "network":
            url = message.split(" ", 1)[0]
            if not any(url in line for line in network):
                extra.append(f"network error: {_clip(message, 200)}")
        else:
            errors.append(_clip(message, 300))
    return errors, extra


# --------------------------------------------------------------------------------------------------------
# Site: build, pages, server, links
# --------------------------------------------------------------------------------------------------------


def build_site(dest: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    cmd = [str(mkdocs)] if mkdocs.exists() else [sys.executable, "-m", "mkdocs"]
    cmd += ["build", "--strict", "--site-dir", str(dest)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    print(f"docs-check: building the site: NO_MKDOCS_2_WARNING=1 {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"docs-check: FAIL: mkdocs build --strict exited {proc.returncode}")


def site_pages(site: Path) -> list[str]:
    """Site paths of every HTML page ('' for the home page, 'api/' for api/index.html, '404.html')."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        if rel.startswith("assets/"):
            continue
        pages.append(rel[: -len("index.html")] if rel == "index.html" or rel.endswith("/index.html") else rel)
    return sorted(pages, key=lambda p: (p != "", p))


def page_file(site: Path, page: str) -> Path | None:
    """The file a site path is served from (None when there is none)."""
    page = urllib.parse.unquote(page).lstrip("/")
    path = site / page
    if page == "" or page.endswith("/") or path.is_dir():
        path = path / "index.html"
    return path if path.is_file() else None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the browser dropped a request it no longer needs
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1 (a free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LinkChecker:
    """Internal links: the target must be served (HTTP 200) and hold the ``#anchor``, if any."""

    base: str
    site: Path
    _status: dict[str, int] = field(default_factory=dict)
    _ids: dict[str, set[str]] = field(default_factory=dict)

    def status(self, url: str) -> int:
        if url not in self._status:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    self._status[url] = response.status
            except urllib.error.HTTPError as exc:
                self._status[url] = exc.code
            except OSError:
                self._status[url] = 0
        return self._status[url]

    def ids(self, path: str) -> set[str]:
        if path not in self._ids:
            file = page_file(self.site, path)
            self._ids[path] = element_ids(parse_html(file.read_text(encoding="utf-8"))) if file else set()
        return self._ids[path]

    def broken(self, hrefs: Iterable[str], own_ids: set[str], page_url: str) -> list[str]:
        problems: dict[str, None] = {}
        for href in hrefs:
            if not href.startswith(self.base):
                continue  # external links are not loaded by the page, so they are not checked here
            url, _, fragment = href.partition("#")
            fragment = urllib.parse.unquote(fragment)
            status = self.status(url)
            shown = href[len(self.base) - 1 :]
            if status != 200:
                problems[f"broken link (HTTP {status or 'error'}): {shown}"] = None
                continue
            path = url[len(self.base) :]
            if fragment and (path.endswith("/") or path.endswith(".html") or path == ""):
                ids = own_ids if url == page_url.partition("#")[0] else self.ids(path)
                if fragment not in ids:
                    problems[f"broken anchor: {shown}"] = None
        return list(problems)


# --------------------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------------------


def find_browser(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def find_driver(explicit: str | None) -> str | None:
    return (
        explicit
        or shutil.which("chromedriver")
        or next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).exists()), None)
    )


@contextlib.contextmanager
def chromium(browser: str, driver_path: str, timeout: float) -> Iterator[Any]:
    """A headless Chromium driven through the given chromedriver (Selenium Manager is never consulted)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="docs-check-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # we run as root in containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--force-color-profile=srgb",
        # Offline by construction: every host but 127.0.0.1 fails to resolve, at once and on any machine.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    # A driver path given to Service means Selenium Manager is not run, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(timeout)
        driver.set_script_timeout(timeout)
        driver.get("about:blank")  # leave the start page, whose own requests would land in the first page's logs
        time.sleep(0.2)
        driver.get_log("browser")
        driver.get_log("performance")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


MATH_RENDERER_JS = """
return !!((window.MathJax && window.MathJax.startup) || window.katex || window.renderMathInElement);
"""
PENDING_MATH_JS = """
return Array.from(document.querySelectorAll('.arithmatex'))
  .filter(e => !e.querySelector('.katex, mjx-container')).length;
"""
IMAGES_JS = """
const imgs = Array.from(document.images);
imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
return imgs.filter(i => !i.complete).length;
"""
BROKEN_IMAGES_JS = """
return Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0)
  .map(i => i.getAttribute('src') || i.currentSrc);
"""
WAIT_FONTS_JS = """
const done = arguments[arguments.length - 1];
(document.fonts ? document.fonts.ready : Promise.resolve()).then(() => done(true), () => done(false));
"""


@dataclass
class PageResult:
    page: str
    console: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)
    maths: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    api: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entries: set[str] = field(default_factory=set)
    math_count: int = 0
    seconds: float = 0.0
    screenshot: str = ""

    @property
    def failures(self) -> list[str]:
        return self.report_lines(len(self.maths))

    def report_lines(self, max_maths: int) -> list[str]:
        """The failures, one line each, listing at most ``max_maths`` maths problems (the rest counted)."""
        maths = self.maths[:max_maths]
        if len(self.maths) > max_maths:
            maths.append(f"... and {len(self.maths) - max_maths} more maths problems on this page (--max-lines)")
        return [
            *self.other,
            *(f"console error: {m}" for m in self.console),
            *self.network,
            *maths,
            *(f"image did not load: {m}" for m in self.images),
            *self.links,
            *self.api,
        ]


def _wait(predicate: Callable[[], bool], seconds: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def _screenshot(driver: Any, dest: Path) -> None:
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width, height = max(1, int(size["width"])), max(1, min(int(size["height"]), 30000))
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    dest.write_bytes(base64.b64decode(shot["data"]))


def check_page(driver: Any, base: str, page: str, links: LinkChecker, shots: Path | None, settle: float) -> PageResult:
    from selenium.common.exceptions import TimeoutException, WebDriverException

    result = PageResult(page or "/")
    start = time.monotonic()
    driver.get_log("browser")  # drop what earlier pages left
    driver.get_log("performance")
    url = base + page
    try:
        driver.get(url)
    except TimeoutException:
        result.other.append("page load timed out")
    except WebDriverException as exc:
        result.other.append(f"page did not load: {exc.msg}")
        result.seconds = time.monotonic() - start
        return result
    _wait(lambda: driver.execute_script("return document.readyState") == "complete", settle)
    # Give the maths renderer up to `settle` seconds; a page without maths, with all of it rendered, or with no
    # renderer loaded (KaTeX or MathJax) a second after the load, goes on at once.
    loaded = time.monotonic()

    def math_settled() -> bool:
        if driver.execute_script(PENDING_MATH_JS) == 0:
            return True
        return time.monotonic() - loaded > 1.0 and not driver.execute_script(MATH_RENDERER_JS)

    time.sleep(0.2)
    _wait(math_settled, settle)
    _wait(lambda: driver.execute_script(IMAGES_JS) == 0, min(settle, 5.0))
    with contextlib.suppress(WebDriverException):
        driver.execute_async_script(WAIT_FONTS_JS)

    doc = parse_html(driver.execute_script("return document.documentElement.outerHTML"))
    result.math_count = sum("arithmatex" in n.classes for n in doc.iter())
    result.maths = find_unrendered_math(doc)
    result.images = list(dict.fromkeys(driver.execute_script(BROKEN_IMAGES_JS)))
    hrefs = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    result.links = links.broken(hrefs, element_ids(doc), driver.current_url)
    result.entries = entry_ids(doc)
    empty = empty_doc_entries(doc)
    if empty:
        result.api.append(f"API entries with no docstring text ({len(empty)}): {', '.join(empty)}")
    if shots is not None:
        name = (page.rstrip("/").replace("/", "__") or "index").removesuffix(".html") + ".png"
        try:
            _screenshot(driver, shots / name)
            result.screenshot = str(shots / name)
        except WebDriverException as exc:
            result.other.append(f"screenshot failed: {exc.msg}")

    events = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"]).get("message", {})
        if str(message.get("method", "")).startswith("Network."):
            events.append(message)
    result.network = network_failures(events)
    result.console, extra = console_errors(driver.get_log("browser"), result.network)
    result.network += extra
    result.seconds = time.monotonic() - start
    return result


# --------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------


def summary_table(results: list[PageResult]) -> str:
    head = ("page", "result", "console", "network", "maths", "raw maths", "images", "links", "entries", "api", "s")
    rows = [head]
    for r in results:
        rows.append(
            (
                r.page,
                "FAIL" if r.failures else "ok",
                str(len(r.console)),
                str(len(r.network)),
                str(r.math_count),
                str(len(r.maths)),
                str(len(r.images)),
                str(len(r.links)),
                str(len(r.entries)),
                str(len(r.api)),
                f"{r.seconds:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="docs_check.py")
    parser.add_argument("--site-dir", type=Path, help="check this already-built site instead of building one")
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=Path("docs-check"),
        help="folder for one full-page PNG per page (default: docs-check/); '' for none",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to load one page (default: 30)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait at most for maths and images to render (default: 5)"
    )
    parser.add_argument(
        "--max-lines", type=int, default=10, help="maths problems listed per page; the rest are counted (default: 10)"
    )
    parser.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    parser.add_argument("--chromedriver", help="driver binary (default: chromedriver on PATH)")
    args = parser.parse_args(argv)
    start = time.monotonic()

    browser, driver_path = find_browser(args.chromium), find_driver(args.chromedriver)
    if not browser or not driver_path:
        print(
            "docs-check: FAIL: needs Chromium and its driver: apt-get install -y chromium chromium-driver",
            file=sys.stderr,
        )
        return 2
    try:
        import selenium  # noqa: F401
    except ImportError:
        print(f"docs-check: FAIL: needs Selenium: {sys.executable} -m pip install 'selenium>=4.20,<5'", file=sys.stderr)
        return 2

    with contextlib.ExitStack() as stack:
        if args.site_dir:
            site = args.site_dir.resolve()
            if not (site / "index.html").is_file():
                print(f"docs-check: FAIL: no index.html in {site}", file=sys.stderr)
                return 2
        else:
            site = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="docs-check-site-")))
            build_site(site)
        shots: Path | None = None
        if str(args.screenshots) not in ("", "."):
            shots = args.screenshots.resolve()
            if (shots / SCREENSHOT_MARKER).exists():
                for old in shots.glob("*.png"):
                    old.unlink()
            shots.mkdir(parents=True, exist_ok=True)
            (shots / SCREENSHOT_MARKER).write_text("screenshots written by tools/docs_check.py\n")
        pages = site_pages(site)
        print(f"docs-check: {len(pages)} pages from {site}", flush=True)
        base = stack.enter_context(serve(site))
        print(f"docs-check: serving on {base}; browser {browser}, driver {driver_path}", flush=True)
        driver = stack.enter_context(chromium(browser, driver_path, args.timeout))
        links = LinkChecker(base, site)
        results = []
        for page in pages:
            result = check_page(driver, base, page, links, shots, args.settle)
            print(f"  {'FAIL' if result.failures else 'ok  '} {result.page} ({result.seconds:.1f} s)", flush=True)
            results.append(result)

    # Public names: an entry on any page counts (the API reference may span several pages); the findings go
    # with the API reference page, api/.
    api_result = next((r for r in results if r.page == API_PAGE), None)
    if api_result is None:
        api_result = PageResult(API_PAGE, other=["the API reference page (api/) is not in the site"])
        results.append(api_result)
    ids = set().union(*(r.entries for r in results))
    api_failures, api_result.notes = check_api(ids, [r.page for r in results if r.entries])
    api_result.api += api_failures
    print(f"  {'FAIL' if api_failures else 'ok  '} public names of __all__ ({len(api_failures)} problems)")

    print()
    print(summary_table(results))
    failed = [r for r in results if r.failures]
    for r in results:
        for note in r.notes:
            print(note)
    for r in failed:
        print(f"\nFAIL {r.page} ({len(r.failures)}):")
        for line in r.report_lines(args.max_lines):
            print(f"  - {line}")
    if shots is not None:
        print(f"\ndocs-check: screenshots in {shots}/")
    verdict = f"FAIL: {len(failed)} of {len(results)} pages have problems" if failed else "all pages ok"
    print(f"docs-check: {verdict}; runtime {time.monotonic() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
