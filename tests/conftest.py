"""Shared fixtures: a throwaway copy of the project, so end-to-end runs never touch the real outputs."""

import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def project_files(root: Path = ROOT) -> list[str]:
    "Files git would carry to a fresh clone (tracked, plus untracked files that are not ignored)."
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=True
    )
    return [f for f in out.stdout.splitlines() if (root / f).is_file()]


def env() -> dict:
    "The environment for commands in a copy: this venv first on PATH, a throwaway git identity."
    e = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        GIT_AUTHOR_NAME="urbanlab-tests",
        GIT_AUTHOR_EMAIL="tests@urbanlab",
        GIT_COMMITTER_NAME="urbanlab-tests",
        GIT_COMMITTER_EMAIL="tests@urbanlab",
    )
    e.pop("URBANLAB_ROOT", None)
    return e


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    "Run `cmd` in `cwd`, capturing text output."
    res = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and res.returncode:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def validate_cli(*args) -> subprocess.CompletedProcess:
    "`urbanlab validate ARGS...` run as a user would, in a subprocess (its output captured as text)."
    cmd = [sys.executable, "-m", "urbanlab.cli", "validate", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


def copy_project(dest: Path, root: Path = ROOT) -> Path:
    "Copy the project into `dest` and make it a git repository with one commit (DVC experiments need git)."
    for f in project_files(root):
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, dest / f)
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-qm", "copy for tests"], dest)
    return dest


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    "A copy of the project whose pipeline has run once, on the real data and parameters (`urbanlab run`, as make run)."
    dest = copy_project(tmp_path_factory.mktemp("project"))
    dest.joinpath(".first-run.log").write_text(sh(["urbanlab", "run"], dest).stdout)
    return dest


# `make test-fast` runs `pytest -m "not slow"`: all but the tests that run the pipeline or a stage (minutes each).
SLOW_FILES = {"test_pipeline.py", "test_browser.py", "test_explorers.py", "test_allocate_stage.py", "test_serve.py"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs the whole pipeline or a stage notebook; left out by make test-fast")


def pytest_collection_modifyitems(items):
    for item in items:
        if "project" in getattr(item, "fixturenames", ()) or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
