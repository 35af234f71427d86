"""The project keeps its promises: nbs/ is the source of urbanlab/, dvc.yaml follows the stage declarations, --help helps."""
import configparser, shutil
from pathlib import Path
import pytest
from conftest import BIN, ROOT, sh


def tree(root: Path, sub: str) -> dict[str, bytes]:
    "Contents of the files under `root/sub`, by relative path (caches left out)."
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root/sub).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


@pytest.fixture(scope="module")
def nbdev_copy(tmp_path_factory) -> Path:
    "The notebooks, settings and generated package, copied, so nbdev can rewrite them without touching the project."
    dest = tmp_path_factory.mktemp("nbdev")
    for name in ["nbs", "urbanlab"]: shutil.copytree(ROOT/name, dest/name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ["settings.ini", "setup.py"]: shutil.copy2(ROOT/name, dest/name)
    return dest


def test_nbdev_export_changes_nothing(nbdev_copy):
    sh([str(BIN/"nbdev_export")], nbdev_copy)
    assert tree(nbdev_copy, "urbanlab") == tree(ROOT, "urbanlab"), "urbanlab/ differs from nbs/: run nbdev_export and commit"


def test_nbdev_clean_changes_nothing(nbdev_copy):
    sh([str(BIN/"nbdev_clean")], nbdev_copy)
    changed = [f for f, b in tree(nbdev_copy, "nbs").items() if (ROOT/f).read_bytes() != b]
    assert not changed, f"notebooks not clean (run nbdev_clean): {changed}"


def test_settings_keep_papermill_tags_and_flags():
    cfg = configparser.ConfigParser(); cfg.read(ROOT/"settings.ini")
    assert cfg["DEFAULT"]["allowed_cell_metadata_keys"].split() == ["tags"]
    assert {"slow", "gpu", "spark"} <= set(cfg["DEFAULT"]["tst_flags"].split())


def test_dvc_yaml_follows_the_stage_declarations():
    assert "Up to date" in sh(["urbanlab", "dvc-yaml", "--check"], ROOT).stdout


def test_dvc_yaml_check_fails_when_out_of_date(tmp_path):
    for name in ["settings.ini", "dvc.yaml"]: shutil.copy2(ROOT/name, tmp_path/name)
    (tmp_path/"dvc.yaml").write_text((tmp_path/"dvc.yaml").read_text().replace("explore", "explored", 1))
    res = sh(["urbanlab", "dvc-yaml", "--check"], tmp_path, check=False)
    assert res.returncode == 1 and "out of date" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("cmd, words", [([], "research workbench"), (["run"], "Run the pipeline with DVC"),
                                        (["stage"], "Run one stage's notebook"), (["params"], "declared parameters"),
                                        (["validate"], "Check a data file"), (["dvc-yaml"], "Write dvc.yaml")])
def test_help_says_what_each_command_does(cmd, words):
    out = sh(["urbanlab", *cmd, "--help"], ROOT).stdout
    assert words in " ".join(out.split())


def test_params_lists_what_a_stage_accepts():
    out = sh(["urbanlab", "params", "explore"], ROOT).stdout
    assert "top_cities: int = 10" in out and "[1..30]" in out and "out_dir" not in out


def test_unknown_stage_is_refused():
    res = sh(["urbanlab", "stage", "train"], ROOT, check=False)
    assert res.returncode == 1 and "Unknown stage 'train'; stages are: ingest, explore, train_growth, evaluate_growth, train_need, site_hubs, allocate_resources, report" in res.stderr
