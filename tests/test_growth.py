"""Growth models on real series: the bring-your-own path on Peru's national census totals (not from the UN set)."""

import json
from io import StringIO
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, sh

PERU = ROOT / "data" / "raw" / "peru" / "census_totals_1940_2017.csv"


@pytest.fixture(scope="module")
def peru_backtest() -> dict:
    res = sh(["urbanlab", "growth", "backtest", "--series", str(PERU), "--cutoff", "1993", "--json"], ROOT)
    return json.loads(res.stdout)


def test_backtest_reports_every_model(peru_backtest):
    assert peru_backtest["cutoff"] == 1993 and peru_backtest["units"] == 1 and peru_backtest["points"] == 2
    assert set(peru_backtest["models"]) == {"persistence", "linear", "exponential", "gbm", "urbanlab"}
    for m in peru_backtest["models"].values():
        assert set(m) == {"mape", "median_ape", "bias", "coverage"} and m["mape"] >= 0 and 0 <= m["coverage"] <= 1


def test_backtest_trend_baselines_match_a_hand_computation(peru_backtest):
    s = pd.read_csv(PERU)
    past, later = s[s.year <= 1993].tail(3), s[s.year > 1993]
    b, a = np.polyfit(past.year, np.log(past.population), 1)  # exponential trend over 1972, 1981, 1993
    exp_ape = 100 * np.abs(np.exp(a + b * later.year) / later.population - 1)
    assert peru_backtest["models"]["exponential"]["mape"] == pytest.approx(exp_ape.mean(), abs=1e-3)
    pers_pe = 100 * (s[s.year == 1993].population.iloc[0] / later.population - 1)
    assert peru_backtest["models"]["persistence"]["bias"] == pytest.approx(pers_pe.mean(), abs=1e-3)


def test_forecast_prints_quantiles_to_a_year():
    res = sh(["urbanlab", "growth", "forecast", "--series", str(PERU), "--to", "2030", "--device", "cpu"], ROOT)
    f = pd.read_csv(StringIO(res.stdout))
    assert f.year.tolist() == [2022, 2027, 2030] and (f.origin == 2017).all()
    assert ((f.q10 <= f.q50) & (f.q50 <= f.q90)).all()
    assert 31_000_000 < f.q50.iloc[-1] < 45_000_000  # from 31.2 million in 2017


@pytest.mark.parametrize(
    "csv, args, expected",
    [
        (
            "unit_id,year,population\np,1990,10\np,2000,-3\np,2010,12\n",
            ["--cutoff", "2000"],
            "column 'population' must be > 0; rows 3 (-3)",
        ),
        ("unit_id,year,population\np,1990,10\np,1990,11\np,2010,12\n", ["--cutoff", "2000"], "duplicate years"),
        (
            "unit_id,year,population\np,1990,10\np,2000,11\n",
            ["--cutoff", "1995"],
            "has 2 point(s); a forecast needs at least 3",
        ),
        (
            "unit_id,year,population\np,1990,10\np,2000,11\np,2010,12\np,2020,13\n",
            ["--cutoff", "2020"],
            "cutoff 2020 is outside the data (1990-2020)",
        ),
        ("unit,year,population\np,1990,10\n", ["--cutoff", "2000"], "missing column(s) ['unit_id']"),
    ],
)
def test_bad_series_get_clear_errors(tmp_path, csv, args, expected):
    path = tmp_path / "s.csv"
    path.write_text(csv)
    res = sh(["urbanlab", "growth", "backtest", "--series", str(path), *args], ROOT, check=False)
    assert res.returncode == 1 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr
