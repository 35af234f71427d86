"""Growth model figures: training time (CPU, and GPU when there is one) and forecasting throughput for a million series.

Training uses the real UN series (1,860 cities, every estimate up to 2015) with the parameters of params.yaml's
train_growth section. Throughput needs more series than exist: the million series are SYNTHETIC, made by drawing
real UN city series at random and multiplying each point by lognormal noise (sigma 2%), and are labelled so in the
output. They are forecast with `forecast_matrix` (5, 10, 15, 20 years ahead, three quantiles).

    .venv/bin/python benchmarks/growth.py                 # CPU, and the GPU if torch sees one
    .venv/bin/python benchmarks/growth.py --series 100000 --device cpu
"""

from __future__ import annotations
import argparse, json, platform, sys, time
import numpy as np
import torch
import yaml
from urbanlab.core import project_root
from urbanlab.data.load import load_wup_cities
from urbanlab.models.growth import GrowthModel, forecast_matrix
from urbanlab.models.series import wup_series


def progress(msg: str) -> None:
    print(f"[growth benchmark] {msg}", file=sys.stderr, flush=True)


def train_seconds(series, cov, device: str, epochs: int) -> tuple[float, GrowthModel]:
    "Wall seconds to train the final model (cutoff 2015) on `device`."
    t0 = time.perf_counter()
    m = GrowthModel(epochs=epochs, device=device, progress=False).fit(series, 2015, cov)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, m


def synthetic_block(series, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    "SYNTHETIC: `n` series resampled from the real UN cities observed 1950-2015, each point times lognormal noise."
    wide = series.pivot(index="unit_id", columns="year", values="population").dropna()
    rng = np.random.default_rng(seed)
    picks = wide.to_numpy()[rng.integers(0, len(wide), n)]
    return wide.columns.to_numpy(), picks * np.exp(rng.normal(0, 0.02, picks.shape))


def throughput(model: GrowthModel, years, pops, device: str) -> float:
    "Series per second through `forecast_matrix` on `device` (features, network, populations)."
    model.net_.to(device)
    model.device_ = torch.device(device)
    forecast_matrix(model, years, pops[:1000])  # warm-up
    t0 = time.perf_counter()
    forecast_matrix(model, years, pops)
    if device == "cuda":
        torch.cuda.synchronize()
    return len(pops) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--series", type=int, default=1_000_000, help="how many synthetic series to forecast (default 1,000,000)"
    )
    ap.add_argument(
        "--device",
        choices=["all", "cpu", "cuda"],
        default="all",
        help="where to measure (all: CPU, and CUDA if present)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()
    epochs = yaml.safe_load((project_root() / "params.yaml").read_text())["train_growth"]["epochs"]
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    series, cov = wup_series(load_wup_cities())
    years, pops = synthetic_block(series, a.series)
    out = dict(
        machine=f"{platform.platform()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        epochs=epochs,
        cities=int(series.unit_id.nunique()),
        synthetic_series=a.series,
        results={},
    )
    for d in devices:
        progress(f"training on {d} ({epochs} epochs)")
        secs, model = train_seconds(series, cov, d, epochs)
        progress(f"forecasting {a.series:,} synthetic series on {d}")
        out["results"][d] = dict(
            train_seconds=round(secs, 1), series_per_second=round(throughput(model, years, pops, d))
        )
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"urbanlab growth model: {out['machine']}; GPU: {out['gpu'] or 'none on this machine'}")
    print(f"training: {out['cities']:,} real UN cities up to 2015, {epochs} epochs")
    print(
        f"forecasting: {a.series:,} SYNTHETIC series (resampled real UN series with 2% noise), 4 horizons x 3 quantiles"
    )
    print(f"{'device':8} {'train s':>8} {'series/s':>12} {'1M series, s':>13}")
    for d, r in out["results"].items():
        print(f"{d:8} {r['train_seconds']:8.1f} {r['series_per_second']:12,} {1e6 / r['series_per_second']:13.2f}")
    if "cuda" not in out["results"]:
        print("cuda: no GPU here; run this script on a machine with one (device=auto uses it).")


if __name__ == "__main__":
    main()
