"""Shared fixtures: databases (SQLite here; PostgreSQL in tests/integration) and a running service."""

from __future__ import annotations

import os
import socket

import pytest


def require_service(name: str, host: str, port: int) -> None:
    """Integration tests need their server: under CI=true a missing one fails the test, else skips."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as e:
        message = f"{name} is not reachable at {host}:{port} ({e.strerror or e})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " — CI requires it")
        pytest.skip(message)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'watchline.db'}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for services configured by endpoint string)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
