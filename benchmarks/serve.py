"""Throughput and latency of `urbanlab serve` on a pipeline run's outputs, at 1, 10 and 50 concurrent clients.

Starts the real server (uvicorn, in a subprocess on a free port), waits until /readyz answers, then for each
endpoint and concurrency keeps that many clients (aiohttp, asyncio, one connection each) busy for `--seconds` and
prints requests per second and p50/p99 latency; then, for the lookups, the latency when the clients together offer
`--rate` requests a second (a fixed schedule, latency counted from when each request was due); then the resident
memory of the server's process tree. The client runs on the same machine and takes CPU from the server: the figures
are a lower bound of what the server alone does.

    .venv/bin/python benchmarks/serve.py                    # this project's outputs (run `urbanlab run` first)
    .venv/bin/python benchmarks/serve.py --root DIR --workers 2 --seconds 10 --json
"""

import argparse, asyncio, json, os, socket, subprocess, sys, time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"
GOALS = {"nearest": (20, 800), "districts": (20, 800), "forecast": (50, None), "plan": (1000, None)}  # p99 ms, req/s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "urbanlab"), "serve", "--port", str(port), "--root", str(root)]
    env = dict(os.environ, URBANLAB_API_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < 300:
        if proc.poll() is not None:
            sys.exit(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                print(f"server ready in {time.time() - t0:.1f} s ({workers} worker(s))", file=sys.stderr)
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    proc.kill()
    sys.exit("the server was not ready after 300 s")


def requests_for(root: Path, rng: np.random.Generator) -> dict:
    "name -> a function giving the (method, path, body) of one request."
    codes = pd.read_parquet(root / "data/processed/need/district_need.parquet").ubigeo.to_list()
    series = pd.read_csv(root / "data/raw/peru/census_totals_1940_2017.csv").to_dict("records")
    return dict(
        nearest=lambda: (
            "GET",
            f"/v1/hubs/nearest?lat={rng.uniform(-18, 0):.4f}&lon={rng.uniform(-81, -69):.4f}&k=3",
            None,
        ),
        districts=lambda: ("GET", f"/v1/districts/{codes[rng.integers(len(codes))]}", None),
        forecast=lambda: ("POST", "/v1/growth/forecast", dict(series=series, to=2035)),
        plan=lambda: ("POST", "/v1/hubs/plan", dict(region="CUSCO", n_hubs=3, radius_km=15)),
    )


async def load(url: str, make, clients: int, seconds: float, rate: float | None = None) -> dict:
    """Keep `clients` clients busy for `seconds` (as fast as the server answers, or together `rate` requests a second
    on a fixed schedule); latencies in ms, from the scheduled start when paced (so waiting in a queue counts)."""
    import aiohttp  # a faster client than httpx: less of the shared CPU goes to the client

    latencies, statuses = [], {}
    connector = aiohttp.TCPConnector(limit=clients)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as c:
        stop = time.perf_counter() + seconds

        async def client(i):
            n = 0
            while time.perf_counter() < stop:
                method, path, body = make()
                t0 = time.perf_counter()
                if rate:
                    t0 = start + (n * clients + i) / rate
                    n += 1
                    await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
                async with c.request(method, path, json=body) as r:
                    await r.read()
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.perf_counter() - start
    lat = np.array(latencies)
    return dict(
        requests=len(lat),
        per_s=len(lat) / wall,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        statuses=statuses,
    )


def tree_rss_mb(proc: subprocess.Popen) -> float:
    p = psutil.Process(proc.pid)
    return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)]) / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="a project whose pipeline has run (default: this one)")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per endpoint and concurrency (default 5)")
    ap.add_argument("--clients", default="1,10,50", help="concurrencies to measure (default 1,10,50)")
    ap.add_argument(
        "--rate", type=float, default=800, help="also offer nearest and districts this many req/s (default 800; 0: no)"
    )
    ap.add_argument("--json", action="store_true", help="print rows as JSON lines")
    a = ap.parse_args(argv)
    proc, url = start(a.root.resolve(), a.workers)
    try:
        make = requests_for(a.root, np.random.default_rng(0))
        idle_mb = tree_rss_mb(proc)
        rows = []
        concurrencies = [int(c) for c in a.clients.split(",")]
        max_clients = max(concurrencies)
        for name in ["nearest", "districts", "forecast", "plan"]:
            for clients in concurrencies:
                if name == "plan" and clients > 1:
                    continue  # plans are solved one at a time per worker: concurrency only queues them
                asyncio.run(load(url, make[name], min(clients, 4), 1.0))  # warm up
                r = dict(endpoint=name, clients=clients, paced=None)
                rows.append(r | asyncio.run(load(url, make[name], clients, a.seconds)))
                if name in ("nearest", "districts") and clients == max_clients and a.rate:
                    paced = asyncio.run(load(url, make[name], clients, a.seconds, a.rate))
                    rows.append(r | dict(paced=a.rate) | paced)
                if a.json:
                    print(json.dumps(rows[-1]), flush=True)
        peak_mb = tree_rss_mb(proc)
    finally:
        proc.terminate()
        proc.wait(30)
    if not a.json:
        cols = f"{'endpoint':10} {'clients':>7} {'offered':>8} {'requests':>9} {'req/s':>8}"
        head = f"{cols} {'p50 ms':>8} {'p99 ms':>8}  goal"
        print(head + "\n" + "-" * (len(head) + 24))
        for r in rows:
            p99_goal, rate_goal = GOALS[r["endpoint"]]
            goal = f"p99 <= {p99_goal} ms: {'met' if r['p99_ms'] <= p99_goal else 'NOT met'}"
            if rate_goal and not r["paced"]:
                goal += f"; >= {rate_goal} req/s: {'met' if r['per_s'] >= rate_goal else 'NOT met'}"
            bad = {k: v for k, v in r["statuses"].items() if k != 200}
            goal += f"; non-200: {bad}" if bad else ""
            print(
                f"{r['endpoint']:10} {r['clients']:>7} {r['paced'] or 'max':>8} {r['requests']:>9,} "
                f"{r['per_s']:>8,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}  {goal}"
            )
        print(f"\nserver memory (workers and plan process): {idle_mb:,.0f} MB ready, {peak_mb:,.0f} MB after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
