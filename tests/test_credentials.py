"""Where a process finds its API token: the environment or a credentials file, per host and API URL."""

from __future__ import annotations

import pytest

from tasks.credentials import NoCredentials, resolve
from tests.helpers import TOKEN


def test_credentials_from_env_and_file(monkeypatch, tmp_path):
    with pytest.raises(NoCredentials, match="no API token") as info:
        resolve("h.example.com", "https://api-prod-new.tagmango.com")
    monkeypatch.setenv("TAGMANGO_API_TOKEN", TOKEN)
    cred = resolve("H.example.com", "https://api-prod-new.tagmango.com/")
    assert cred.token == TOKEN and TOKEN not in repr(cred)
    with pytest.raises(NoCredentials, match="configured for https://api-prod-new") as info:
        resolve("h.example.com", "http://127.0.0.1:9")
    assert TOKEN not in str(info.value)
    creds = tmp_path / "creds.yaml"
    creds.write_text("a.example.com: tok-a\nb.example.com: {token: tok-b, api_url: 'http://127.0.0.1:9'}\n")
    monkeypatch.setenv("TAGMANGO_CREDENTIALS_FILE", str(creds))
    assert resolve("a.example.com", "https://api-prod-new.tagmango.com").token == "tok-a"
    assert resolve("b.example.com", "http://127.0.0.1:9").token == "tok-b"
    assert resolve("c.example.com", "https://api-prod-new.tagmango.com").token == TOKEN  # falls back to env
