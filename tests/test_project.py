"""The project keeps its promises: nbs/ is the source of urbanlab/, dvc.yaml follows the stages, --help helps."""

import configparser, shutil
from pathlib import Path
import pytest
from conftest import BIN, ROOT, sh


def tree(root: Path, sub: str) -> dict[str, bytes]:
    "Contents of the files under `root/sub`, by relative path (caches left out)."
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / sub).rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts
    }


@pytest.fixture(scope="module")
def nbdev_copy(tmp_path_factory) -> Path:
    "The notebooks, settings and generated package, copied, so nbdev can rewrite them without touching the project."
    dest = tmp_path_factory.mktemp("nbdev")
    for name in ["nbs", "urbanlab"]:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ["settings.ini", "setup.py"]:
        shutil.copy2(ROOT / name, dest / name)
    return dest


def test_nbdev_export_changes_nothing(nbdev_copy):
    sh([str(BIN / "nbdev_export")], nbdev_copy)
    assert tree(nbdev_copy, "urbanlab") == tree(ROOT, "urbanlab"), (
        "urbanlab/ differs from nbs/: run nbdev_export and commit"
    )


def test_nbdev_clean_changes_nothing(nbdev_copy):
    sh([str(BIN / "nbdev_clean")], nbdev_copy)
    changed = [f for f, b in tree(nbdev_copy, "nbs").items() if (ROOT / f).read_bytes() != b]
    assert not changed, f"notebooks not clean (run nbdev_clean): {changed}"


def test_settings_keep_papermill_tags_and_flags():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    assert cfg["DEFAULT"]["allowed_cell_metadata_keys"].split() == ["tags"]
    assert {"slow", "gpu", "spark"} <= set(cfg["DEFAULT"]["tst_flags"].split())


def test_dvc_yaml_follows_the_stage_declarations():
    assert "Up to date" in sh(["urbanlab", "dvc-yaml", "--check"], ROOT).stdout


def test_dvc_yaml_check_fails_when_out_of_date(tmp_path):
    for name in ["settings.ini", "dvc.yaml"]:
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "dvc.yaml").write_text((tmp_path / "dvc.yaml").read_text().replace("explore", "explored", 1))
    res = sh(["urbanlab", "dvc-yaml", "--check"], tmp_path, check=False)
    assert res.returncode == 1 and "out of date" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "cmd, words",
    [
        ([], "research workbench"),
        (["run"], "Run the pipeline with DVC"),
        (["stage"], "Run one stage's notebook"),
        (["params"], "declared parameters"),
        (["validate"], "Check a data file"),
        (["dvc-yaml"], "Write dvc.yaml"),
    ],
)
def test_help_says_what_each_command_does(cmd, words):
    out = sh(["urbanlab", *cmd, "--help"], ROOT).stdout
    assert words in " ".join(out.split())


def test_params_lists_what_a_stage_accepts():
    out = sh(["urbanlab", "params", "explore"], ROOT).stdout
    assert "top_cities: int = 10" in out and "[1..30]" in out and "out_dir" not in out


def test_unknown_stage_is_refused():
    res = sh(["urbanlab", "stage", "train"], ROOT, check=False)
    assert (
        res.returncode == 1
        and "Unknown stage 'train'; stages are: ingest, explore, train_growth, evaluate_growth, train_need, site_hubs, "
        "allocate_resources, report"
        in res.stderr
    )


# The layers of urbanlab/, lowest first (../shared/STYLE.md): a module may import its own layer or a lower one.
LAYERS = [
    ("core", ["urbanlab", "urbanlab.core", "urbanlab.spark", "urbanlab.params"]),
    ("data", ["urbanlab.data"]),
    ("features", ["urbanlab.features"]),
    ("models and optimize", ["urbanlab.models", "urbanlab.optimize", "urbanlab.allocate"]),
    ("reports", ["urbanlab.reports"]),
    ("serve", ["urbanlab.serve"]),
    ("pipeline", ["urbanlab.pipeline"]),
    ("cli", ["urbanlab.cli"]),
]


def layer_of(module: str) -> int:
    "Index in `LAYERS` of `module` (the longest matching prefix); a module in no layer is an error."
    hits = [
        (len(p), i)
        for i, (_, prefixes) in enumerate(LAYERS)
        for p in prefixes
        if module == p or module.startswith(p + ".")
    ]
    assert hits, f"{module} is in no layer of LAYERS: add it"
    return max(hits)[1]


def imports_of(path: Path, module: str) -> set[str]:
    "The urbanlab modules `path` (module `module`) imports anywhere in it, function bodies included."
    import ast

    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    modules = {
        str(p.relative_to(ROOT).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        for p in (ROOT / "urbanlab").rglob("*.py")
    }
    return {m for m in found if m in modules and m != module}


def module_graph() -> dict[str, set[str]]:
    out = {}
    for p in sorted((ROOT / "urbanlab").rglob("*.py")):
        if p.name == "_modidx.py":
            continue
        m = str(p.relative_to(ROOT).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        out[m] = imports_of(p, m)
    return out


def test_dependencies_point_one_way():
    up = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in module_graph().items()
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert not up, "a lower layer imports a higher one:\n" + "\n".join(up)


def test_no_import_cycles():
    graph = module_graph()

    def reaches(a, b, seen=()):
        return any(d == b or (d not in seen and reaches(d, b, (*seen, d))) for d in graph.get(a, ()))

    cycles = sorted({tuple(sorted((m, d))) for m, deps in graph.items() for d in deps if reaches(d, m)})
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def test_layer_rule_catches_an_upward_import(tmp_path):
    "The rule itself: a data module importing the reports is found."
    f = tmp_path / "load.py"
    f.write_text("from ..reports.render import render_report\nimport urbanlab.core\n")
    deps = imports_of(f, "urbanlab.data.load")
    assert deps == {"urbanlab.reports.render", "urbanlab.core"}
    assert layer_of("urbanlab.reports.render") > layer_of("urbanlab.data.load") > layer_of("urbanlab.core")
