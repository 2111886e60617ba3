"""A fresh PostgreSQL database for a test module, from ``MONITOR_TEST_POSTGRES_URL``.

Each module gets its own database (created empty, dropped at the end), so
modules never see each other's rows. Without the variable, or without
psycopg, the tests that need it skip and say why.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

ENV = "MONITOR_TEST_POSTGRES_URL"


def server_url() -> str:
    """The test server's URL, or skip saying what is missing."""
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"{ENV} is not set: these tests need a PostgreSQL server (see .ci/run)")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
    return url


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    base, _, query = url.partition("?")
    base = re.sub(r"/[^/@]*$", "", base) if re.search(r"//[^/]+/", base) else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


def fresh_database(prefix: str) -> Iterator[str]:
    """Create an empty database on the test server, yield its URL, drop it afterwards."""
    import psycopg

    url = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
