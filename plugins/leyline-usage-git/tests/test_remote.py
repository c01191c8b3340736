"""The ``remote`` field: the origin URL from the git config, without credentials."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GIT, git, log_metadata, written_entries

from leyline_usage_git._remote import origin_url, strip_credentials


def test_remote_credentials_stripped(repository: Path, tmp_path: Path) -> None:
    git(
        repository,
        "remote",
        "add",
        "origin",
        "https://deploy:s3cr3t-value@git.example.com/org/project.git",
    )

    metadata = log_metadata()

    assert metadata["git"]["remote"] == "https://git.example.com/org/project.git"
    assert b"s3cr3t-value" not in (tmp_path / "usage" / "git-test.jsonl").read_bytes()


def test_remote_omitted_when_disabled(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\ninclude_remote = false\n")
    git(repository, "remote", "add", "origin", "https://git.example.com/p.git")

    metadata = log_metadata()

    assert "remote" not in metadata["git"]
    assert metadata["git"]["branch"] == "main"


def test_remote_change_seen_at_next_refresh(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 0\n")
    git(repository, "remote", "add", "origin", "https://git.example.com/old.git")
    before = log_metadata()

    git(repository, "remote", "set-url", "origin", "git@git.example.com:org/new.git")
    after = log_metadata()

    assert before["git"]["remote"] == "https://git.example.com/old.git"
    assert after["git"]["remote"] == "git.example.com:org/new.git"


def test_other_remotes_ignored(repository: Path) -> None:
    git(repository, "remote", "add", "upstream", "https://git.example.com/up.git")

    metadata = log_metadata()

    assert metadata["git"]["remote"] is None


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/org/project.git",
        "https://git.example.com/with space/and;semicolon#hash.git",
        'https://git.example.com/quote"and\\backslash.git',
        "  /srv/git/leading-space.git",
        "/srv/git/tab\there.git",
    ],
)
def test_origin_url_matches_git(repository: Path, url: str) -> None:
    git(repository, "remote", "add", "origin", url)
    # Run git directly: the git() helper strips the spaces under test.
    expected = subprocess.run(
        [GIT, "config", "--null", "--get", "remote.origin.url"],
        cwd=repository,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.removesuffix("\0")

    found = origin_url((repository / ".git" / "config").read_text())

    assert expected == url
    assert found == expected


ORIGIN = '[remote "origin"]\n'
URL = "https://h.example/x.git"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{ORIGIN}\turl = {URL}\n", URL),
        (f'[REMOTE "origin"]\n\tURL = {URL}\n', URL),
        (f'[remote "Origin"]\n\turl = {URL}\n', None),
        (f"[remote.origin]\n\turl = {URL}\n", URL),
        (f'[remote "origin"] url = {URL}\n', URL),
        (f"{ORIGIN}\turl = {URL} ; comment\n", URL),
        (f"{ORIGIN}\turl = {URL} # comment\n", URL),
        (
            f'{ORIGIN}\turl = "https://h.example/x;y#z.git"\n',
            "https://h.example/x;y#z.git",
        ),
        (f"{ORIGIN}\turl = https://h.example/\\\nx.git\n", URL),
        (f"{ORIGIN}\turl = {URL}\n\turl = https://h.example/2.git\n", URL),
        (f'[remote "upstream"]\n\turl = {URL}\n{ORIGIN}\tfetch = +refs/*\n', None),
        ("# comment\n; comment\n[core]\n\tbare = false\n", None),
        (f"{ORIGIN}\turl\n", None),
        (f"{ORIGIN}\turl =\n", None),
        (f'{ORIGIN}\turl = "unterminated\n', None),
        (f"{ORIGIN}\turl = bad \\q escape\n", None),
        (f'[remote "origin\n\turl = {URL}\n', None),
    ],
)
def test_origin_url_parsing(text: str, expected: str | None) -> None:
    assert origin_url(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:password@h.example/org/x.git", "https://h.example/org/x.git"),
        ("https://ghp_token@h.example/org/x.git", "https://h.example/org/x.git"),
        ("https://user:p@ss@h.example/x.git", "https://h.example/x.git"),
        ("https://h.example/x.git?ref=a@b", "https://h.example/x.git?ref=a@b"),
        ("ssh://git@h.example:2222/org/x.git", "ssh://h.example:2222/org/x.git"),
        ("git@h.example:org/x.git", "h.example:org/x.git"),
        ("user:password@h.example:org/x.git", "h.example:org/x.git"),
        ("h.example:org/x.git", "h.example:org/x.git"),
        ("file:///srv/git/x.git", "file:///srv/git/x.git"),
        ("/home/me@work/x.git", "/home/me@work/x.git"),
        ("../me@work/x.git", "../me@work/x.git"),
        ("me@work", "me@work"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_remote_written_to_log(repository: Path, tmp_path: Path) -> None:
    git(repository, "remote", "add", "origin", "git@git.example.com:org/project.git")

    log_metadata()

    [written] = written_entries(tmp_path)
    assert written["metadata"]["git"]["remote"] == "git.example.com:org/project.git"
