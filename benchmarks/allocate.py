"""Allocation solve times: each policy on Peru's 1,874 districts and on 100,000 units, with and without a budget.

The 1,874 units are Peru's census districts with the ILLUSTRATIVE need of nbs/45_allocate.ipynb (population aged 5+
times the poverty rate; rural = density below 25/km², a stand-in). The 100,000 units are SYNTHETIC: districts drawn at
random with their need times lognormal noise (sigma 20%), and are labelled so. The transport cost per tablet is
ILLUSTRATIVE too: great-circle km from Lima / 100. The budget is half of what giving every unit the same share of
the supply would cost, so it binds. Supply: 1,056,430 tablets (Peru's 2020 purchase).

Printed: the median of `--repeats` runs of the solve (LPs + rounding to whole tablets; what `seconds` reports), and
of the whole `allocate` call (checks, solve, summary).

    .venv/bin/python benchmarks/allocate.py
    .venv/bin/python benchmarks/allocate.py --units 1874,100000,1000000 --repeats 5 --json
"""

from __future__ import annotations
import argparse, json, platform, statistics, time
from importlib.metadata import version
import numpy as np
import pandas as pd
from urbanlab.allocate import POLICIES, TABLETS, allocate, poverty_quintiles
from urbanlab.data.load import load_census, load_districts


def peru_districts() -> pd.DataFrame:
    "Peru's districts with the notebook's illustrative need and an illustrative cost per tablet (km from Lima / 100)."
    c, d = load_census(), load_districts()
    p = c[["ubigeo", "population_5plus"]].merge(
        d[["ubigeo", "poverty_pct", "density_2020", "latitude", "longitude"]], on="ubigeo", how="left"
    )
    lat, lon, lat0, lon0 = (
        np.radians(v) for v in (p.latitude.fillna(-12.05), p.longitude.fillna(-77.04), -12.05, -77.04)
    )
    km = (
        6371
        * 2
        * np.arcsin(np.sqrt(np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * np.cos(lat0) * np.sin((lon - lon0) / 2) ** 2))
    )
    return pd.DataFrame(
        dict(
            unit_id=p.ubigeo,
            need=(p.population_5plus * p.poverty_pct / 100).round(),
            poverty_pct=p.poverty_pct,
            rural=p.density_2020.fillna(np.inf) < 25,
            quintile=poverty_quintiles(p.poverty_pct, p.population_5plus),
            cost_per_unit=np.round(km / 100, 2),
        )
    )


def synthetic(peru: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    "SYNTHETIC: `n` units drawn from the districts, need times lognormal noise."
    rng = np.random.default_rng(seed)
    t = peru.iloc[rng.integers(0, len(peru), n)].reset_index(drop=True)
    return t.assign(unit_id=[f"s{i}" for i in range(n)], need=(t.need * np.exp(rng.normal(0, 0.2, n))).round())


def timings(table: pd.DataFrame, policy: str, budget, repeats: int) -> tuple[float, float, dict]:
    solve, total = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = allocate(table, TABLETS, policy, budget=budget)
        total.append(time.perf_counter() - t0)
        solve.append(a.summary.seconds)
    return statistics.median(solve), statistics.median(total), a.summary.to_dict()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", default="1874,100000", help="comma-separated unit counts; 1874 is Peru's real districts")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is printed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per row")
    args = ap.parse_args()
    peru = peru_districts()
    rows = []
    for n in (int(u) for u in args.units.split(",")):
        table = peru if n == len(peru) else synthetic(peru, n)
        label = "Peru districts" if n == len(peru) else "SYNTHETIC"
        budget = 0.5 * float(table.cost_per_unit @ table.need) * TABLETS / table.need.sum()
        for b in (None, budget):
            for policy in POLICIES:
                s, tot, summ = timings(table, policy, b, args.repeats)
                rows.append(
                    dict(
                        units=n,
                        data=label,
                        policy=policy,
                        budget=b is not None,
                        solve_s=s,
                        allocate_s=tot,
                        allocated=summ["allocated"],
                        status=summ["status"],
                    )
                )
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(
        f"highspy {version('highspy')}, Python {platform.python_version()}, "
        f"{platform.machine()}; supply {TABLETS:,}; median of {args.repeats}"
    )
    print(
        f"{'units':>8}  {'data':15} {'policy':9} {'budget':6} {'solve s':>8} {'allocate s':>11} "
        f"{'allocated':>10}  status"
    )
    for r in rows:
        print(
            f"{r['units']:>8,}  {r['data']:15} {r['policy']:9} {'yes' if r['budget'] else 'no':6} {r['solve_s']:8.4f} "
            f"{r['allocate_s']:11.4f} {r['allocated']:>10,}  {r['status']}"
        )


if __name__ == "__main__":
    main()
