"""The ``git`` metadata of logged entries, in real repositories."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import commit, git, log_metadata, written_entries
from leyline_usage import UsageLogger
from leyline_usage.plugins import plugin_manager


def test_entry_records_repository_branch_commit(
    repository: Path, tmp_path: Path
) -> None:
    head = git(repository, "rev-parse", "HEAD")

    log_metadata()

    [written] = written_entries(tmp_path)
    assert written["metadata"]["git"] == {
        "repository": "project",
        "remote": None,
        "branch": "main",
        "commit": head,
    }


def test_subdirectory_reports_top_level(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subdirectory = repository / "src" / "package"
    subdirectory.mkdir(parents=True)
    monkeypatch.chdir(subdirectory)

    metadata = log_metadata()

    assert metadata["git"]["repository"] == "project"
    assert metadata["git"]["branch"] == "main"


def test_caller_metadata_kept(repository: Path) -> None:
    metadata = log_metadata({"files": 3, "request": {"id": "r-1"}})

    assert metadata["files"] == 3
    assert metadata["request"] == {"id": "r-1"}
    assert metadata["git"]["branch"] == "main"


def test_caller_git_key_wins(repository: Path) -> None:
    metadata = log_metadata({"git": "supplied by the caller"})

    assert metadata["git"] == "supplied by the caller"


def test_outside_repository_adds_nothing() -> None:
    metadata = log_metadata({"files": 1})

    assert metadata == {"files": 1}


def test_detached_head(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    git(repository, "checkout", "--quiet", "--detach")

    metadata = log_metadata()

    assert metadata["git"]["branch"] is None
    assert metadata["git"]["commit"] == head


def test_branch_without_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "--quiet", "--initial-branch=trunk")
    monkeypatch.chdir(fresh)

    metadata = log_metadata()

    assert metadata["git"]["repository"] == "fresh"
    assert metadata["git"]["branch"] == "trunk"
    assert metadata["git"]["commit"] is None


def test_new_commit_seen_at_next_refresh(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    first = log_metadata()

    second_commit = commit(repository, "second commit")
    second = log_metadata()

    assert first["git"]["commit"] != second_commit
    assert second["git"]["commit"] == second_commit


def test_new_branch_seen_at_next_refresh(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    log_metadata()

    git(repository, "checkout", "--quiet", "-b", "feature/login")
    on_new_branch = log_metadata()
    feature_commit = commit(repository, "feature commit")
    after_commit = log_metadata()

    assert on_new_branch["git"]["branch"] == "feature/login"
    assert after_commit["git"]["branch"] == "feature/login"
    assert after_commit["git"]["commit"] == feature_commit


def test_changes_wait_for_refresh_interval(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 3600\n")
    before = log_metadata()

    commit(repository, "second commit")
    git(repository, "checkout", "--quiet", "-b", "other")
    cached = log_metadata()

    assert cached["git"] == before["git"]


def test_changes_seen_after_refresh_interval(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0.2\n")
    log_metadata()

    second_commit = commit(repository, "second commit")
    time.sleep(0.3)
    metadata = log_metadata()

    assert metadata["git"]["commit"] == second_commit


def test_packed_refs_read(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    head = git(repository, "rev-parse", "HEAD")
    git(repository, "pack-refs", "--all")
    assert not (repository / ".git" / "refs" / "heads" / "main").exists()

    packed = log_metadata()
    newer = commit(repository, "commit after packing")
    loose = log_metadata()

    assert packed["git"]["commit"] == head
    assert loose["git"]["commit"] == newer


def test_linked_worktree(
    repository: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_config: Callable[[str], None],
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    worktree = tmp_path / "project-feature"
    git(repository, "worktree", "add", "--quiet", "-b", "feature", str(worktree))
    assert (worktree / ".git").is_file()

    monkeypatch.chdir(worktree)
    in_worktree = log_metadata()
    feature_commit = commit(worktree, "feature commit")
    after_commit = log_metadata()
    monkeypatch.chdir(repository)
    in_main = log_metadata()

    assert in_worktree["git"]["repository"] == "project-feature"
    assert in_worktree["git"]["branch"] == "feature"
    assert after_commit["git"]["commit"] == feature_commit
    assert in_main["git"]["branch"] == "main"
    assert in_main["git"]["commit"] != feature_commit


def test_chdir_switches_repository(
    make_repository: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_repository("first")
    second = make_repository("second")

    monkeypatch.chdir(first)
    in_first = log_metadata()
    monkeypatch.chdir(second)
    in_second = log_metadata()
    monkeypatch.chdir(first.parent / "outside")
    outside = log_metadata()

    assert in_first["git"]["repository"] == "first"
    assert in_second["git"]["repository"] == "second"
    assert "git" not in outside


def test_corrupt_head_adds_nothing(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    assert "git" in log_metadata()

    head_file = repository / ".git" / "HEAD"
    head_file.write_text("not a ref\n")
    corrupt = log_metadata()
    head_file.write_text("ref: refs/heads/main\n")
    repaired = log_metadata()

    assert "git" not in corrupt
    assert repaired["git"]["branch"] == "main"
    assert plugin_manager().failures["git"] == 0


def test_unreadable_head_adds_nothing(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    assert "git" in log_metadata()

    # A directory in place of HEAD fails to open for every user, root included.
    head_file = repository / ".git" / "HEAD"
    head_file.unlink()
    head_file.mkdir()
    unreadable = log_metadata()
    head_file.rmdir()
    head_file.write_text("ref: refs/heads/main\n")
    restored = log_metadata()

    assert "git" not in unreadable
    assert restored["git"]["branch"] == "main"
    assert plugin_manager().failures["git"] == 0


def test_fifo_ref_does_not_block(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    assert "git" in log_metadata()
    ref_file = repository / ".git" / "refs" / "heads" / "main"
    ref_file.unlink()
    os.mkfifo(ref_file)
    results: list[dict[str, Any]] = []

    # Opening a FIFO for reading blocks until a writer appears, so the entry
    # is logged in a thread that the test can give up on.
    thread = threading.Thread(
        target=lambda: results.append(log_metadata()), daemon=True
    )
    thread.start()
    thread.join(timeout=30)

    assert not thread.is_alive(), "logging blocked on the FIFO"
    assert "git" not in results[0]


def test_deleted_working_directory_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    monkeypatch.chdir(doomed)
    logger = UsageLogger("git-test")
    doomed.rmdir()

    entry = logger.log_usage("op", tokens=1)

    assert entry is not None
    assert "git" not in entry["metadata"]
    assert plugin_manager().failures["git"] == 0


def test_submodule_reports_own_repository(
    make_repository: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    library = make_repository("library")
    application = make_repository("application")
    # git 2.38.1 and later refuse local submodule clones unless allowed.
    git(
        application,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "--quiet",
        str(library),
        "vendor/library",
    )
    submodule = application / "vendor" / "library"
    assert (submodule / ".git").is_file()
    monkeypatch.chdir(submodule)

    metadata = log_metadata()

    assert metadata["git"]["repository"] == "library"
    assert metadata["git"]["remote"] == str(library)
    assert metadata["git"]["branch"] == "main"
    assert metadata["git"]["commit"] == git(library, "rev-parse", "HEAD")
