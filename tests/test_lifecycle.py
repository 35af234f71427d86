"""The model lifecycle on a real pipeline run: DVC push and pull, the promotion gate, drift, promote and rollback."""

import json, shutil
from pathlib import Path
import pandas as pd
import pytest
from conftest import sh
from urbanlab.models.registry import _client, registry_uri, trials, versions


@pytest.fixture(scope="module")
def copy(project, tmp_path_factory) -> Path:
    "A copy of the project that ran (outputs, registry, git history), so these tests change nothing others read."
    dest = tmp_path_factory.mktemp("lifecycle") / "project"
    shutil.copytree(project, dest, symlinks=True, ignore=shutil.ignore_patterns("staging", "kfp", "incoming"))
    return dest


def version(project: Path, name: str) -> dict:
    "The published production version of `name` (less where the registry was: the copy's is elsewhere)."
    info = json.loads((project / "models" / "production" / name / "version.json").read_text())
    return {k: v for k, v in info.items() if k != "registry"}


def test_every_model_is_registered_with_a_production_version(copy):
    listed = sh(["urbanlab", "models", "list"], copy).stdout
    for name in ["growth", "need", "learner_needs_keras", "learner_needs_forest"]:
        assert name in listed, listed
    for name in ["growth", "need", "learner_needs/keras", "learner_needs/forest"]:
        v = version(copy, name)
        assert v["status"] == "production" and "beats the best baseline" in v["reason"], v
    shown = sh(["urbanlab", "models", "show", "need"], copy).stdout
    assert "**Known limits**" in shown and "spatial cross-validation" in shown
    prov = json.loads((copy / "reports/stages/train_need.ipynb").read_text())["metadata"]["urbanlab"]["provenance"]
    assert prov["models"]["need"]["version"] == version(copy, "need")["version"]
    index = (copy / "reports/index.html").read_text()
    assert f"need v{version(copy, 'need')['version']}" in index and "href='monitor.html'" in index
    assert "Every version" in (copy / "reports/monitor.html").read_text()


def test_a_fresh_clone_pulls_the_outputs_and_its_status_is_clean(copy, tmp_path):
    "`dvc push` to a remote, commit dvc.lock, clone, `dvc pull`: the outputs come back and nothing needs to rerun."
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "--local", "-d", "test", str(remote)], copy)
    sh(["dvc", "push"], copy)
    sh(["git", "add", "dvc.lock"], copy)
    sh(["git", "commit", "-qm", "results of a run", "--allow-empty"], copy)  # dvc.lock, if not committed yet
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(copy), str(clone)], tmp_path)
    assert not (clone / "models").exists()
    sh(["dvc", "remote", "add", "--local", "-d", "test", str(remote)], clone)
    sh(["dvc", "pull"], clone)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], clone).stdout
    assert version(clone, "need") == version(copy, "need")
    for rel in ["models/production/growth/final/model.pt", "data/processed/hubs/recommendations.csv"]:
        assert (clone / rel).read_bytes() == (copy / rel).read_bytes()


def test_a_weak_candidate_on_shifted_data_is_refused_and_flagged(copy):
    "One epoch on districts whose under-5 counts rose by half: drift names the feature, the gate keeps production."
    before = version(copy, "need")
    weights = (copy / "models/production/need/need.keras").read_bytes()
    table = copy / "data/processed/patterns/district_patterns.parquet"
    good = table.read_bytes()
    patterns = pd.read_parquet(table)
    patterns.assign(population_under5=patterns.population_under5 * 1.5).to_parquet(table, index=False)
    try:
        sh(["urbanlab", "stage", "train_need", "-p", "epochs=1"], copy)
    finally:
        table.write_bytes(good)
    m = json.loads((copy / "metrics/train_need.json").read_text())
    assert m["model"]["status"] == "rejected" and "does not beat the best baseline" in m["model"]["reason"], m["model"]
    assert "under5_share" in m["drift"]["drifted"], m["drift"]
    assert version(copy, "need") == before  # production unchanged, and what the stage published is production
    assert (copy / "models/production/need/need.keras").read_bytes() == weights
    html = (copy / "reports/stages/train_need.html").read_text()
    assert f"Candidate need v{m['model']['version']} is rejected" in html and f"need v{before['version']}" in html
    res = sh(["urbanlab", "monitor", "--check"], copy, check=False)
    assert res.returncode == 1 and f"need v{m['model']['version']} was rejected" in res.stderr, res.stderr
    assert "under5_share: PSI" in res.stderr and "Traceback" not in res.stderr


def test_tune_logs_every_trial_and_the_gate_judges_the_best(copy):
    "Two trials of five epochs: both are in the registry, the best is a candidate, and too weak to replace production."
    before = version(copy, "need")
    out = sh(["urbanlab", "tune", "need", "--trials", "2", "--epochs", "5"], copy).stdout
    assert "is rejected: its mean scaled MAE" in out and "does not beat the best baseline" in out, out
    uri = registry_uri(copy / "registry")
    tuned = versions(uri, "need").iloc[-1]
    assert tuned.status == "rejected" and tuned.version > int(before["version"])
    tag = _client(uri).get_run(tuned.run_id).data.params["tuning"]
    logged = trials(uri, tag)
    assert len(logged) == 2 and {"learning_rate", "hidden", "batch_size", "value"} <= set(logged.columns)
    assert tuned.value == pytest.approx(logged.value.min())  # the best trial is the candidate
    assert version(copy, "need") == before
    res = sh(["urbanlab", "tune", "hubs"], copy, check=False)
    assert res.returncode == 1 and "Cannot tune 'hubs'; models with a search space: need, growth" in res.stderr


def test_promote_then_rollback(copy):
    "By hand: the rejected version goes into production and is laid out, then rollback returns to the one before."
    uri = registry_uri(copy / "registry")
    listed = versions(uri, "need")
    rejected, before = str(listed[listed.status == "rejected"].version.iloc[-1]), version(copy, "need")["version"]
    out = sh(["urbanlab", "models", "promote", "need", rejected], copy).stdout
    assert f"now holds need v{rejected}" in out, out
    assert version(copy, "need")["version"] == rejected and "promoted by hand" in version(copy, "need")["reason"]
    assert sh(["urbanlab", "models", "rollback", "need"], copy).stdout.startswith(f"need: back to v{before}")
    assert version(copy, "need")["version"] == before
    assert versions(uri, "need").set_index("version").status[int(rejected)] == "rolled back"
    assert "rolled back" in sh(["urbanlab", "models", "list", "need"], copy).stdout
    res = sh(["urbanlab", "models", "promote", "need", "999"], copy, check=False)
    assert res.returncode == 1 and "need has no version '999'" in res.stderr and "Traceback" not in res.stderr
