"""How many git processes the plugin starts, counted by a wrapper first on PATH."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GIT, commit, git, log_metadata
from leyline_usage import UsageLogger

ENTRIES = 1000


@pytest.fixture
def git_invocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], list[str]]:
    """Install a git wrapper first on PATH that records each call.

    Returns a function that lists the recorded calls, one string of arguments each.
    """
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    calls = tmp_path / "git-calls.txt"
    calls.touch()
    wrapper = bin_directory / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{GIT}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_directory}{os.pathsep}{os.environ['PATH']}")

    def invocations() -> list[str]:
        return calls.read_text().splitlines()

    return invocations


@pytest.mark.parametrize("refresh_seconds", [0, 1])
def test_git_runs_once_for_many_entries(
    repository: Path,
    write_config: Callable[[str], None],
    git_invocations: Callable[[], list[str]],
    refresh_seconds: int,
) -> None:
    write_config(f"[plugins.git]\nrefresh_seconds = {refresh_seconds}\n")
    logger = UsageLogger("git-test")

    entries = [logger.log_usage("op", tokens=1) for _ in range(ENTRIES)]

    assert all(entry is not None and "git" in entry["metadata"] for entry in entries)
    assert git_invocations() == [
        "rev-parse --show-toplevel --absolute-git-dir --git-common-dir"
    ]


def test_commit_and_checkout_start_no_git(
    repository: Path,
    write_config: Callable[[str], None],
    git_invocations: Callable[[], list[str]],
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    log_metadata()

    new_commit = commit(repository, "second commit")
    after_commit = log_metadata()
    git(repository, "checkout", "--quiet", "-b", "feature")
    after_checkout = log_metadata()
    git(repository, "checkout", "--quiet", "--detach")
    detached = log_metadata()

    assert after_commit["git"]["commit"] == new_commit
    assert after_checkout["git"]["branch"] == "feature"
    assert detached["git"]["branch"] is None
    assert len(git_invocations()) == 1


def test_outside_repository_starts_no_git(
    write_config: Callable[[str], None],
    git_invocations: Callable[[], list[str]],
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    logger = UsageLogger("git-test")

    for _ in range(ENTRIES):
        logger.log_usage("op", tokens=1)

    assert git_invocations() == []


def test_broken_dot_git_runs_git_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_config: Callable[[str], None],
    git_invocations: Callable[[], list[str]],
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    broken = tmp_path / "broken"
    (broken / ".git").mkdir(parents=True)
    monkeypatch.chdir(broken)
    logger = UsageLogger("git-test")

    entries = [logger.log_usage("op", tokens=1) for _ in range(100)]

    assert all(
        entry is not None and "git" not in entry["metadata"] for entry in entries
    )
    assert len(git_invocations()) == 1


def test_concurrent_threads_run_git_once(
    repository: Path,
    write_config: Callable[[str], None],
    git_invocations: Callable[[], list[str]],
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    logger = UsageLogger("git-test")
    start = threading.Barrier(8)
    missing: list[int] = []

    def log_entries() -> None:
        start.wait()
        for _ in range(100):
            entry = logger.log_usage("op", tokens=1)
            if entry is None or "git" not in entry["metadata"]:
                missing.append(1)

    threads = [threading.Thread(target=log_entries) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert missing == []
    assert len(git_invocations()) == 1


def test_new_repository_in_directory_found(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_config: Callable[[str], None],
    git_invocations: Callable[[], list[str]],
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    later = tmp_path / "later"
    later.mkdir()
    monkeypatch.chdir(later)
    before = log_metadata()

    git(later, "init", "--quiet", "--initial-branch=main")
    after = log_metadata()

    assert "git" not in before
    assert after["git"]["branch"] == "main"
    assert len(git_invocations()) == 1
