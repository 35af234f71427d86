"""Need by district and hub siting, on the real pipeline outputs: spatial CV, filled districts, the recommendation."""

import json
from pathlib import Path
import numpy as np, pandas as pd
import papermill as pm
import pytest
from conftest import sh

from urbanlab.models.need import need_index
from urbanlab.optimize.hubs import candidate_sites

HAVERSINE_R = 6371.0088


def haversine(lat1, lon1, lat2, lon2):
    "Great-circle km, written out here independently of urbanlab's own."
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * HAVERSINE_R * np.arcsin(np.sqrt(h))


def test_spatial_cv_never_trains_on_the_held_out_department(project):
    oof = pd.read_parquet(project / "data" / "processed" / "need" / "cv_predictions.parquet")
    dep = pd.read_parquet(project / "data" / "interim" / "districts.parquet").set_index("ubigeo").department
    folds_per_department = oof.groupby(oof.ubigeo.map(dep)).fold.nunique()
    assert len(folds_per_department) == 25 and folds_per_department.max() == 1
    assert oof.groupby(["model", "target"]).ubigeo.nunique().eq(1874).all()  # every district predicted once per model


def test_need_metrics_compare_keras_with_sklearn(project):
    m = json.loads((project / "metrics" / "train_need.json").read_text())
    oof = pd.read_parquet(project / "data" / "processed" / "need" / "cv_predictions.parquet")
    for target in ["poverty_pct", "hdi_2019"]:
        for model in ["urbanlab", "ridge", "gbm"]:
            g = oof[(oof.model == model) & (oof.target == target)]
            assert m[f"{target}_{model}"]["mae"] == pytest.approx((g.predicted - g.observed).abs().mean(), abs=1e-4)
        assert m[f"{target}_urbanlab"]["r2"] > 0.3  # better than the mean, on held-out departments
    html = (project / "reports" / "stages" / "train_need.html").read_text()
    assert "Holding out whole" in html and "best baseline" in html


def test_need_index_fills_districts_the_census_lacks(project):
    need = pd.read_parquet(project / "data" / "processed" / "need" / "district_need.parquet")
    prov = pd.read_parquet(project / "data" / "interim" / "provinces.parquet").set_index("ubigeo")
    assert len(need) == 1892 and need.need_index.between(0, 1).all()
    assert need.need_source.value_counts().to_dict() == {"observed": 1874, "province": 18}
    putis = need.set_index("ubigeo").loc["050413"]  # created after 2017 in Huanta (province 050400)
    assert putis.need_source == "province" and putis.poverty_pct == prov.loc["050400", "poverty_pct"]
    assert putis.need_index == pytest.approx(
        need_index(prov.loc["050400", "poverty_pct"], prov.loc["050400", "hdi_2019"])
    )


def test_hub_recommendation_adds_up(project):
    out = project / "data" / "processed" / "hubs"
    sites, curve = (
        pd.read_csv(out / "recommendations.csv", dtype={"ubigeo": str}),
        pd.read_csv(out / "coverage_curve.csv"),
    )
    m = json.loads((project / "metrics" / "site_hubs.json").read_text())
    assert m["status"] == "optimal" and m["gap"] == 0 and m["hubs"] == 10 == len(sites)
    assert sites["rank"].tolist() == list(range(1, 11)) and sites.marginal_need.is_monotonic_decreasing
    assert sites.marginal_need.sum() == pytest.approx(m["need_within_reach"])
    assert curve.need_share.is_monotonic_increasing and len(curve) == 25 and (curve.status == "optimal").all()
    assert curve.set_index("hubs").need_share[10] == pytest.approx(m["need_share_within_reach"])  # both exact MCLP
    geo = json.loads((out / "recommendations.geojson").read_text())
    assert [f["properties"]["name"] for f in geo["features"]] == sites.name.tolist()
    html = (project / "reports" / "stages" / "site_hubs.html").read_text()
    assert "recommended hubs" in html and "proven optimal" in html


def run_site_hubs(project, tmp_path, **params) -> Path:
    "Run the site_hubs notebook with papermill on the project's outputs into `tmp_path`; its output folder."
    p = project
    pm.execute_notebook(
        str(p / "nbs" / "stages" / "site_hubs.ipynb"),
        str(tmp_path / "run.ipynb"),
        kernel_name="urbanlab",
        progress_bar=False,
        parameters=dict(
            interim_dir=str(p / "data" / "interim"),
            need_dir=str(p / "data" / "processed" / "need"),
            growth_dir=str(p / "data" / "processed" / "growth"),
            out_dir=str(tmp_path / "out"),
            metrics_path=str(tmp_path / "m.json"),
            curve_plot_path=str(tmp_path / "curve.csv"),
        )
        | params,
    )
    return tmp_path / "out"


def test_place_plan_of_a_department_matches_brute_force(project, tmp_path):
    "Moquegua at places and schools: the exact 1- and 2-hub coverage equals a brute force over every site and pair."
    out = run_site_hubs(project, tmp_path, region="MOQUEGUA", n_hubs=2, curve_max=2, radius_km=10.0)
    demand = pd.read_csv(out / "demand.csv", dtype={"ubigeo": str, "ccpp_code": str})
    interim = project / "data" / "interim"
    places = pd.read_parquet(interim / "populated_places.parquet")
    assert len(demand) == ((places.department == "MOQUEGUA") & (places.population > 0)).sum()
    cand = candidate_sites(
        pd.read_parquet(interim / "districts.parquet"), places, schools=pd.read_parquet(interim / "schools.parquet")
    )
    cand = cand[cand.department == "MOQUEGUA"]
    assert set(cand.kind) == {"public school", "district capital"} and len(cand) > 100
    d = haversine(
        demand.latitude.to_numpy()[:, None],
        demand.longitude.to_numpy()[:, None],
        cand.latitude.to_numpy()[None, :],
        cand.longitude.to_numpy()[None, :],
    )
    reach, w = d <= 10.0, demand.people_in_need.to_numpy()
    best1 = (reach * w[:, None]).sum(axis=0).max()
    best2 = max(((reach[:, [i]] | reach[:, i + 1 :]) * w[:, None]).sum(axis=0).max() for i in range(len(cand) - 1))
    curve = pd.read_csv(out / "coverage_curve.csv")
    assert curve.need_within_reach.tolist() == pytest.approx([best1, best2], rel=1e-9)
    sites = pd.read_csv(out / "recommendations.csv", dtype={"codlocal": str, "cod_mod": str})
    assert sites.marginal_need.sum() == pytest.approx(best2, rel=1e-9)
    schools = sites[sites.kind == "public school"]
    assert schools.codlocal.str.fullmatch(r"\d{6}").all() and schools.ugel.str.startswith("UGEL").all()
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["status"] == "optimal" and m["demand_points"] == len(demand) and m["capital_plan"]["sites"]


def test_place_demand_adds_up_to_the_projection(project):
    "Every inhabited place is a demand point; grown by its district, they hold the projected population."
    demand = pd.read_csv(project / "data" / "processed" / "hubs" / "demand.csv", dtype={"ubigeo": str})
    proj = pd.read_parquet(project / "data" / "processed" / "growth" / "district_projection.parquet")
    assert len(demand) == 77916 and demand.ccpp_code.is_unique
    assert demand.census_population.sum() == 29_381_884
    assert demand.population.sum() == pytest.approx(proj.population_2030.sum(), rel=1e-4)
    lima = demand[demand.ubigeo == "150101"]
    grow = proj.set_index("ubigeo").loc["150101"]
    assert lima.population.sum() == pytest.approx(
        lima.census_population.sum() * grow.population_2030 / grow.population, rel=1e-9
    )


def test_hubs_at_a_planners_schools_in_one_department(project, tmp_path):
    "A facilities file replaces the candidates; run the stage notebook with papermill into a scratch folder."
    schools = tmp_path / "schools.csv"  # a TEST FIXTURE: four made-up schools at real Cusco capitals' coordinates
    schools.write_text(
        "name,latitude,longitude,kind\nTest school A,-13.5183,-71.9781,school\nTest school B,-13.3211,-72.0819,school\n"
        "Test school C,-14.2667,-71.2333,school\nTest school D,-12.8667,-72.6833,school\n"
    )
    out = run_site_hubs(project, tmp_path, region="cusco", n_hubs=2, curve_max=3, facilities_path=str(schools))
    sites = pd.read_csv(out / "recommendations.csv", dtype={"ubigeo": str})
    assert len(sites) == 2 and set(sites.kind) == {"school"} and set(sites.department) == {"CUSCO"}
    assert set(sites.name) <= {"Test school A", "Test school B", "Test school C", "Test school D"}
    demand = pd.read_csv(out / "demand.csv", dtype={"ubigeo": str})
    assert set(demand.department) == {"CUSCO"} and demand.ubigeo.nunique() == 112  # Cusco's census districts


def test_bad_region_and_facilities_get_clear_errors(project, tmp_path):
    res = sh(["urbanlab", "stage", "site_hubs", "-p", "region=Cuzco"], project, check=False)
    assert res.returncode == 1 and "Unknown region 'Cuzco'. Did you mean 'CUSCO'?" in res.stderr, res.stderr
    bad = tmp_path / "schools.csv"
    bad.write_text("name,latitude,longitude\nIE 1,-13.5,-71.9\nIE 2,-113.5,-71.9\n")
    res = sh(["urbanlab", "stage", "site_hubs", "-p", "problem=pmedian"], project, check=False)
    assert res.returncode == 1 and "problem=pmedian on 77,916 demand points" in res.stderr, res.stderr
    assert "choose one region (e.g. region=CUSCO), demand=capitals, or problem=mclp" in res.stderr
    res = sh(["urbanlab", "validate", str(bad), "--kind", "facilities"], project, check=False)
    assert (
        res.returncode == 1
        and "column 'latitude': expected between -90 and 90; first offending rows: 3 (-113.5)"
        in res.stderr + res.stdout
    )
