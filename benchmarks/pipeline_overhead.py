"""Measure urbanlab's own pipeline overhead: what papermill, nbconvert and DVC add beyond the notebooks' work.

The project is copied into a temporary folder (the files git would commit, so no .venv, outputs or reports), where:

1. each stage runs as DVC runs it, `urbanlab stage NAME`, in pipeline order; its wall time is split using the
   papermill durations recorded in the executed notebook, and a separate timing of the HTML rendering;
2. the whole pipeline runs cold (`dvc repro` with outputs and dvc.lock deleted), then again with nothing changed.

The real project's outputs are never touched. Figures go to stdout, progress to stderr.

    .venv/bin/python benchmarks/pipeline_overhead.py                  # real parameters (params.yaml)
    .venv/bin/python benchmarks/pipeline_overhead.py --max-rows 3000  # a quicker run on a sample
"""

from __future__ import annotations
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from importlib.metadata import version
from pathlib import Path
import nbformat, yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "explore", "report"]  # pipeline order: each stage's inputs exist when it runs
OUTPUTS = ["data/interim", "data/processed", "reports", "metrics", "plots", ".urbanlab", "dvc.lock"]
COLUMNS = {  # key: (heading, meaning)
    "wall": ("wall s", "`urbanlab stage NAME` as DVC runs it, Python start-up included"),
    "cells": ("cells s", "the notebook's work: sum of papermill's per-cell durations"),
    "papermill": (
        "papermill s",
        "papermill's run minus the cells: kernel start, injection, saving the notebook after each cell",
    ),
    "html": ("html s", "render_html on the executed notebook (median of 3, imports already done)"),
    "rest": ("rest s", "wall - papermill run - html: Python start-up, imports, parameter checks, moving outputs"),
    "overhead": ("overhead s", "wall - cells: everything that is not the notebook's own work"),
    "overhead_pct": ("overhead %", "overhead as a share of wall"),
}


def progress(msg: str) -> None:
    "Print a progress line on stderr."
    print(f"[pipeline_overhead] {msg}", file=sys.stderr, flush=True)


def bench_env(copy: Path) -> dict:
    "Environment for commands in `copy`: the venv's bin first on PATH, the copy's urbanlab imported and used as root."
    env = dict(
        os.environ,
        URBANLAB_ROOT=str(copy),
        PYTHONPATH=str(copy),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@localhost",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@localhost",
    )
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run(cmd: list[str], copy: Path) -> float:
    "Run `cmd` in `copy` and return its wall time in seconds; on failure show its output and stop."
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=copy, env=bench_env(copy), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"`{' '.join(cmd)}` failed ({res.returncode}):\n{(res.stdout + res.stderr)[-4000:]}")
    return seconds


def make_copy(dest: Path, max_rows: int) -> Path:
    "Copy the project's committable files to `dest`, set `ingest.max_rows` if non-zero, commit it in a new git repo."
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    if max_rows:
        params = yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8"))
        params["ingest"]["max_rows"] = max_rows
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "benchmark copy"]):
        run(cmd, dest)
    return dest


def time_render(executed: Path, repeat: int = 3) -> float:
    "Median seconds of `render_html` on the executed notebook `executed` (after one untimed call for imports)."
    from urbanlab.pipeline.run import render_html

    out = executed.with_suffix(".bench.html")
    render_html(executed, out)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        render_html(executed, out)
        times.append(time.perf_counter() - t0)
    out.unlink()
    return statistics.median(times)


def measure_stage(name: str, copy: Path) -> dict:
    "Run stage `name` in `copy` once and split its wall time using papermill's recorded durations."
    wall = run(["urbanlab", "stage", name], copy)
    executed = copy / "reports" / "stages" / f"{name}.ipynb"
    nb = nbformat.read(executed, as_version=4)
    cells = sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in nb.cells)
    papermill_total = nb.metadata.papermill.duration
    html = time_render(executed)
    return dict(
        wall=wall,
        cells=cells,
        papermill=papermill_total - cells,
        html=html,
        rest=wall - papermill_total - html,
        overhead=wall - cells,
        overhead_pct=100 * (wall - cells) / wall,
    )


def measure_stages(copy: Path, repeat: int) -> dict[str, dict]:
    "Per stage, the median of each figure over `repeat` runs of the whole stage sequence."
    runs = {name: [] for name in STAGES}
    for i in range(repeat):
        for name in STAGES:
            progress(f"stage {name}, run {i + 1}/{repeat}")
            runs[name].append(measure_stage(name, copy))
    return {name: {k: statistics.median(r[k] for r in rs) for k in COLUMNS} for name, rs in runs.items()}


def measure_repro(copy: Path) -> dict:
    "Wall seconds of a cold `dvc repro` (outputs and dvc.lock deleted) and of a second one with nothing changed."
    for rel in OUTPUTS:
        path = copy / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    progress("dvc repro, cold")
    cold = run(["dvc", "repro"], copy)
    progress("dvc repro, nothing changed")
    unchanged = run(["dvc", "repro"], copy)
    return dict(cold=cold, unchanged=unchanged)


def machine() -> dict:
    "What the figures were measured on."
    return dict(
        platform=platform.platform(),
        cpus=os.cpu_count(),
        python=platform.python_version(),
        **{pkg: version(pkg) for pkg in ("papermill", "nbconvert", "dvc")},
    )


def table(stages: dict[str, dict]) -> str:
    "The per-stage figures as a plain-text table."
    heads = ["stage"] + [h for h, _ in COLUMNS.values()]
    rows = [
        [name] + [f"{v[k]:.1f}" if k == "overhead_pct" else f"{v[k]:.2f}" for k in COLUMNS]
        for name, v in stages.items()
    ]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(heads), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def report(result: dict) -> str:
    "The whole result as plain text: machine, settings, per-stage table, column notes, whole-pipeline runs."
    m, s = result["machine"], result["settings"]
    rows = "every row" if not s["max_rows"] else f"max_rows={s['max_rows']}"
    notes = "\n".join(f"  {h:<12} {what}" for h, what in COLUMNS.values())
    r = result["repro"]
    return (
        f"urbanlab pipeline overhead ({rows}; median of {s['repeat']} run(s) per stage)\n"
        f"machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}; "
        f"papermill {m['papermill']}, nbconvert {m['nbconvert']}, dvc {m['dvc']}\n\n"
        f"Per stage (`urbanlab stage NAME`, what dvc.yaml runs):\n{table(result['stages'])}\n{notes}\n\n"
        f"Whole pipeline (`dvc repro`):\n"
        f"  cold (outputs and dvc.lock deleted): {r['cold']:7.2f} s\n"
        f"  again, nothing changed:              {r['unchanged']:7.2f} s\n"
    )


def main(argv: list[str] | None = None) -> None:
    "Parse the command line, run the benchmark in a temporary copy of the project, print the figures."
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Runs in a temporary copy of the project; the real outputs are untouched.",
    )
    ap.add_argument(
        "--max-rows",
        type=int,
        default=0,
        metavar="N",
        help="ingest.max_rows for the runs (rows kept from each large raw table); 0, the default, "
        "keeps the real params.yaml value",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="run the stage sequence K times and report medians (default 1)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="urbanlab-bench-") as tmp:
        progress(f"copying the project to {tmp}")
        copy = make_copy(Path(tmp), args.max_rows)
        sys.path.insert(0, str(copy))  # render_html is timed from the copy's urbanlab, like the stages use
        result = dict(
            machine=machine(),
            settings=dict(max_rows=args.max_rows, repeat=args.repeat),
            stages=measure_stages(copy, args.repeat),
            repro=measure_repro(copy),
        )
    progress(f"done in {time.perf_counter() - t0:.0f} s")
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
