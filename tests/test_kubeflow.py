"""The stages as a Kubeflow pipeline: the committed spec is current and right; local runs match a DVC run."""

import hashlib, http.server, json, shutil, threading
from pathlib import Path
import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_project, sh

SPEC_PATH = ROOT / "pipelines" / "urbanlab.yaml"


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def test_committed_spec_matches_a_fresh_compile(tmp_path):
    from urbanlab.pipeline.kubeflow import compile_pipeline

    fresh = [compile_pipeline(tmp_path / f"{i}.yaml").read_bytes() for i in range(2)]
    assert fresh[0] == fresh[1], "compiling twice must give the same bytes"
    assert SPEC_PATH.read_bytes() == fresh[0], "pipelines/urbanlab.yaml is stale: run `urbanlab kfp compile`"


def test_spec_loads_with_kfp():
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(yaml.safe_load(SPEC_PATH.read_text()), pipeline_spec_pb2.PipelineSpec())
    comp = components.load_component_from_file(str(SPEC_PATH))
    assert comp.name == "urbanlab" and "explore__top_cities" in comp.component_spec.inputs


def kfp_name(stage: str) -> str:
    return stage.replace("_", "-")  # KFP's spelling of task names


def test_steps_are_the_declared_stages_in_graph_order(spec):
    from urbanlab.pipeline.stages import STAGES, upstream

    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(map(kfp_name, STAGES))
    for name, stage in STAGES.items():
        assert sorted(tasks[kfp_name(name)].get("dependentTasks", [])) == sorted(map(kfp_name, upstream(stage)))


def test_resource_requests_come_from_the_declaration_and_are_run_inputs(spec):
    from urbanlab.pipeline.stages import STAGES

    inputs = spec["root"]["inputDefinitions"]["parameters"]
    for name, stage in STAGES.items():
        res = spec["deploymentSpec"]["executors"][f"exec-{kfp_name(name)}"]["container"]["resources"]
        assert res["resourceCpuRequest"] == f"{{{{$.inputs.parameters['pipelinechannel--{name}__cpu']}}}}"
        assert res["resourceMemoryRequest"] == f"{{{{$.inputs.parameters['pipelinechannel--{name}__memory']}}}}"
        assert inputs[f"{name}__cpu"]["defaultValue"] == stage.resources.cpu
        assert inputs[f"{name}__memory"]["defaultValue"] == stage.resources.memory
        assert ("accelerator" in res) == bool(stage.resources.gpu)


def test_training_step_asks_for_a_gpu_that_a_run_can_change(spec):
    acc = spec["deploymentSpec"]["executors"]["exec-train-growth"]["container"]["resources"]["accelerator"]
    assert acc["resourceType"] == "nvidia.com/gpu"
    assert acc["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--train_growth__gpu']}}"
    assert spec["root"]["inputDefinitions"]["parameters"]["train_growth__gpu"]["defaultValue"] == 1


def test_gpu_stage_asks_for_nvidia_gpus(tmp_path):
    from urbanlab.pipeline.kubeflow import compile_pipeline
    from urbanlab.pipeline.stages import STAGES, Resources, Stage

    stages = {**STAGES, "explore": Stage(**{**STAGES["explore"].__dict__, "resources": Resources("4", "16Gi", 2)})}
    spec = yaml.safe_load(compile_pipeline(tmp_path / "gpu.yaml", stages).read_text())
    acc = spec["deploymentSpec"]["executors"]["exec-explore"]["container"]["resources"][
        "accelerator"
    ]  # explore: one word
    assert acc["resourceType"] == "nvidia.com/gpu"
    assert acc["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--explore__gpu']}}"
    assert spec["root"]["inputDefinitions"]["parameters"]["explore__gpu"]["defaultValue"] == 2


def test_cache_keys_see_notebook_and_code(spec):
    from urbanlab.pipeline.stages import STAGES

    package = sorted(p for p in (ROOT / "urbanlab").rglob("*.py") if "__pycache__" not in p.parts)
    code = hashlib.sha256(
        b"".join(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() for p in package)
    ).hexdigest()
    for name, stage in STAGES.items():
        task = spec["root"]["dag"]["tasks"][kfp_name(name)]
        assert task["cachingOptions"] == {"enableCache": True}
        params = task["inputs"]["parameters"]
        nb = ROOT / stage.notebook
        assert (
            params["notebook_sha256"]["runtimeValue"]["constant"]
            == hashlib.sha256(stage.notebook.encode() + b"\0" + nb.read_bytes()).hexdigest()
        )
        assert params["code_sha256"]["runtimeValue"]["constant"] == code


def test_editing_a_notebook_changes_only_its_step(tmp_path):
    from urbanlab.pipeline.kubeflow import compile_pipeline

    copy = copy_project(tmp_path / "p")
    nb = copy / "nbs" / "stages" / "explore.ipynb"
    nb.write_text(nb.read_text().replace("Urban development patterns", "Urban development patterns, revised"))
    edited = yaml.safe_load(compile_pipeline(tmp_path / "edited.yaml", root=copy).read_text())["root"]["dag"]["tasks"]
    original = yaml.safe_load(SPEC_PATH.read_text())["root"]["dag"]["tasks"]
    key = lambda t, n: t[n]["inputs"]["parameters"]["notebook_sha256"]["runtimeValue"]["constant"]
    assert key(edited, "explore") != key(original, "explore")
    assert key(edited, "ingest") == key(original, "ingest") and key(edited, "report") == key(original, "report")


def test_steps_install_nothing_at_run_time(spec):
    text = SPEC_PATH.read_text()
    assert "pip install" not in text and "pip3 install" not in text
    assert all(
        e["container"]["image"] == spec["deploymentSpec"]["executors"]["exec-ingest"]["container"]["image"]
        for e in spec["deploymentSpec"]["executors"].values()
    )
    docker = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in docker and "URBANLAB_ROOT=/opt/urbanlab" in docker


def test_each_step_hands_back_notebook_report_metrics_and_data(spec):
    for name in spec["root"]["dag"]["tasks"]:
        outs = spec["components"][f"comp-{name}"]["outputDefinitions"]["artifacts"]  # task names are component names
        assert {k: v["artifactType"]["schemaTitle"] for k, v in outs.items()} == {
            "outputs": "system.Dataset",
            "notebook": "system.Artifact",
            "report": "system.HTML",
            "metrics": "system.Metrics",
        }


# --- submitting ------------------------------------------------------------------------------------------


def test_submit_without_a_reachable_host_fails_at_once():
    res = sh(["urbanlab", "kfp", "submit", "--host", "http://127.0.0.1:9"], ROOT, check=False)
    assert res.returncode == 1 and "Cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "param, expected",
    [
        ("explore.top_citis=3", "Did you mean 'explore.top_cities'?"),
        ("explore.top_cities=many", "expects int, got str 'many'"),
        ("explore.top_cities=99", "must be in [1..30]"),
        ("explore.out_dir=/tmp", "Unknown pipeline parameter 'explore.out_dir'"),
    ],
)
def test_submit_refuses_bad_parameters_before_sending(param, expected):
    res = sh(["urbanlab", "kfp", "submit", "--host", "http://127.0.0.1:9", "-p", param], ROOT, check=False)
    assert res.returncode == 1 and expected in res.stderr and "Cannot reach" not in res.stderr


def test_submit_to_something_that_is_not_kfp():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = sh(["urbanlab", "kfp", "submit", "--host", f"http://127.0.0.1:{server.server_port}"], ROOT, check=False)
    finally:
        server.shutdown()
    assert res.returncode == 1 and "answered 404" in res.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--cron", "0 3 * * 1"], "Cannot reach Kubeflow Pipelines at http://127.0.0.1:9"),
        (["--cron", "mondays"], "expected 5 fields (minute hour day-of-month month day-of-week"),
        (["--cron", "0 24 * * *"], "'0 24 * * *' is not a valid cron expression"),
        (["--cron", "0 3 * * 1", "-p", "explore.top_cities=99"], "must be in [1..30]"),
    ],
)
def test_schedule_refuses_bad_input_and_unreachable_hosts(args, expected):
    res = sh(["urbanlab", "kfp", "schedule", "--host", "http://127.0.0.1:9", *args], ROOT, check=False)
    assert res.returncode == 1 and expected in res.stderr and "Traceback" not in res.stderr, res.stderr
    if "Cannot reach" not in expected:
        assert "Cannot reach" not in res.stderr  # refused before anything was sent


# --- running locally ---------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict:
    "What a pipeline run leaves that must not depend on how it ran: metrics and data tables."

    def untimed(d: dict) -> dict:
        return {k: v for k, v in d.items() if not k.endswith("seconds")}  # timings vary

    out = {p.name: untimed(json.loads(p.read_text())) for p in sorted((root / "metrics").glob("*.json"))}
    for p in sorted((root / "data").rglob("*.parquet")):
        if "raw" not in p.parts:
            df = pd.read_parquet(p)
            out[str(p.relative_to(root))] = pd.util.hash_pandas_object(
                df.drop(columns=["geometry"], errors="ignore"), index=False
            ).sum()
    return out


@pytest.mark.slow
def test_local_kubeflow_run_matches_urbanlab_run(tmp_path):
    project = copy_project(tmp_path / "p")
    params = (project / "params.yaml").read_text().replace("max_rows: 0", "max_rows: 3000")
    (project / "params.yaml").write_text(params.replace("compare_connectivity: true", "compare_connectivity: false"))
    sh(["urbanlab", "run"], project)
    dvc = snapshot(project)
    for d in ["data/interim", "data/processed", "metrics", "plots", "reports"]:
        shutil.rmtree(project / d)
    args = ["-p", "ingest.max_rows=3000", "-p", "train_need.compare_connectivity=false"]  # as params.yaml above
    out = sh(["urbanlab", "kfp", "run", "--local", *args], project)
    assert "Reports: " in out.stdout
    kfp = snapshot(project)
    assert kfp.keys() == dvc.keys()
    assert [k for k in dvc if kfp[k] != dvc[k]] == []  # the same metrics and tables, whichever way it ran
    index = (project / "reports" / "index.html").read_text()
    for stage in ["ingest", "explore", "train_growth", "evaluate_growth", "report"]:
        assert f"href='stages/{stage}.html'" in index and (project / "reports" / "stages" / f"{stage}.html").exists()
    assert "max_rows = 3000" in index
    commit = sh(["git", "rev-parse", "--short=12", "HEAD"], project).stdout.strip()
    assert commit in index
