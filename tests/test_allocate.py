"""`urbanlab allocate`: known answers on a small table by hand, each policy; every bad input refused in one line."""

import json, os, subprocess, sys
import pandas as pd
import pytest
from conftest import ROOT
from urbanlab.allocate import TABLETS
from urbanlab.cli import main

# Three units. a: need 100, poverty 50%, rural, quintile 2; b: 200, 20%, urban, quintile 4;
# c: 300, 80%, rural, quintile 1.
NEEDS = "unit_id,need,poverty_pct,rural,quintile,cost_per_unit\na,100,50,1,2,1\nb,200,20,0,4,1\nc,300,80,1,1,3\n"


def urbanlab(*args):
    "The real command in a fresh process (slow: a second or more of imports)."
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("URBANLAB_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "urbanlab.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.fixture
def cli(capsys):
    "Run `urbanlab ARGS` in this process through its entry point: (exit code, stdout, stderr)."

    def run(*args):
        rc = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    return run


@pytest.fixture
def needs(tmp_path):
    f = tmp_path / "needs.csv"
    f.write_text(NEEDS)
    return f


@pytest.fixture
def run_json(cli):
    def run(*args) -> dict:
        res = cli("allocate", *args, "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    return run


# ---- known answers (300 items for 600 of need)


@pytest.mark.parametrize(
    "policy, alloc",
    [
        ("maxcover", [0, 0, 300]),  # 300 covered whatever happens; the tie-break favours the poorest (c, 80%)
        ("maxmin", [50, 100, 150]),  # everyone half
        ("equity", [0, 0, 300]),  # poverty-weighted: c (0.8) before a (0.5) before b (0.2)
        ("rule", [75, 0, 225]),  # tier 1 = a and c (quintile 1-2, rural): 300 for 400 of need, 75% each
    ],
)
def test_each_policy_by_hand(run_json, needs, tmp_path, policy, alloc):
    out = tmp_path / "out" / f"{policy}.csv"
    s = run_json("--needs", str(needs), "--supply", "300", "--policy", policy, "--out", str(out))
    assert (s["policy"], s["status"], s["units"], s["allocated"], s["unused"], s["need"], s["need_covered"]) == (
        policy,
        "optimal",
        3,
        300,
        0,
        600,
        0.5,
    )
    table = pd.read_csv(out, dtype={"unit_id": str})
    assert list(table.unit_id) == ["a", "b", "c"] and list(table.allocation) == alloc
    assert s["poorest_unmet"] == 300 - alloc[2] and s["units_served"] == sum(x > 0 for x in alloc)
    assert s["cost"] == alloc[0] + alloc[1] + 3 * alloc[2]
    assert not list(out.parent.glob(".*tmp*"))  # the atomic write leaves no temporary file


def test_summary_figures(run_json, needs):
    s = run_json("--needs", str(needs), "--supply", "300", "--policy", "maxmin")
    assert (s["min_coverage"], s["mean_coverage"], s["gini_coverage"], s["poorest_unmet_share"]) == (0.5, 0.5, 0, 0.5)
    s = run_json("--needs", str(needs), "--supply", "300", "--policy", "maxcover")
    assert (s["min_coverage"], s["mean_coverage"], s["gini_coverage"]) == (0, 0.333333, 0.666667)  # coverage 0, 0, 1
    assert set(s) == {
        "policy",
        "status",
        "units",
        "units_served",
        "supply",
        "allocated",
        "unused",
        "need",
        "need_covered",
        "min_coverage",
        "mean_coverage",
        "gini_coverage",
        "poorest_unmet",
        "poorest_unmet_share",
        "cost",
        "budget",
        "seconds",
    }


def test_budget(run_json, needs):
    # costs 1, 1, 3 and a budget of 500: a and b in full (300), then 200/3 to c, floored to 66 whole items
    s = run_json("--needs", str(needs), "--supply", "400", "--budget", "500")
    assert (s["allocated"], s["cost"], s["budget"]) == (366, 498, 500)
    s = run_json("--needs", str(needs), "--supply", "400", "--budget", "500", "--fractional")
    assert s["allocated"] == pytest.approx(300 + 200 / 3, abs=1e-6) and s["cost"] == pytest.approx(500, abs=1e-6)
    s = run_json("--needs", str(needs), "--supply", "400", "--budget", "700", "--policy", "maxmin")
    assert s["min_coverage"] == pytest.approx(7 / 12, abs=0.01)  # budget binds: t = 700/1200


def test_default_supply_is_the_tablet_programme(run_json, needs):
    assert TABLETS == 1_056_430
    s = run_json("--needs", str(needs))
    assert (s["supply"], s["allocated"], s["unused"], s["min_coverage"]) == (TABLETS, 600, TABLETS - 600, 1)


def test_human_output(cli, needs):
    res = cli("allocate", "--needs", str(needs), "--supply", "300", "--policy", "maxmin")
    assert res.returncode == 0 and res.stdout.startswith("maxmin: 300 of 300 to 3 of 3 units; need covered 50.0%")


# ---- bad input: exit 1, one line naming the file, column, line and what was expected


@pytest.mark.parametrize(
    "csv, words",
    [
        ("unit_id,need\na,10\nb,-5\n", "column 'need': expected >= 0; first offending rows: 3 (-5.0)"),
        ("unit_id,poverty_pct\na,10\n", "column 'need': missing"),
        (
            "unit_id,need\na,10\nb,5\na,3\n",
            "column 'unit_id': expected unique values; duplicated; first offending rows: 2 ('a'), 4 ('a')",
        ),
        ("unit_id,need\na,10\nb,\n", "column 'need': expected no missing values; first offending rows: 3 (missing)"),
        ("unit_id,need\na,10\nb,NaN\n", "column 'need': expected no missing values; first offending rows: 3"),
        ("unit_id,need\na,10\nb,inf\n", "column 'need': expected a finite number; first offending rows: 3 (inf)"),
        (
            "unit_id,need,quintile\na,10,1\nb,5,6\n",
            "column 'quintile': expected between 1 and 5; first offending rows: 3 (6.0)",
        ),
        (
            "unit_id,need,quintile\na,10,0\n",
            "column 'quintile': expected between 1 and 5; first offending rows: 2 (0.0)",
        ),
        (
            "unit_id,need,quintile\na,10,2.5\n",
            "column 'quintile': expected a whole number; first offending rows: 2 (2.5)",
        ),
        (
            "unit_id,need,poverty\na,10,45\n",
            "column 'poverty': expected between 0 and 1; first offending rows: 2 (45.0)",
        ),
        (
            "unit_id,need,rural\na,10,maybe\n",
            "column 'rural': expected true/false (also 1/0, yes/no, si/no); first offending rows: 2 ('maybe')",
        ),
        # a quoted unit id over two lines: the row is named by the line it starts on
        ('unit_id,need\n"a\nb",10\nc,-1\n', "column 'need': expected >= 0; first offending rows: 4 (-1.0)"),
        ("", "file is empty"),
    ],
)
def test_bad_tables(cli, tmp_path, csv, words):
    f = tmp_path / "bad.csv"
    f.write_text(csv)
    res = cli("allocate", "--needs", str(f), "--supply", "10", "--json")
    assert res.returncode == 1 and res.stdout == ""
    err = res.stderr.strip()
    assert err.startswith(f"error: {f}") and words in err and "\n" not in err, err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--supply", "-5"], "supply = -5: expected a finite number >= 0"),
        (["--supply", "nan"], "supply = nan: expected a finite number >= 0"),
        (
            ["--policy", "maxcovr"],
            "Unknown policy 'maxcovr'. Did you mean 'maxcover'? Policies: maxcover, maxmin, equity, rule.",
        ),
        (["--policy", "fair"], "Unknown policy 'fair'. Policies: maxcover, maxmin, equity, rule."),
        (["--budget", "-1"], "budget = -1: expected a finite number >= 0"),
    ],
)
def test_bad_options(cli, needs, args, words):
    res = cli("allocate", "--needs", str(needs), *args)
    err = res.stderr.strip()
    assert res.returncode == 1 and words in err and "\n" not in err and "Traceback" not in err, err


def test_policy_needs_its_columns(cli, tmp_path):
    f = tmp_path / "plain.csv"
    f.write_text("unit_id,need\na,10\n")
    for policy, words in [
        ("equity", "policy 'equity' needs column(s) ['poverty'] (poverty or poverty_pct)"),
        ("rule", "policy 'rule' needs column(s) ['quintile', 'rural']"),
    ]:
        res = cli("allocate", "--needs", str(f), "--policy", policy)
        assert res.returncode == 1 and f"{f}: {words}" in res.stderr
    res = cli("allocate", "--needs", str(f), "--budget", "5")
    assert res.returncode == 1 and "no 'cost_per_unit' column" in res.stderr
    res = cli("allocate", "--needs", str(tmp_path / "missing.csv"))
    assert (
        res.returncode == 1 and "missing.csv: file not found; expected a needs file with columns unit_id" in res.stderr
    )


# ---- one true/false word list and one schema: what `urbanlab validate --kind needs` accepts, `allocate` accepts


@pytest.mark.parametrize("rural", [["si", "no"], ["Y", "N"], ["t", "f"], ["sí", "no"]])
def test_flag_words_pass_validate_and_allocate(cli, run_json, tmp_path, rural):
    "Words of FLAG_WORDS that the old allocate word list refused (si, y/n, t/f) now pass both commands alike."
    f = tmp_path / "needs.csv"
    f.write_text(f"unit_id,need,quintile,rural\na,100,1,{rural[0]}\nb,100,1,{rural[1]}\n")
    res = cli("validate", str(f), "--kind", "needs")
    assert res.returncode == 0 and res.stdout.startswith(f"OK: {f} is a valid needs file (2 rows"), res.stderr
    table = tmp_path / "rule.csv"
    s = run_json("--needs", str(f), "--supply", "150", "--policy", "rule", "--out", str(table))
    # a is rural (tier 1) and is filled first; b (urban, tier 2) gets the 50 left
    assert pd.read_csv(table).allocation.tolist() == [100, 50] and s["allocated"] == 150


def test_validate_and_allocate_report_a_bad_table_alike(cli, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("unit_id,need,rural\na,10,maybe\nb,-1,0\n")
    checked, allocated = cli("validate", str(f), "--kind", "needs"), cli("allocate", "--needs", str(f))
    assert checked.returncode == allocated.returncode == 1
    assert checked.stderr == allocated.stderr and checked.stderr.count("\n") == 2  # one line per failing check
    assert "column 'need': expected >= 0; first offending rows: 3 (-1.0)" in checked.stderr


# ---- the real command, in its own process


def test_command_json_and_errors(needs, tmp_path):
    res = urbanlab(
        "allocate",
        "--needs",
        str(needs),
        "--supply",
        "300",
        "--policy",
        "rule",
        "--json",
        "--out",
        str(tmp_path / "a.csv"),
    )
    assert res.returncode == 0 and json.loads(res.stdout)["allocated"] == 300 and (tmp_path / "a.csv").is_file()
    res = urbanlab("allocate", "--needs", str(needs), "--policy", "maxmim")
    assert res.returncode == 1 and res.stderr.strip() == (
        "error: Unknown policy 'maxmim'. Did you mean 'maxmin'? Policies: maxcover, maxmin, equity, rule."
    )


def test_help():
    out = " ".join(urbanlab("allocate", "--help").stdout.split())
    assert "linear programming" in out and "--policy" in out and "1,056,430" in out
    assert "allocate" in urbanlab("--help").stdout
