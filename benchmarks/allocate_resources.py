"""The whole `allocate_resources` stage at 0.1x, 1x and 4x Peru's 8,000,000 learners: time and peak memory.

Every learner is SYNTHETIC (`urbanlab.data.learners`). Each run executes the stage notebook with papermill exactly as
`urbanlab stage allocate_resources -p learners=N` does (the other parameters from params.yaml, the inputs from the
pipeline's outputs: run `urbanlab run` first), but into a scratch folder, so the project's outputs are untouched.
While it runs, the resident memory of the whole process tree (papermill, the kernel, Spark's JVM and its Python
workers) is sampled twice a second; its peak is printed with the wall time and the stage's own step times.

    .venv/bin/python benchmarks/allocate_resources.py                 # 0.1x, 1x and 4x (4x takes a while)
    .venv/bin/python benchmarks/allocate_resources.py --scales 0.1,1
"""

from __future__ import annotations
import argparse, json, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path
import psutil, yaml
from urbanlab.allocate import NATIONAL_LEARNERS

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    "Resident bytes of `proc` and all its descendants."
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_stage(learners: int, scratch: Path) -> dict:
    "Run the stage notebook on `learners` SYNTHETIC learners; wall seconds, peak tree RSS and the stage's metrics."
    params = {k: v for k, v in (yaml.safe_load((ROOT / "params.yaml").read_text())["allocate_resources"] or {}).items()}
    params.update(
        learners=learners,
        interim_dir=str(ROOT / "data" / "interim"),
        out_dir=str(scratch / "out"),
        hubs_path=str(ROOT / "data" / "processed" / "hubs" / "recommendations.csv"),
        metrics_path=str(scratch / "metrics.json"),
    )
    args = [
        sys.executable,
        "-m",
        "papermill",
        str(ROOT / "nbs" / "stages" / "allocate_resources.ipynb"),
        str(scratch / "run.ipynb"),
        "--cwd",
        str(ROOT / "nbs" / "stages"),
        "-k",
        "urbanlab",
        "--no-progress-bar",
        "--log-level",
        "ERROR",
    ]
    for k, v in params.items():
        args += ["-y", json.dumps({k: v})]
    peak, done = [0], threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss(ps))

    threading.Thread(target=sample, daemon=True).start()
    err = proc.communicate()[1]
    done.set()
    wall = time.perf_counter() - t0
    if proc.returncode:
        kept = Path(tempfile.mkdtemp(prefix="urbanlab-bench-failed-")) / "run.ipynb"
        if (scratch / "run.ipynb").exists():
            shutil.copy(scratch / "run.ipynb", kept)
        raise SystemExit(
            f"The stage failed at {learners:,} learners (executed notebook kept at {kept}):\n{err[-3000:]}"
        )
    return dict(
        learners=learners,
        wall=wall,
        peak_gb=peak[0] / 2**30,
        metrics=json.loads((scratch / "metrics.json").read_text()),
    )


def main(scales: list[float]):
    if not (ROOT / "data" / "interim" / "census.parquet").exists():
        raise SystemExit("Run `urbanlab run` first: the stage reads ingest's tables.")
    print(
        f"allocate_resources on SYNTHETIC learners; {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    )
    print(f"{'scale':>6} {'learners':>12} {'wall s':>8} {'peak GB':>8}  stage steps (s)")
    for s in scales:
        scratch = Path(tempfile.mkdtemp(prefix="urbanlab-bench-"))
        try:
            r = run_stage(int(round(s * NATIONAL_LEARNERS)), scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        steps = ", ".join(f"{k} {v:.0f}" for k, v in r["metrics"]["seconds"].items())
        print(f"{s:>5g}x {r['learners']:>12,} {r['wall']:>8.0f} {r['peak_gb']:>8.2f}  {steps}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--scales", default="0.1,1,4", help="comma-separated multiples of 8,000,000 learners (default 0.1,1,4)"
    )
    main([float(s) for s in ap.parse_args().scales.split(",")])
