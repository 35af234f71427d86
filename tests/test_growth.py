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
    for name, m in peru_backtest["models"].items():
        assert set(m) == {"mape", "median_ape", "bias", "coverage"}
        # two later points (2007, 2017): the median of two errors is their mean, |mean error| <= mean |error|, and
        # each point is inside the 80% interval or not
        assert m["median_ape"] == pytest.approx(m["mape"], abs=2e-3), name
        assert abs(m["bias"]) <= m["mape"] + 1e-3, name
        assert m["coverage"] in (0.0, 0.5, 1.0), name


def test_learned_models_beat_persistence(peru_backtest):
    "Peru grew 38% from 1993 to 2017: the models that learned growth from the UN cities beat 'no growth'."
    models = peru_backtest["models"]
    assert models["persistence"]["mape"] == pytest.approx(23.651, abs=1e-3)  # 19.8% and 27.5% short
    for name in ["gbm", "urbanlab"]:
        assert models[name]["mape"] < models["persistence"]["mape"], (name, models[name])


def test_backtest_trend_baselines_match_a_hand_computation(peru_backtest):
    s = pd.read_csv(PERU)
    past, later = s[s.year <= 1993].tail(3), s[s.year > 1993]
    b, a = np.polyfit(past.year, np.log(past.population), 1)  # exponential trend over 1972, 1981, 1993
    exp_ape = 100 * np.abs(np.exp(a + b * later.year) / later.population - 1)
    assert peru_backtest["models"]["exponential"]["mape"] == pytest.approx(exp_ape.mean(), abs=1e-3)
    pers_pe = 100 * (s[s.year == 1993].population.iloc[0] / later.population - 1)
    assert peru_backtest["models"]["persistence"]["bias"] == pytest.approx(pers_pe.mean(), abs=1e-3)
    b, a = np.polyfit(past.year, past.population, 1)  # linear trend over the same three censuses: 2.0% off
    lin_ape = 100 * np.abs((a + b * later.year) / later.population - 1)
    assert peru_backtest["models"]["linear"]["mape"] == pytest.approx(lin_ape.mean(), abs=1e-3)


def test_forecast_prints_quantiles_to_a_year():
    res = sh(["urbanlab", "growth", "forecast", "--series", str(PERU), "--to", "2030", "--device", "cpu"], ROOT)
    f = pd.read_csv(StringIO(res.stdout))
    assert f.year.tolist() == [2022, 2027, 2030] and (f.origin == 2017).all()
    width = ((f.q90 - f.q10) / f.q50).tolist()
    assert width[0] < width[1] < width[2], width  # the interval widens with the horizon (3.8%, 10.0%, 12.8% of q50)
    assert f.q10.iloc[0] < 33_396_698 < f.q90.iloc[0]  # INEI's estimate for 30 June 2022 is inside the 80% interval
    assert 31_000_000 < f.q50.iloc[-1] < 45_000_000  # from 31.2 million in 2017


@pytest.mark.parametrize(
    "csv, args, expected",
    [
        (
            "unit_id,year,population\np,1990,10\np,2000,-3\np,2010,12\n",
            ["--cutoff", "2000"],
            "s.csv: column 'population': expected > 0; first offending rows: 3 (-3.0)",
        ),
        (
            "unit_id,year,population\np,1990,10\np,1990,11\np,2010,12\n",
            ["--cutoff", "2000"],
            "s.csv: columns 'unit_id', 'year': expected unique values; duplicated; "
            "first offending rows: 2 ('p'/1990.0), 3 ('p'/1990.0)",
        ),
        (
            "unit_id,year,population\np,1990,10\np,2000,11\n",
            ["--cutoff", "1995"],
            "s.csv: column 'unit_id': expected at least 3 years of each unit (a forecast needs them); "
            "first offending rows: 2 ('p'), 3 ('p')",
        ),
        (
            "unit_id,year,population\np,1990,10\np,2000,11\np,2010,12\np,2020,13\n",
            ["--cutoff", "2020"],
            "cutoff 2020 is outside the data (1990-2020)",
        ),
        ("unit,year,population\np,1990,10\n", ["--cutoff", "2000"], "s.csv: column 'unit_id': missing"),
        ("unit_id,year,population\np,1990.5,10\n", ["--cutoff", "2000"], "column 'year': expected whole years"),
    ],
)
def test_bad_series_get_clear_errors(tmp_path, csv, args, expected):
    path = tmp_path / "s.csv"
    path.write_text(csv)
    res = sh(["urbanlab", "growth", "backtest", "--series", str(path), *args], ROOT, check=False)
    assert res.returncode == 1 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr
