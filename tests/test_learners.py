"""SYNTHETIC learners (`urbanlab.data.learners`): the `learners` schema through `urbanlab validate`, determinism,
the national calibration targets, labels against poverty, and the atomic parquet write."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import validate_cli

import urbanlab.data.learners as L
from urbanlab.data.schemas import DataValidationError, validate_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs():
    return L.load_inputs(ROOT)


@pytest.fixture(scope="module")
def model(inputs):
    return L.calibrate(inputs)


@pytest.fixture(scope="module")
def national(inputs, model):
    "200,000 SYNTHETIC learners over all 1,874 districts."
    return L.sample_learners(inputs, 200_000, seed=0, model=model)


cli = validate_cli  # `urbanlab validate ARGS...` in a subprocess (conftest)


# --- the schema and `urbanlab validate` -------------------------------------------------------


def test_synthetic_sample_validates_as_csv(national, tmp_path):
    p = tmp_path / "learners.csv"
    national.sample(2_000, random_state=0).to_csv(p, index=False)
    df = validate_file(p, "learners")
    assert len(df) == 2_000 and df.learner_id.is_unique
    r = cli(p, "--kind", "learners")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_cli_validate_good_lms_export(tmp_path):
    p = tmp_path / "lms.csv"
    p.write_text(
        "learner_id,school_id,ubigeo,grade,has_device,has_connectivity,usage_hours_week,past_score\n"
        "A-1,0012345,150101,4,yes,no,2.5,14\n"
        "A-2,0012345,150101,7,No,1,0,9.5\n"
        "A-3,0456789,080101,11,TRUE,false,6,20\n",
        encoding="utf-8",
    )
    r = cli(p, "--kind", "learners")
    assert r.returncode == 0, r.stdout + r.stderr
    df = L.load_learners(p)
    assert df.has_device.tolist() == [True, False, True] and df.school_id.iloc[0] == "0012345"


def test_cli_validate_bad_lms_export_names_file_column_rows(tmp_path):
    p = tmp_path / "lms_bad.csv"
    p.write_text(
        "learner_id,school_id,ubigeo,grade,has_device,has_connectivity,usage_hours_week,past_score\n"
        "A-1,S1,150101,4,yes,no,2.5,14\n"
        "A-1,S1,15010,4,maybe,no,-1,21\n"
        "A-3,S2,080101,12,yes,no,3,12\n",
        encoding="utf-8",
    )
    r = cli(p, "--kind", "learners")
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    for line in [
        "lms_bad.csv: column 'learner_id': expected unique values; duplicated; "
        "first offending rows: 2 ('A-1'), 3 ('A-1')",
        "lms_bad.csv: column 'ubigeo': expected a 6-digit code string; first offending rows: 3 ('15010')",
        "lms_bad.csv: column 'grade': expected between 1 and 11; first offending rows: 4 (12)",
        "lms_bad.csv: column 'has_device': expected true/false (also 1/0, yes/no, si/no); "
        "first offending rows: 3 ('maybe')",
        "lms_bad.csv: column 'usage_hours_week': expected >= 0; first offending rows: 3 (-1.0)",
        "lms_bad.csv: column 'past_score': expected between 0 and 20; first offending rows: 3 (21.0)",
    ]:
        assert line in out, (line, out)


def test_missing_required_column(tmp_path):
    p = tmp_path / "lms.csv"
    p.write_text(
        "learner_id,school_id,ubigeo,grade,has_device,usage_hours_week,past_score\nA,S,150101,4,1,2,12\n",
        encoding="utf-8",
    )
    with pytest.raises(DataValidationError, match="column 'has_connectivity': missing"):
        validate_file(p, "learners")


# --- the generator --------------------------------------------------------------------------------


def test_deterministic_for_a_seed(inputs, model):
    some = inputs.iloc[::100].reset_index(drop=True)
    a, b = (L.sample_learners(some, 30_000, seed=7, model=model) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    c = L.sample_learners(some, 30_000, seed=8, model=model)
    assert not a.has_device.equals(c.has_device)


def test_national_no_device_share_is_12_percent(national):
    assert len(national) == 200_000 and national.synthetic.all()
    assert abs((1 - national.has_device.mean()) - 0.12) <= 0.015


def test_other_national_targets(national):
    assert abs(national.has_connectivity.mean() - 0.24) <= 0.015
    assert abs(national.rural.mean() - 0.207) <= 0.015
    assert np.allclose(national.poverty_quintile.value_counts(normalize=True).sort_index(), 0.2, atol=0.015)
    assert national.past_score.between(0, 20).all() and national.grade.between(1, 11).all()


def test_labels_rise_with_poverty(national):
    by_q = national.groupby("poverty_quintile")[["needs_device", "needs_connectivity", "needs_materials"]].mean()
    for col in by_q:
        assert (np.diff(by_q[col].to_numpy()) < 0).all(), by_q  # quintile 1 (poorest) needs most
        assert by_q[col].iloc[0] - by_q[col].iloc[-1] > 0.1, by_q
    # the district poverty rate orders needs too: the poorest fifth of learners' districts vs the richest
    pov = national.merge(L.load_inputs(ROOT)[["ubigeo", "poverty_pct"]], on="ubigeo").poverty_pct
    hi, lo = pov >= pov.quantile(0.8), pov <= pov.quantile(0.2)
    assert national.needs_device[hi.to_numpy()].mean() > national.needs_device[lo.to_numpy()].mean() + 0.1


def test_rural_learners_need_more(national):
    g = national.groupby("rural")[["has_device", "has_connectivity", "needs_device"]].mean()
    assert (
        g.loc[True, "has_device"] < g.loc[False, "has_device"]
        and g.loc[True, "needs_device"] > g.loc[False, "needs_device"]
    )


# --- the parquet write ----------------------------------------------------------------------------


def test_write_is_partitioned_and_complete(inputs, model, tmp_path):
    some = inputs[inputs.ubigeo.str[:2].isin(["01", "02"])].reset_index(drop=True)
    out = L.write_learners(tmp_path / "learners", some, 40_000, model=model, chunk_rows=10_000, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["department=01", "department=02"]
    back = L.read_learners(out)
    assert len(back) == 40_000 and back.learner_id.is_unique
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learners"]


def test_failed_write_leaves_the_good_table_untouched(inputs, model, tmp_path, monkeypatch):
    some = inputs.iloc[:200].reset_index(drop=True)
    dest = L.write_learners(tmp_path / "learners", some, 20_000, seed=1, model=model, chunk_rows=5_000, progress=False)
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*.parquet")}
    calls, real = [], L._write_chunk

    def fail_on_third(table, folder, i):
        calls.append(i)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(table, folder, i)

    monkeypatch.setattr(L, "_write_chunk", fail_on_third)
    with pytest.raises(OSError, match="simulated"):
        L.write_learners(dest, some, 20_000, seed=2, model=model, chunk_rows=5_000, progress=False)
    assert len(calls) == 3
    after = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*.parquet")}
    assert after == before  # the good table, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learners"]  # no temporary folder left behind


# --- privacy ---------------------------------------------------------------------------------------


def test_suppress_small_groups_on_synthetic_schools(national):
    t = (
        national.groupby("school_id", observed=True)
        .agg(learners=("learner_id", "size"), no_device=("has_device", lambda s: 1 - s.mean()))
        .reset_index()
    )
    s = L.suppress_small_groups(t, k=10)
    small = t.learners < 10
    assert s.suppressed.equals(small) and s.loc[small, ["learners", "no_device"]].isna().all().all()
    assert s.loc[~small, "learners"].eq(t.loc[~small, "learners"]).all()
