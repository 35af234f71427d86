"""The allocate_resources stage on a few SYNTHETIC learners: outputs, every policy, the rule row, no small group."""

import json
import nbformat, papermill as pm, pandas as pd, pytest
from conftest import ROOT
from urbanlab.allocate import POLICIES, allocate, read_needs


def run_stage(tmp, **params):
    "Run the stage notebook standalone (a sample of data/raw, 20,000 SYNTHETIC learners) into `tmp` with `params`."
    pm.execute_notebook(
        str(ROOT / "nbs" / "stages" / "allocate_resources.ipynb"),
        str(tmp / "run.ipynb"),
        kernel_name="urbanlab",
        progress_bar=False,
        cwd=str(ROOT),
        parameters=dict(
            learners=20_000, k=10, out_dir=str(tmp / "out"), metrics_path=str(tmp / "metrics.json"), **params
        ),
    )
    return tmp


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "Run the stage notebook standalone (a sample of data/raw, 20,000 SYNTHETIC learners) into a scratch folder."
    tmp = tmp_path_factory.mktemp("allocate")
    (tmp / "requests.csv").write_text(  # real codigos modulares: Chachapoyas (010101), Cotabambas (030501)
        "school_code,item,count,reason\n0257337,device,5,new pupils\n0257337,materials,3,books\n"
        "9999999,device,2,\n1739259,device,3000,every pupil\n"
    )
    return run_stage(tmp, keras_sample=5_000, epochs=5, requests_path=str(tmp / "requests.csv"))


def test_outputs_exist(run):
    out = run / "out"
    for f in [
        "district_needs.csv",
        "policy_comparison.csv",
        "model_metrics.csv",
        "allocation_needs.csv",
        *[f"allocation_{p}.csv" for p in POLICIES],
    ]:
        assert (out / f).stat().st_size > 0, f
    m = json.loads((run / "metrics.json").read_text())
    assert (
        m["synthetic"]
        and m["learners"] == 20_000
        and m["supply_scaled"]
        and m["supply"] == round(1_056_430 * 20_000 / 8_000_000)
    )
    models = pd.read_csv(out / "model_metrics.csv")
    assert set(models.model) == {"Keras", "MLlib RF"} and len(models) == 6 and models.synthetic.all()


def test_every_policy_and_the_rule_row_match_a_direct_call(run):
    out, m = run / "out", json.loads((run / "metrics.json").read_text())
    comparison = pd.read_csv(out / "policy_comparison.csv").set_index("policy")
    assert list(comparison.index) == list(POLICIES)
    direct = allocate(read_needs(out / "allocation_needs.csv"), m["supply"], "rule").summary
    for col in ["allocated", "need", "need_covered", "min_coverage", "mean_coverage", "gini_coverage", "poorest_unmet"]:
        assert comparison.loc["rule", col] == pytest.approx(getattr(direct, col), abs=1e-6), col
    rule = pd.read_csv(out / "allocation_rule.csv", dtype={"unit_id": str})
    assert rule.allocation.sum() == direct.allocated <= m["supply"]


def test_no_group_under_k_is_shown(run):
    out = run / "out"
    needs = pd.read_csv(out / "district_needs.csv", dtype={"ubigeo": str})
    small = needs.suppressed
    assert (
        small.any() and needs.loc[small, ["learners", "expected_needs_device", "upper_needs_device"]].isna().all().all()
    )
    assert (needs.loc[~small, "learners"] >= 10).all()
    assert json.loads((run / "metrics.json").read_text())["suppressed_districts"] == small.sum()
    for f in ["allocation_needs.csv", *[f"allocation_{p}.csv" for p in POLICIES]]:
        assert (pd.read_csv(out / f).learners >= 10).all(), f  # small districts are pooled, never shown alone
    nb = nbformat.read(run / "run.ipynb", as_version=4)
    shown = "\n".join(str(o) for c in nb.cells for o in c.get("outputs", []))
    assert "learner_id" not in shown and "school_id" not in shown  # no learner row is shown


def test_requests_met_as_minimums_or_reported(run):
    out, m = run / "out", json.loads((run / "metrics.json").read_text())
    st = pd.read_csv(out / "requests_status.csv", dtype={"school_code": str, "unit_id": str}).set_index("count")
    assert list(st.status) == ["met", "other item", "not met", "not met"]
    assert st.loc[5, "unit_id"] == "010101" and st.loc[3000, "why"].endswith("more than the whole supply (2,641)")
    assert "not among the allocation's units" in st.loc[2, "why"]
    for pol in m["policies"]:  # the 5 devices reach Chachapoyas whatever the policy
        a = pd.read_csv(out / f"allocation_{pol}.csv", dtype={"unit_id": str}).set_index("unit_id")
        assert a.loc["010101", "allocation"] >= 5 and a.loc["010101", "request_met"], pol
    assert m["requests"] == dict(total=4, met=1, items_met=5)


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory):
    "The stage with three schools as distribution points and allocation units, and a transport budget that binds."
    tmp = tmp_path_factory.mktemp("allocate_hubs")
    (tmp / "schools.csv").write_text(
        "name,latitude,longitude\nLima school,-12.0464,-77.0428\n"
        "Arequipa school,-16.409,-71.5375\nIquitos school,-3.7491,-73.2538\n"
    )
    return run_stage(
        tmp,
        keras_sample=3_000,
        epochs=3,
        units="hub",
        cost_per_km=0.1,
        transport_budget=4_000_000.0,
        facilities_path=str(tmp / "schools.csv"),
    )


def test_schools_are_the_units_and_the_budget_holds(hub_run):
    m = json.loads((hub_run / "metrics.json").read_text())
    assert m["unit_kind"] == "hub" and m["units"] == 3
    assert m["transport_budget"] == pytest.approx(4_000_000 * 20_000 / 8_000_000)  # scaled like the supply
    units = pd.read_csv(hub_run / "out" / "allocation_needs.csv")
    assert set(units.unit_id) == {"H01", "H02", "H03"} and units.districts.sum() == m["districts"]
    # Lima's school is nearest to far more districts' learners than Iquitos's: Peru's coast and Andes against Loreto
    size = units.set_index("unit_id").learners
    assert size["H01"] > size["H03"]
    for pol, figures in m["policies"].items():
        assert figures["transport_cost"] <= m["transport_budget"] + 1e-6, pol
    # the budget binds: with costs per item in the tens of soles, 2,641 items cannot all travel within 10,000 soles
    assert min(f["allocated"] for f in m["policies"].values()) < m["supply"]


def test_every_district_has_one_unit(run, hub_run):
    for r in (run, hub_run):
        units = pd.read_csv(r / "out" / "district_units.csv", dtype=str)
        alloc = pd.read_csv(r / "out" / "allocation_needs.csv", dtype={"unit_id": str})
        assert units.ubigeo.is_unique and len(units) == json.loads((r / "metrics.json").read_text())["districts"]
        assert set(units.unit_id) == set(alloc.unit_id)
        assert (units.groupby("unit_id").size() == alloc.set_index("unit_id").districts).all()
