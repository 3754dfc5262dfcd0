"""`python -m coffeeshop.preflight`: `make run-prod` stops here, with the reason, unless PostgreSQL and
Redis are both set and answer (production never falls back to the embedded SQLite or runs without Redis)."""

import os
import sys
import urllib.parse

import psycopg
import redis


def problems() -> list[str]:
    found = []
    database_url = os.environ.get("DATABASE_URL", "").strip()
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if not urllib.parse.urlsplit(database_url).scheme.startswith("postgres"):
        found.append("DATABASE_URL must name PostgreSQL (postgres://user@host:5432/db)")
    else:
        try:
            psycopg.connect(database_url.replace("postgis://", "postgres://"), connect_timeout=3).close()
        except psycopg.Error as error:
            found.append(f"PostgreSQL at DATABASE_URL does not answer: {error}".strip())
    if not redis_url:
        found.append("REDIS_URL must be set (redis://host:6379/0)")
    else:
        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
        except redis.exceptions.RedisError as error:
            found.append(f"Redis at REDIS_URL does not answer: {error}")
    return found


if __name__ == "__main__":
    if found := problems():
        sys.exit("coffeeshop run-prod: " + "; ".join(found))
