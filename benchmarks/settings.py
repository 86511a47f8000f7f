"""The product's settings with one change: the URLconf also serves the textbook endpoint.

Used only by `benchmarks/ingest.py` (its own process and the gunicorn serving the textbook
phase). Everything else — database, persistent connections, middleware, DRF, Celery — is
exactly `config.settings`, so both endpoints run on the same stack.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
