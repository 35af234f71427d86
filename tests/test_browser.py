"""The reports in a real browser, offline: headless Chromium opens `reports/index.html` from disk with every network
request blocked, follows every local link from it, and on each page checks that no script failed, every plotly
figure drew, and every in-page link has its target. One browser visits all pages (about a second a page)."""

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

from browser import browser_page, plotly_figures

# Stage reports that must show at least one figure: a renderer that lost them would otherwise pass unnoticed.
WITH_FIGURES = {
    "stages/explore.html",
    "stages/evaluate_growth.html",
    "stages/train_need.html",
    "stages/site_hubs.html",
    "stages/allocate_resources.html",
}
LOCAL = ("file:", "data:", "blob:", "about:")

# Resolves once every plotly figure on the page has drawn its SVG (or at once when there is none).
PLOTLY_DRAWN = """() => [...document.querySelectorAll('.plotly-graph-div')].every(
    d => d.classList.contains('js-plotly-plot') && d._fullLayout && d.querySelector('.main-svg'))"""
# Every link on the page: its resolved URL and, for in-page links (#id), whether the target exists.
LINKS = """els => els.map(a => {
    const href = a.getAttribute('href'), id = href.startsWith('#') ? decodeURIComponent(href.slice(1)) : null;
    return {href, url: a.href,
            target: id === null || id === '' || !!document.getElementById(id)
                    || document.getElementsByName(id).length > 0};
})"""


@dataclass
class Visit:
    "What one page did in the browser."

    page: str  # path relative to reports/
    errors: list = field(default_factory=list)  # page errors and console errors
    blocked: list = field(default_factory=list)  # requests for anything not on disk
    declared: int = 0  # plotly figures in the HTML
    shapes: list = field(default_factory=list)  # SVG shapes per drawn figure
    not_drawn: str = ""  # why the figures did not finish drawing
    bad_anchors: list = field(default_factory=list)
    bad_links: list = field(default_factory=list)


def local_path(url: str) -> Path | None:
    "The file a file:// URL points to, without its #fragment; None for other URLs."
    u = urlparse(urldefrag(url)[0])
    return Path(unquote(u.path)) if u.scheme == "file" else None


def visit(page, errors, path: Path, root: Path) -> tuple[Visit, list[Path]]:
    "Open `path` in `page`, check it, and return what it did and the local HTML pages it links to."
    v, seen = Visit(path.relative_to(root).as_posix()), len(errors.all())
    page.goto(path.as_uri(), wait_until="load")
    v.declared = page.locator(".plotly-graph-div").count()
    try:
        page.wait_for_function(PLOTLY_DRAWN, timeout=20_000)
    except Exception as e:
        v.not_drawn = str(e).splitlines()[0]
    v.shapes = plotly_figures(page)
    v.errors = errors.all()[seen:]
    pages = []
    for link in page.eval_on_selector_all("a[href]", LINKS):
        if not link["target"]:
            v.bad_anchors.append(link["href"])
        target = local_path(link["url"])
        if target is None or link["href"].startswith("#"):
            continue  # in-page, or external (not reachable offline)
        if not target.is_file():
            v.bad_links.append(link["href"])
        elif target.suffix == ".html":
            pages.append(target.resolve())
    return v, pages


def crawl(index: Path) -> dict[str, Visit]:
    "Visit `index` and every local HTML page reachable from it, in one headless Chromium with the network blocked."
    root, todo, visits = index.parent.resolve(), [index.resolve()], {}
    with browser_page() as (page, errors):
        blocked = []
        page.route(
            "**/*",
            lambda r: r.continue_() if r.request.url.startswith(LOCAL) else (blocked.append(r.request.url), r.abort()),
        )
        while todo:
            path = todo.pop(0)
            if path.relative_to(root).as_posix() in visits:
                continue
            n = len(blocked)
            v, links = visit(page, errors, path, root)
            v.blocked = blocked[n:]
            visits[v.page] = v
            todo += [p for p in links if p.is_relative_to(root)]
    return visits


@pytest.fixture(scope="module")
def visits(project) -> dict[str, Visit]:
    "Every report page reachable from the pipeline's `reports/index.html`, visited offline."
    return crawl(project / "reports" / "index.html")


def failures(visits: dict[str, Visit], check) -> list[str]:
    "`page: problem` for each problem `check(visit)` finds."
    return [f"{v.page}: {p}" for v in visits.values() for p in check(v)]


def test_index_links_every_stage(visits, project):
    stages = {f"stages/{p.stem}.html" for p in (project / "reports" / "stages").glob("*.ipynb")}
    missing = sorted(stages - set(visits))
    assert not missing, f"stage reports not reached from index.html: {missing}"


def test_no_network(visits):
    assert not (bad := failures(visits, lambda v: [f"requested {u}" for u in v.blocked])), "\n".join(bad)


def test_no_javascript_errors(visits):
    assert not (bad := failures(visits, lambda v: v.errors)), "\n".join(bad)


def figure_problems(v: Visit) -> list[str]:
    "Why the figures of one page are not all drawn."
    bad = [f"figure {i} drew nothing (no SVG shapes)" for i, n in enumerate(v.shapes) if n == 0]
    if len(v.shapes) < v.declared:
        bad.append(f"{v.declared - len(v.shapes)} of {v.declared} figures never drew ({v.not_drawn})")
    if v.page in WITH_FIGURES and v.declared == 0:
        bad.append("has no plotly figure, and it should")
    return bad


def test_every_figure_draws(visits):
    assert not (bad := failures(visits, figure_problems)), "\n".join(bad)
    assert WITH_FIGURES & set(visits), "none of the pages with figures was reached"


def test_links_resolve(visits):
    bad = failures(
        visits,
        lambda v: (
            [f"link to missing file {h}" for h in v.bad_links]
            + [f"in-page link {h} has no target" for h in v.bad_anchors]
        ),
    )
    assert not bad, "\n".join(bad)
