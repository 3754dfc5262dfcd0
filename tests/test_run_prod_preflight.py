"""`make run-prod` refuses to start, saying why, without PostgreSQL and Redis (coffeeshop/preflight.py)."""

import subprocess
import sys


def run_preflight(env):
    return subprocess.run(
        [sys.executable, "-m", "coffeeshop.preflight"], env=env, capture_output=True, text=True, timeout=30
    )


def test_missing_database_and_redis_are_both_named():
    result = run_preflight({"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "DATABASE_URL must name PostgreSQL" in result.stderr
    assert "REDIS_URL must be set" in result.stderr


def test_sqlite_is_refused_and_an_unreachable_redis_is_named():
    result = run_preflight({"DATABASE_URL": "sqlite:///x.sqlite3", "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode != 0
    assert "DATABASE_URL must name PostgreSQL" in result.stderr
    assert "Redis at REDIS_URL does not answer" in result.stderr


def test_an_unreachable_postgresql_is_named():
    result = run_preflight({"DATABASE_URL": "postgres://postgres@127.0.0.1:1/none", "REDIS_URL": ""})
    assert result.returncode != 0
    assert "PostgreSQL at DATABASE_URL does not answer" in result.stderr
