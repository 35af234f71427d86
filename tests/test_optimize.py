"""The location optimizer: known answers on tiny instances, the OR-Library optima, agreement with spopt, clear errors,
the CLI."""

import json, os, subprocess, sys
import numpy as np
import pulp  # pinned in requirements.txt: the spopt cross-checks below must run, never skip
import pytest
import spopt.locate
from conftest import ROOT
from urbanlab.core import UrbanlabError
from urbanlab.optimize.costs import orlib_optima, read_orlib, read_orlib_edges, shortest_path_matrix
from urbanlab.optimize.heuristics import lagrangian_pmedian, pmedian_cost, pmedian_heuristic
from urbanlab.optimize.locate import LSCP, MCLP, PCenter, PMedian

DATA = ROOT / "data" / "raw" / "orlib_pmed"
LINE = np.abs(np.arange(6)[:, None] - np.arange(6)[None, :]).astype(float)  # six points 0..5 on a line


def grid(k: int = 4) -> np.ndarray:
    "Manhattan distances between the points of a k x k grid."
    xy = np.array([(i, j) for i in range(k) for j in range(k)])
    return np.abs(xy[:, None] - xy[None]).sum(-1).astype(float)


# ---- known answers on instances solvable by hand


def test_pmedian_line():
    m = PMedian.from_cost_matrix(LINE, p=2).solve()
    assert list(m.sites_) == [1, 4] and m.objective_ == 4 and m.status_ == "optimal" and m.gap_ == 0
    assert list(m.assignment_) == [1, 1, 1, 4, 4, 4] and m.mean_cost_ == pytest.approx(4 / 6)


def test_pmedian_grid_corners_weighted():
    # all the weight in two opposite corners of a 4x4 grid: with p = 2 the sites are those corners, cost 0
    w = np.zeros(16)
    w[[0, 15]] = 10
    m = PMedian.from_cost_matrix(grid(), w, p=2).solve()
    assert list(m.sites_) == [0, 15] and m.objective_ == 0


def test_pmedian_grid_center():
    # one site on a 3x3 grid: the centre, total Manhattan distance 4*1 + 4*2 = 12
    m = PMedian.from_cost_matrix(grid(3), p=1).solve()
    assert list(m.sites_) == [4] and m.objective_ == 12


def test_forced_open_sites():
    m = PMedian.from_cost_matrix(LINE, p=2, forced=[0]).solve()  # {0, 3} and {0, 4} both cost 5
    assert list(m.sites_) in ([0, 3], [0, 4]) and m.objective_ == 5
    assert list(MCLP.from_cost_matrix(LINE, p=2, radius=1, forced=[5]).solve().sites_) in ([1, 5], [2, 5])
    pc = PCenter.from_cost_matrix(LINE, p=2, forced=[0]).solve()
    assert 0 in pc.sites_ and pc.objective_ == 2  # without the forced site it would be 1


def test_capacities():
    # six points, sites only at the ends (others have no room); site 0 holds 2, site 5 holds 4
    m = PMedian.from_cost_matrix(LINE, p=2, capacities=[2, 0, 0, 0, 0, 4]).solve()
    assert list(m.sites_) == [0, 5] and list(m.assignment_) == [0, 0, 5, 5, 5, 5] and m.objective_ == 1 + 3 + 2 + 1
    with pytest.raises(UrbanlabError, match="exceeds what any 2 sites can serve"):
        PMedian.from_cost_matrix(LINE, p=2, capacities=[2, 0, 0, 0, 0, 3])


def test_mclp_lscp_pcenter_line():
    m = MCLP.from_cost_matrix(LINE, p=1, radius=1).solve()
    assert m.objective_ == 3 and m.coverage_ == pytest.approx(0.5)
    assert MCLP.from_cost_matrix(LINE, p=2, radius=1).solve().objective_ == 6
    assert LSCP.from_cost_matrix(LINE, radius=1).solve().objective_ == 2
    assert LSCP.from_cost_matrix(LINE, radius=0).solve().objective_ == 6
    assert PCenter.from_cost_matrix(LINE, p=1).solve().objective_ == 3
    assert PCenter.from_cost_matrix(LINE, p=3).solve().objective_ == 1


def test_from_coordinates_and_heuristic_mode():
    towns = [[-12.05, -77.04], [-12.10, -77.00], [-13.53, -71.97]]  # two in Lima, one in Cusco
    m = PMedian.from_coordinates(towns, towns, p=2).solve()
    assert 2 in m.sites_ and m.objective_ < 10  # Cusco gets its own site
    h = PMedian.from_cost_matrix(LINE, p=2).solve(method="heuristic")
    assert h.status_ == "heuristic" and h.objective_ == 4 and np.isnan(h.gap_)


# ---- OR-Library


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 9, 10])
def test_orlib_optimum_with_proof(k):
    m = PMedian.from_orlib(DATA / f"pmed{k}.txt").solve()
    assert m.objective_ == orlib_optima(DATA / "pmedopt.txt")[f"pmed{k}"]
    assert m.status_ == "optimal" and m.gap_ == 0 and len(m.sites_) == m.p


@pytest.mark.parametrize("k", [4, 8, 9, 10])
def test_orlib_lagrangian_alone_proves_large_p(k):
    # the LP relaxation is integral: polishing the relaxed choice finds the optimum and the bound proves it, no MIP
    c, p = read_orlib(DATA / f"pmed{k}.txt")
    w = np.ones(len(c))
    opt = orlib_optima(DATA / "pmedopt.txt")[f"pmed{k}"]
    lb, closed, opened, best = lagrangian_pmedian(c, w, p, pmedian_heuristic(c, w, p))
    assert pmedian_cost(c, w, best) == opt and lb > opt - 1 and len(set(best)) == p


def test_duplicate_edges_last_occurrence_wins():
    # the last line naming a pair wins: 5819, the published optimum; taking the minimum gives 5718
    assert PMedian.from_orlib(DATA / "pmed1.txt").solve().objective_ == 5819
    n, p, last = read_orlib_edges(DATA / "pmed1.txt")
    low = {}
    for line in (DATA / "pmed1.txt").read_text().splitlines()[1:]:
        i, j, c = map(int, line.split())
        key = (min(i, j) - 1, max(i, j) - 1)
        low[key] = min(c, low.get(key, c))
    assert low != last
    assert PMedian.from_cost_matrix(shortest_path_matrix(n, low), p=p).solve().objective_ == 5718


# ---- the same answers as spopt


@pytest.fixture(scope="module")
def shared():
    rng = np.random.default_rng(7)
    demand, sites = rng.integers(0, 20, (40, 2)), rng.integers(0, 20, (12, 2))
    cost = np.sqrt(((demand[:, None] - sites[None]) ** 2).sum(-1))
    return cost, rng.integers(1, 50, 40).astype(float)


def test_mclp_matches_spopt(shared):
    cost, w = shared
    ours = MCLP.from_cost_matrix(cost, w, p=3, radius=5).solve()
    theirs = spopt.locate.MCLP.from_cost_matrix(cost, w, service_radius=5, p_facilities=3).solve(pulp.HiGHS(msg=False))
    assert ours.objective_ == pytest.approx(pulp.value(theirs.problem.objective))
    covered = cost[np.arange(len(cost)), ours.assignment_] <= 5  # spopt's perc_cov counts points, unweighted
    assert 100 * covered.mean() == pytest.approx(theirs.perc_cov)


def test_lscp_matches_spopt(shared):
    cost, _ = shared
    ours = LSCP.from_cost_matrix(cost, radius=10).solve()
    theirs = spopt.locate.LSCP.from_cost_matrix(cost, service_radius=10).solve(pulp.HiGHS(msg=False))
    assert ours.objective_ == pulp.value(theirs.problem.objective) and ours.coverage_ == 1.0


# ---- bad input gets a clear error


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: PMedian.from_cost_matrix(np.where(LINE == 5, np.nan, LINE), p=1), "NaN at row 0, column 5"),
        (lambda: PMedian.from_cost_matrix(LINE - 1, p=1), "negative at row 0, column 0"),
        (lambda: PMedian.from_cost_matrix(LINE, p=7), "p = 7 facilities asked for, but there are 6 candidate sites"),
        (lambda: PMedian.from_cost_matrix(LINE, p=1, forced=[0, 1]), "2 sites are forced open but p = 1"),
        (lambda: PMedian.from_cost_matrix(LINE, [1, 2], p=1), "2 demand weights for 6 demand points"),
        (
            lambda: MCLP.from_cost_matrix(LINE + 10, p=1, radius=3).solve(),
            "radius 3 reaches no demand point from any candidate site",
        ),
        (
            lambda: LSCP.from_cost_matrix(LINE[:, :2], radius=2).solve(),
            "Infeasible covering: demand points [4, 5] have no candidate site within radius 2",
        ),
    ],
)
def test_errors(make, words):
    with pytest.raises(UrbanlabError) as e:
        make()
    assert words in str(e.value)


def test_disconnected_graph(tmp_path):
    f = tmp_path / "split.txt"
    f.write_text("4 2 1\n1 2 5\n3 4 5\n")
    with pytest.raises(
        UrbanlabError, match=r"split.txt is disconnected \(2 pieces\): vertex 3 cannot be reached from vertex 1"
    ):
        read_orlib(f)


# ---- the command line


def urbanlab(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("URBANLAB_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "urbanlab.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_cli_pmedian_json():
    res = urbanlab("locate", "pmedian", "--orlib", str(DATA / "pmed1.txt"), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"objective", "status", "gap", "seconds", "sites"}
    assert (out["objective"], out["status"], out["gap"]) == (5819, "optimal", 0)
    c, _ = read_orlib(DATA / "pmed1.txt")
    assert len(out["sites"]) == 5 and c[:, [s - 1 for s in out["sites"]]].min(axis=1).sum() == 5819  # 1-based


def test_cli_errors_are_one_line(tmp_path):
    f = tmp_path / "split.txt"
    f.write_text("4 2 1\n1 2 5\n3 4 5\n")
    res = urbanlab("locate", "pmedian", "--orlib", str(f), "--json")
    assert res.returncode == 1 and "disconnected" in res.stderr and "Traceback" not in res.stderr
    res = urbanlab("locate", "pmedian", "--orlib", str(DATA / "pmed1.txt"), "-p", "101")
    assert res.returncode == 1 and "p = 101 facilities asked for" in res.stderr
    assert "OR-Library" in urbanlab("locate", "pmedian", "--help").stdout
