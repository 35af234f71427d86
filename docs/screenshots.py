"""Screenshots of the main report views for the README, taken in headless Chromium from the reports on disk.

    .venv/bin/python docs/screenshots.py [project_dir]    # default: this project; needs its reports/ (`make run`)

Writes docs/screenshots/<view>.png, each cropped to the figures it shows (found by their titles, so the views do
not depend on the order of cells). The network is blocked, as on an air-gapped machine.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import browser_page  # noqa: E402

HERE = Path(__file__).resolve().parent
# view name -> (page under reports/, words from the titles of the figures to show; none: the whole page)
VIEWS = {
    "index": ("index.html", []),
    "monitor": ("monitor.html", ["Every version"]),
    "site_hubs_map": ("stages/site_hubs.html", ["recommended hubs"]),
    "train_need_map": ("stages/train_need.html", ["Need index by district"]),
    "evaluate_growth_fan": ("stages/evaluate_growth.html", ["Lima: population", "Arequipa: population"]),
    "allocate_resources_coverage": ("stages/allocate_resources.html", ["covered by rule", "covered by maxcover"]),
}
DRAWN = """() => [...document.querySelectorAll('.plotly-graph-div')].every(
    d => d._fullLayout && d.querySelector('.main-svg'))"""


def figure_box(page, title: str) -> dict:
    "The box (page coordinates) of the one plotly figure whose title contains `title`."
    figs = page.locator(".js-plotly-plot").filter(has=page.locator(".gtitle", has_text=title))
    if figs.count() != 1:
        raise SystemExit(f"{page.url}: {figs.count()} figures titled '{title}', expected 1")
    figs.scroll_into_view_if_needed()
    return page.evaluate(
        "e => {const r = e.getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, "
        "width: r.width, height: r.height}}",
        figs.element_handle(),
    )


def union(boxes: list[dict], pad: int = 8) -> dict:
    "The smallest box holding `boxes`, with `pad` pixels around."
    x0, y0 = min(b["x"] for b in boxes) - pad, min(b["y"] for b in boxes) - pad
    x1, y1 = max(b["x"] + b["width"] for b in boxes) + pad, max(b["y"] + b["height"] for b in boxes) + pad
    return dict(x=max(x0, 0), y=max(y0, 0), width=x1 - max(x0, 0), height=y1 - max(y0, 0))


def shoot(reports: Path, out: Path = HERE / "screenshots") -> list[Path]:
    "Save one PNG per view in `VIEWS` from the reports in `reports`; return their paths."
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with browser_page(width=1100, height=900) as (page, errors):
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
        for name, (html, titles) in VIEWS.items():
            page.goto((reports / html).resolve().as_uri(), wait_until="load")
            page.wait_for_function(DRAWN, timeout=30_000)
            clip = union(
                [figure_box(page, t) for t in titles]
                if titles
                else [page.locator("body > *").first.bounding_box(), page.locator("table").bounding_box()]
            )
            page.mouse.move(0, 0)  # no hover label or mode bar in the picture
            page.screenshot(path=out / f"{name}.png", clip=clip, full_page=True)
            saved.append(out / f"{name}.png")
    if errors.all():
        raise SystemExit(f"the reports raised errors: {errors.all()}")
    return saved


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent)
    for p in shoot(root / "reports"):
        print(p.relative_to(HERE.parent))
