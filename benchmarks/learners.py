"""SYNTHETIC learners: seconds and peak memory to generate Peru's learner table and write it as partitioned parquet.

Every row is SYNTHETIC (`urbanlab.data.learners`): calibrated on the 2017 census, INEI's poverty map, UNDP's HDI and
the 2020 tablet programme, but no row is a real learner. Scale 1 = 8,000,000 learners (Peru's order of magnitude).
Each scale runs in a fresh process so its peak resident memory (ru_maxrss) is its own; the time is the whole
`write_learners` call (calibration, generation by chunks, parquet writes, the final move), after loading the inputs.

    .venv/bin/python benchmarks/learners.py                 # scales 0.1 and 1
    .venv/bin/python benchmarks/learners.py --scale 0.01 --chunk-rows 250000

Measured once (2 cores, x86_64, Python 3.11.7, `nice -n 19` beside a CI run, chunk_rows 500,000):
SYNTHETIC 800,000 learners in 1.6 s, peak RSS 303 MB (205 MB after loading the inputs), parquet 9.9 MB,
no-device 12.0 %;
SYNTHETIC 8,000,000 learners in 4.3 s, peak RSS 367 MB, parquet 85.5 MB.
"""

from __future__ import annotations
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path

FULL = 8_000_000


def one(scale: float, chunk_rows: int, seed: int) -> dict:
    "Generate and write `scale` x 8M SYNTHETIC learners in this process; timings and memory."
    from urbanlab.data.learners import load_inputs, read_learners, write_learners

    t0 = time.perf_counter()
    inputs = load_inputs()
    t_in = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = int(round(scale * FULL))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = write_learners(Path(d) / "learners", inputs, n, seed=seed, chunk_rows=chunk_rows, progress=False)
        secs = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        no_device = 1 - read_learners(out)["has_device"].mean() if n <= 1_000_000 else None
    return dict(
        scale=scale,
        rows=n,
        seconds=round(secs, 2),
        rows_per_s=round(n / secs),
        inputs_s=round(t_in, 2),
        peak_rss_mb=round(rss / 1024),
        rss_before_mb=round(rss0 / 1024),
        parquet_mb=round(size / 2**20, 1),
        no_device_share=None if no_device is None else round(float(no_device), 4),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="0.1,1", help="comma-separated multiples of 8,000,000 learners")
    ap.add_argument("--chunk-rows", type=int, default=500_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", type=float, help=argparse.SUPPRESS)  # internal: run one scale in this process
    a = ap.parse_args()
    if a.one is not None:
        print(json.dumps(one(a.one, a.chunk_rows, a.seed)))
        return
    print(
        f"SYNTHETIC learners benchmark ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}); every row is synthetic"
    )
    rows = []
    for s in (float(x) for x in a.scale.split(",")):
        r = subprocess.run(
            [sys.executable, __file__, "--one", str(s), "--chunk-rows", str(a.chunk_rows), "--seed", str(a.seed)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        x = rows[-1]
        print(
            f"SYNTHETIC scale {s:g}: {x['rows']:,} learners in {x['seconds']:.1f} s ({x['rows_per_s']:,}/s), "
            f"peak RSS {x['peak_rss_mb']:,} MB (inputs loaded: {x['rss_before_mb']:,} MB), parquet {x['parquet_mb']} MB"
            + (f", no-device share {x['no_device_share']:.1%}" if x["no_device_share"] is not None else "")
        )
    if a.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
