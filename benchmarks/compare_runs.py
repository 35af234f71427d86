"""Compare the outputs of two `urbanlab run`s table by table: are they the same analysis?

    .venv/bin/python benchmarks/compare_runs.py BEFORE_PROJECT AFTER_PROJECT

For every table both runs wrote (data/interim, data/processed, metrics, plots: parquet, CSV, GeoJSON, JSON) it prints
whether the bytes are identical, else whether the values are equal once timing fields (`seconds`, `*_seconds`,
`time`) are left out, else the largest difference. Model files are compared by bytes only (their formats stamp
times). Exits 1 when any table differs in value.
"""

import argparse, hashlib, json, sys
from pathlib import Path

import numpy as np
import pandas as pd

FOLDERS = ["data/interim", "data/processed", "metrics", "plots", "models"]
TIMING = ("seconds", "time", "elapsed", "duration")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def is_timing(name: str) -> bool:
    return any(str(name) == t or str(name).endswith("_" + t) or str(name).startswith(t) for t in TIMING)


def drop_timing(obj):
    "`obj` (parsed JSON) without timing keys, recursively."
    if isinstance(obj, dict):
        return {k: drop_timing(v) for k, v in obj.items() if not is_timing(k)}
    if isinstance(obj, list):
        return [drop_timing(v) for v in obj]
    return obj


def read_table(path: Path) -> pd.DataFrame | None:
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        if "geometry" in df.columns:
            df["geometry"] = df["geometry"].map(lambda g: hashlib.md5(bytes(g)).hexdigest() if g is not None else None)
        return df
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return None


def frame_difference(a: pd.DataFrame, b: pd.DataFrame) -> str:
    "'' when the frames hold the same values (timing columns left out), else what differs."
    a, b = (
        a.drop(columns=[c for c in a.columns if is_timing(c)]),
        b.drop(columns=[c for c in b.columns if is_timing(c)]),
    )
    if list(a.columns) != list(b.columns):
        return f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"
    if len(a) != len(b):
        return f"rows {len(a):,} vs {len(b):,}"
    worst = ""
    for c in a.columns:
        x, y = a[c], b[c]
        if x.astype(str).equals(y.astype(str)):
            continue
        xn, yn = pd.to_numeric(x, errors="coerce"), pd.to_numeric(y, errors="coerce")
        if xn.notna().sum() and (xn.isna() == yn.isna()).all():
            rel = float(np.nanmax(np.abs(xn - yn) / np.maximum(np.abs(xn), 1e-300)))
            worst = worst or f"column {c!r}: largest relative difference {rel:.2e}"
            if rel > 1e-9:
                return f"column {c!r}: largest relative difference {rel:.2e}"
        else:
            return f"column {c!r}: {int((x.astype(str) != y.astype(str)).sum()):,} values differ"
    return "" if not worst else f"equal within 1e-9 ({worst})"


def compare(path_a: Path, path_b: Path) -> tuple[str, bool]:
    "(verdict, same in value)."
    if md5(path_a) == md5(path_b):
        return "identical bytes", True
    if path_a.suffix == ".json" or path_a.suffix == ".geojson":
        a, b = (drop_timing(json.loads(p.read_text())) for p in (path_a, path_b))
        return ("equal but for timing fields", True) if a == b else ("values differ", False)
    a = read_table(path_a)
    if a is None:
        return "bytes differ (not a table: compared by bytes only)", True
    diff = frame_difference(a, read_table(path_b))
    return (
        (f"values equal ({diff or 'timing columns left out'})", True)
        if diff.startswith("equal") or not diff
        else (diff, False)
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="project folder of the first run")
    ap.add_argument("after", type=Path, help="project folder of the second run")
    args = ap.parse_args(argv)
    files = sorted(
        {
            p.relative_to(root)
            for root in (args.before, args.after)
            for f in FOLDERS
            for p in (root / f).rglob("*")
            if p.is_file()
        }
    )
    bad = 0
    for rel in files:
        a, b = args.before / rel, args.after / rel
        if not (a.exists() and b.exists()):
            print(f"{rel}: only in {'before' if a.exists() else 'after'}")
            bad += not str(rel).startswith("models")
            continue
        verdict, same = compare(a, b)
        bad += not same
        print(f"{rel}: {verdict}")
    print(f"\n{len(files):,} files compared; {bad:,} differ in value")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
