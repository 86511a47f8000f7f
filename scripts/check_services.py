"""Fail fast, with a clear message, when PostgreSQL or Redis is not reachable."""

import os
import sys

import dj_database_url
import psycopg
import redis


def main() -> int:
    problems = []
    database_url = os.environ["DATABASE_URL"]
    config = dj_database_url.parse(database_url)
    try:
        # The test database is created by pytest-django; reach the server via 'postgres'.
        psycopg.connect(
            host=config["HOST"] or "localhost",
            port=config["PORT"] or 5432,
            user=config["USER"] or None,
            password=config["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.Error as error:
        problems.append(
            f"PostgreSQL at {config['HOST']}:{config['PORT']} is not reachable: {error}"
        )
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        url = os.environ[name]
        if not url.startswith("redis"):
            continue
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError as error:
            problems.append(f"Redis ({name}={url}) is not reachable: {error}")
    if problems:
        print("Cannot run the tests:", *problems, sep="\n  ", file=sys.stderr)
        print(
            "Start them (see README, 'Running the tests') or point DATABASE_URL / REDIS_URL "
            "at running servers.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
