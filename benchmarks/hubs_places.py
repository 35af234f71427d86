"""Exact maximal covering (MCLP) at the scale of Peru: its populated places and its school buildings.

Demand: Peru's 94,922 populated places (centros poblados, INEI), each weighted by its 2017 census population
(77,916 are inhabited). Candidate sites: the 44,072 school buildings of MINEDU's padrón (one per `codlocal`, its
first coordinates) and the 1,874 district capitals with coordinates. For each radius (--radii, default 5, 10 and
15 km) and p sites (--hubs, default 10) it builds the coverage sets (`coverage_matrix`: a ball tree, haversine) and
solves exactly (`solve_mclp_sparse`), and prints: seconds to build the coverage sets, place-site pairs within
reach, the model after preprocessing (groups of places with equal cover sets x distinct candidates), the MIP left
after the LP bound if one was needed, seconds to solve, status, proven gap, the share of the population covered,
and peak memory. Each radius runs in a fresh subprocess, so its peak memory (`ru_maxrss`) is that run's own:
Python, pandas, reading the data, the coverage sets and the solve. Then one department (--department, default
CUSCO: places, schools and capitals whose ubigeo starts with its code) the same way at --department-radius
(default 10 km). Progress goes to stderr, the table (or --json) to stdout. Reading the CSVs is not timed.

Goals: all Peru, each radius, proven optimal in <= 60 s on 2 cores including building the coverage sets, peak memory
<= 4 GB; one department <= 1 s including building the coverage sets.

    .venv/bin/python benchmarks/hubs_places.py
    .venv/bin/python benchmarks/hubs_places.py --radii 5,10,15,25 --hubs 20 --department PUNO --json
"""

from __future__ import annotations
import argparse, json, resource, subprocess, sys, time
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from urbanlab.optimize.coverage import coverage_matrix, solve_mclp_sparse  # noqa: E402
from urbanlab.optimize.locate import relative_gap  # noqa: E402

RAW = ROOT / "data" / "raw" / "peru"
GOAL_S, GOAL_GB, GOAL_DEPT_S = 60.0, 4.0, 1.0


def peru_instance(department: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    "`(places, sites)`: places (latitude, longitude, population, ubigeo), sites (latitude, longitude, kind, ubigeo)."
    pop = pd.read_csv(RAW / "census2017_ccpp_population.csv.gz", dtype={"codcp": str, "ubigeo": str})
    ccpp = pd.read_csv(RAW / "ubigeo_ccpp.csv.gz", dtype={"inei_ccpp": str, "inei_distrito": str})
    places = pop[["codcp", "ubigeo", "pob_total"]].merge(
        ccpp[["inei_ccpp", "latitude", "longitude"]], left_on="codcp", right_on="inei_ccpp", how="left", validate="1:1"
    )
    places = places.rename(columns={"pob_total": "population"})[["latitude", "longitude", "population", "ubigeo"]]
    pad = pd.read_csv(
        RAW / "minedu_padron_primaria_secundaria.csv.gz",
        dtype={"cod_mod": str, "anexo": str, "codlocal": str, "ubigeo": str, "codcp_inei": str},
    )
    schools = pad.groupby("codlocal", sort=True).agg(
        latitude=("lat", "first"), longitude=("lon", "first"), ubigeo=("ubigeo", "first")
    )
    dist = pd.read_csv(RAW / "ubigeo_distrito.csv", dtype={"inei": str, "reniec": str}, na_values=["S.I."])
    capitals = dist.dropna(subset=["latitude", "longitude"]).rename(columns={"inei": "ubigeo"})
    sites = pd.concat(
        [
            schools.reset_index(drop=True).assign(kind="school"),
            capitals[["latitude", "longitude", "ubigeo"]].assign(kind="capital"),
        ],
        ignore_index=True,
    )
    if department is not None:
        code = department_code(department, dist)
        places, sites = places[places.ubigeo.str.startswith(code)], sites[sites.ubigeo.str.startswith(code)]
    return places.dropna(subset=["latitude", "longitude"]).reset_index(drop=True), sites.reset_index(drop=True)


def department_code(name: str, districts: pd.DataFrame) -> str:
    "The two-digit INEI code of a department given by name (e.g. CUSCO) or code (e.g. 08)."
    codes = districts.assign(code=districts.inei.str[:2]).groupby("departamento").code.first()
    if name.isdigit() and name.zfill(2) in set(codes):
        return name.zfill(2)
    if name.upper() not in codes.index:
        raise SystemExit(f"Unknown department {name!r}; expected one of {', '.join(codes.index)} or its 2-digit code.")
    return codes[name.upper()]


def measure(radius: float, hubs: int, department: str | None, time_limit: float | None) -> dict:
    "One run: read, build the coverage sets, solve; the figures of one table row."
    places, sites = peru_instance(department)
    t0 = time.perf_counter()
    a = coverage_matrix(places, sites, radius)
    build = time.perf_counter() - t0
    st: dict = {}
    sol = solve_mclp_sparse(a, places.population.to_numpy(float), hubs, time_limit=time_limit, stats=st)
    solve = time.perf_counter() - t0 - build
    return dict(
        scope=department or "PERU",
        radius_km=radius,
        hubs=hubs,
        places=len(places),
        inhabited=int((places.population > 0).sum()),
        sites=len(sites),
        pairs=int(a.nnz),
        build_s=build,
        groups=st["groups"],
        candidates=st["candidates"],
        mip_groups=st.get("mip_groups"),
        mip_candidates=st.get("mip_candidates"),
        solve_s=solve,
        total_s=build + solve,
        status=sol.status,
        gap=relative_gap(sol.objective, sol.bound),
        covered=sol.objective,
        population=float(places.population.sum()),
        share=sol.objective / float(places.population.sum()),
        peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,  # Linux: kB
        sites_chosen=[int(j) for j in sol.sites],
    )


def fresh(radius: float, hubs: int, department: str | None, time_limit: float | None) -> dict:
    "`measure` in a fresh Python process, so that its peak memory is its own."
    args = [sys.executable, __file__, "--one", str(radius), "--hubs", str(hubs)]
    args += ["--department", department] if department else ["--department", ""]
    args += ["--time-limit", str(time_limit)] if time_limit is not None else []
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"The run at {radius:g} km failed:\n{out.stderr}")
    return json.loads(out.stdout)


def goals(r: dict) -> dict:
    "Which goals the row meets."
    proven = r["status"] == "optimal" and r["gap"] == 0
    if r["scope"] == "PERU":
        return dict(proven=proven, fast=r["total_s"] <= GOAL_S, memory=r["peak_gb"] <= GOAL_GB)
    return dict(proven=proven, fast=r["total_s"] <= GOAL_DEPT_S)


def table(rows: list[dict]) -> str:
    yes = lambda v: "yes" if v else "NO"
    head = (
        f"{'scope':9} {'km':>4} {'p':>3} {'places':>7} {'sites':>6} {'pairs':>10} {'build s':>8} {'model':>15} "
        f"{'MIP':>13} {'solve s':>8} {'total s':>8} {'status':>10} {'gap':>7} {'covered':>8} {'peak GB':>8}  goals"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        mip = f"{r['mip_groups']}x{r['mip_candidates']}" if r["mip_groups"] is not None else "-"
        g = goals(r)
        lines.append(
            f"{r['scope']:9} {r['radius_km']:>4g} {r['hubs']:>3} {r['places']:>7} {r['sites']:>6} {r['pairs']:>10,} "
            f"{r['build_s']:>8.2f} {str(r['groups']) + 'x' + str(r['candidates']):>15} {mip:>13} {r['solve_s']:>8.2f} "
            f"{r['total_s']:>8.2f} {r['status']:>10} {r['gap']:>7.1e} {r['share']:>8.2%} {r['peak_gb']:>8.2f}  "
            + ", ".join(f"{k} {yes(v)}" for k, v in g.items())
        )
    lines += [
        "",
        "model: groups of places with equal cover sets x distinct candidate sites, after dropping uninhabited places,",
        "places out of reach and sites that reach nobody; MIP: what is left after the LP bound fixes sites out",
        "('-': the LP bound proved the solution optimal, no MIP). Peak memory: each row in a fresh process.",
        f"Goals: all Peru, each radius, proven optimal in <= {GOAL_S:g} s including building the coverage sets, "
        f"peak memory <= {GOAL_GB:g} GB;",
        f"one department <= {GOAL_DEPT_S:g} s including building the coverage sets. "
        + ("All met." if all(all(goals(r).values()) for r in rows) else "NOT ALL MET."),
    ]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--radii", default="5,10,15", help="radii in km for all Peru, comma-separated (default 5,10,15)")
    ap.add_argument("--hubs", type=int, default=10, help="sites to open, p (default 10)")
    ap.add_argument(
        "--department",
        default="CUSCO",
        help="the department run too, by name or 2-digit INEI code (default CUSCO; '' for none)",
    )
    ap.add_argument("--department-radius", type=float, default=10, help="its radius in km (default 10)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds per solve (default: none, run to proof)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    ap.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)  # internal: one run, JSON out
    a = ap.parse_args(argv)
    if a.one is not None:
        print(json.dumps(measure(a.one, a.hubs, a.department or None, a.time_limit)))
        return 0
    runs = [(float(r), None) for r in a.radii.split(",") if r] + (
        [(a.department_radius, a.department)] if a.department else []
    )
    rows = []
    for radius, dept in runs:
        print(f"{dept or 'PERU'} at {radius:g} km, p = {a.hubs} ...", file=sys.stderr, flush=True)
        r = fresh(radius, a.hubs, dept, a.time_limit)
        print(
            f"  {r['pairs']:,} pairs in {r['build_s']:.2f} s; {r['status']} in {r['solve_s']:.2f} s, "
            f"{r['share']:.2%} covered, peak {r['peak_gb']:.2f} GB",
            file=sys.stderr,
            flush=True,
        )
        rows.append(r)
    print(json.dumps(rows, indent=1) if a.json else table(rows))
    return 0 if all(all(goals(r).values()) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
