"""The built-in secret redaction enricher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leyline_usage import UsageLogger
from leyline_usage.redaction import REDACTED, is_secret_key


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "apiKey",
        "x-api-key",
        "openai_api_key",
        "token",
        "access_token",
        "refreshToken",
        "secret",
        "client_secret",
        "password",
        "db_password",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "private_key",
        "aws_access_key_id",
        "credentials",
    ],
)
def test_secret_keys_detected(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokens",
        "input_tokens",
        "max_tokens",
        "model",
        "files",
        "author",
        "key_count",
        "path",
        7,
    ],
)
def test_ordinary_keys_kept(key: object) -> None:
    assert not is_secret_key(key)


def test_secrets_redacted_at_any_depth(storage: Path) -> None:
    metadata = {
        "request": {"headers": {"Authorization": "Bearer abc", "Accept": "json"}},
        "clients": [{"name": "a", "api_key": "sk-1"}, {"name": "b"}],
        "input_tokens": 5,
        "password": {"nested": "whole value replaced"},
    }

    UsageLogger("svc", storage_dir=storage).log_usage("op", metadata=metadata)

    text = (storage / "svc.jsonl").read_text()
    written = json.loads(text)["metadata"]
    assert written["request"]["headers"] == {
        "Authorization": REDACTED,
        "Accept": "json",
    }
    assert written["clients"] == [{"name": "a", "api_key": REDACTED}, {"name": "b"}]
    assert written["input_tokens"] == 5
    assert written["password"] == REDACTED
    assert "sk-1" not in text
    assert "Bearer abc" not in text
    assert metadata["clients"][0]["api_key"] == "sk-1"
