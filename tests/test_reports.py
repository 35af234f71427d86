"""Parameterized reports: `urbanlab report NAME -p key=value`, `--each department` (urbanlab.reports.render)."""

import hashlib, re, shutil, time
from pathlib import Path
import nbformat
import pandas as pd
import pytest
from conftest import ROOT, sh
from urbanlab.cli import main
from urbanlab.reports.render import ReportFailed, locked_md5s, render_many, render_report

TINY = """value: int = 1                        # a number [0..10]
marker_path: str = "data/marker.txt"  # a file that must say ok"""
TINY_BODY = """from pathlib import Path
import plotly.express as px
from urbanlab.reports.offline import use_offline_plotly
use_offline_plotly()
assert Path(marker_path).read_text() == "ok" and value != 2, "refused"
px.bar(x=["a", "b"], y=[1, value], title="tiny").show()"""


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    "A project with no pipeline outputs: the department report, and a tiny report that fails on demand."
    shutil.copy(ROOT / "settings.ini", tmp_path / "settings.ini")
    (tmp_path / "nbs" / "reports").mkdir(parents=True)
    shutil.copy(ROOT / "nbs" / "reports" / "department.ipynb", tmp_path / "nbs" / "reports")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Tiny"),
            nbformat.v4.new_code_cell(TINY, metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(TINY_BODY),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nbs" / "reports" / "tiny.ipynb")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "marker.txt").write_text("ok")
    monkeypatch.setenv("URBANLAB_ROOT", str(tmp_path))
    return tmp_path


def test_errors_are_clear_before_anything_runs(tiny, capsys):
    cases = [
        (["report", "departmnt"], "Unknown report 'departmnt'. Did you mean 'department'?"),
        (["report", "tiny", "-p", "valu=3"], "unknown parameter 'valu'. Did you mean 'value'?"),
        (["report", "tiny", "-p", "value=11"], "parameter 'value' must be in [0..10], got 11"),
        (["report", "department", "-p", "department=CUSCO"], "Run the pipeline first: `urbanlab run`"),
        (["report", "department", "--each", "department"], "Run the pipeline first: `urbanlab run`"),
        (["report", "department", "--each", "provinc"], "--each 'provinc' is not supported"),
    ]
    for args, expected in cases:
        assert main(args) == 1, args
        assert expected in capsys.readouterr().err, args
    for d in ["interim", "processed/growth", "processed/need", "processed/hubs"]:
        (tiny / "data" / d).mkdir(parents=True)
    pd.DataFrame({"department": ["CUSCO", "LIMA"]}).to_parquet(tiny / "data" / "interim" / "districts.parquet")
    assert main(["report", "department", "-p", "department=Cuzco"]) == 1
    assert "Unknown department 'Cuzco'. Did you mean 'CUSCO'?" in capsys.readouterr().err
    assert not (tiny / "reports").exists()  # nothing was written


def test_failed_render_keeps_the_good_report(tiny):
    html = render_report("tiny", {"value": 3}, tiny, png=True)
    assert html == tiny / "reports" / "tiny" / "tiny-value-3.html"
    page = html.read_text()
    assert "Provenance." in page and "value = 3" in page and hashlib.md5(b"ok").hexdigest() in page
    assert "read_text" not in page and "hl-ipython3" not in page  # code hidden (no source, no highlighted cell)
    assert (tiny / "reports" / "tiny" / "value-3" / "figures" / "01.png").read_bytes()[:4] == b"\x89PNG"
    before = {p: p.read_bytes() for p in (tiny / "reports").rglob("*") if p.is_file()}
    (tiny / "data" / "marker.txt").write_text("bad")
    with pytest.raises(ReportFailed, match=r"Report 'tiny' \(value=3\) failed in cell \d+: AssertionError: refused"):
        render_report("tiny", {"value": 3}, tiny, png=True)
    after = {p: p.read_bytes() for p in (tiny / "reports").rglob("*") if p.is_file() and "failed" not in p.parts}
    assert after == before  # the good report is untouched, nothing half-written beside it
    assert (tiny / "reports" / "failed" / "tiny-value-3.ipynb").exists()
    assert not list((tiny / ".urbanlab" / "staging" / "reports").iterdir())


def test_many_reports_go_on_past_a_failure(tiny):
    results = render_many("tiny", [{"value": 1}, {"value": 2}, {"value": 4}], tiny, workers=2, progress=False)
    assert [r.error is None for r in results] == [True, False, True]
    assert "Report 'tiny' (value=2) failed" in results[1].error and "refused" in results[1].error
    assert sorted(p.name for p in (tiny / "reports" / "tiny").glob("*.html")) == [
        "tiny-value-1.html",
        "tiny-value-4.html",
    ]
    assert "tiny-value-1.html" in main_index(tiny)


def main_index(root: Path) -> str:
    from urbanlab.reports.render import refresh_index

    return refresh_index(root).read_text()


def test_each_department_renders_25_reports(project):
    t0 = time.perf_counter()
    res = sh(["urbanlab", "report", "department", "--each", "department"], project)
    seconds = time.perf_counter() - t0
    pages = sorted((project / "reports" / "department").glob("*.html"))
    assert len(pages) == 25 and len({p.name for p in pages}) == 25, res.stdout
    assert "25 of 25 reports" in res.stdout
    commit = sh(["git", "rev-parse", "--short=12", "HEAD"], project).stdout.strip()
    locked = locked_md5s(project)
    for p in pages:
        page = p.read_text()
        assert "Provenance." in page and f"from commit <code>{commit}" in page, p
        for path in ["data/interim", "data/processed/need", "data/processed/hubs", "data/processed/growth"]:
            assert locked[path] in page, (p, path)  # the DVC md5 dvc.lock records for each input
        assert "require_outputs" not in page and "hl-ipython3" not in page  # code hidden
        assert not re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"https?:", page)  # nothing from the network
        assert page.count("Plotly.newPlot") >= 3
    cusco = (project / "reports" / "department" / "department-department-cusco.html").read_text()
    assert "department = &#39;CUSCO&#39;" in cusco or "department = 'CUSCO'" in cusco
    assert "SYNTHETIC" in cusco and "proven optimal" in cusco
    index = (project / "reports" / "index.html").read_text()
    assert "Report <code>department</code> (25)" in index and "href='stages/explore.html'" in index
    assert all(f"department/{p.name}" in index for p in pages)
    print(f"25 department reports in {seconds:.0f} s")


def test_one_report_with_png_and_code(project):
    res = sh(
        ["urbanlab", "report", "department", "-p", "department=callao", "-p", "n_hubs=2", "--png", "--show-code"],
        project,
    )
    page = (project / "reports" / "department" / "department-department-callao_n-hubs-2.html").read_text()
    assert "require_outputs" in page and "hl-ipython3" in page and "n_hubs = 2" in page, res.stdout  # code shown
    figures = sorted((project / "reports" / "department" / "department-callao_n-hubs-2" / "figures").glob("*.png"))
    assert len(figures) >= 3 and all(f.read_bytes()[:4] == b"\x89PNG" for f in figures)
