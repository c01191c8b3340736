"""Fixtures: an isolated leyline-usage environment and real git repositories."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from leyline_usage import UsageLogger
from leyline_usage.plugins import reset_plugin_manager

_found_git = shutil.which("git")
if _found_git is None:
    raise RuntimeError("git not found on PATH: install git to run these tests")
# Tests run git by this absolute path, so a counting wrapper put first on PATH
# records only the processes that the plugin starts.
GIT = _found_git


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Load only this plugin, keep files under tmp_path and pin git's settings."""
    monkeypatch.setenv("LEYLINE_USAGE_PLUGINS", "git")
    monkeypatch.setenv("LEYLINE_USAGE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LEYLINE_USAGE_DIR", str(tmp_path / "usage"))
    monkeypatch.delenv("LEYLINE_SESSION_ID", raising=False)

    # The developer's own git configuration must not change what the tests see.
    empty_config = tmp_path / "empty.gitconfig"
    empty_config.touch()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty_config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")

    # Start outside any repository. Tests chdir into the ones they make.
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)

    reset_plugin_manager()
    yield
    reset_plugin_manager()


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its stripped standard output."""
    result = subprocess.run(
        [GIT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def commit(repository: Path, message: str) -> str:
    """Make an empty commit and return its object id."""
    git(repository, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(repository, "rev-parse", "HEAD")


@pytest.fixture
def make_repository(tmp_path: Path) -> Callable[[str], Path]:
    """Return a factory of repositories on branch main with one commit."""

    def make(name: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        git(path, "init", "--quiet", "--initial-branch=main")
        commit(path, "initial commit")
        return path

    return make


@pytest.fixture
def repository(
    make_repository: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A repository named "project" with one commit, made the working directory."""
    path = make_repository("project")
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], None]:
    """Return a function that writes the config file; call it before logging."""

    def write(text: str) -> None:
        (tmp_path / "config.toml").write_text(text, encoding="utf-8")

    return write


def log_metadata(metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log one entry and return the metadata that was written."""
    entry = UsageLogger("git-test").log_usage("op", tokens=1, metadata=metadata)
    assert entry is not None, "the entry was dropped"
    result: dict[str, Any] = entry["metadata"]
    return result


def written_entries(tmp_path: Path) -> list[dict[str, Any]]:
    """Return the entries in the log file that log_metadata() writes to."""
    log_file = tmp_path / "usage" / "git-test.jsonl"
    lines = log_file.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]
