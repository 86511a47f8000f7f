# Vigil: one image for web, worker, beat and the one-shot migrate service (docker-compose.yml).
# It runs Vigil as released: the wheel built from this source, installed over the locked
# dependencies (requirements.lock). No source tree is copied into the image, so what the
# wheel lacks fails here as it would for anyone installing it (tests/test_packaging.py).

# --- The wheel, built from the source in a stage of its own ---------------------------------
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /dist .

# --- The image --------------------------------------------------------------------------------
FROM python:3.11-slim

# The code lives in site-packages, read-only to the app; it writes only var/ (VIGIL_VAR_DIR:
# the beat schedule; secret key and SQLite are for local runs only) and the collected static
# files (VIGIL_STATIC_ROOT), both under /app.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIGIL_VAR_DIR=/app/var \
    VIGIL_STATIC_ROOT=/app/staticfiles

RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --home-dir /app --shell /usr/sbin/nologin vigil

WORKDIR /app

# Every dependency, transitive ones included, at the version and with the hashes of the lock
# (./scripts/lock regenerates it from pyproject.toml). First, so a code change reuses this layer.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# Vigil itself, --no-deps: every dependency is already in, at the locked version.
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist
# manage.py only (migrate, createsuperuser, grant_app_role): /app holds no package, so it and
# every process import Vigil from site-packages.
COPY manage.py ./
RUN mkdir -p var staticfiles \
    && chown vigil:vigil var staticfiles

USER vigil
EXPOSE 8000

# The access log: the path without its query string (%(U)s, not %(r)s: a search names the
# patient) and no referrer, as in scripts/run.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", \
     "--access-logformat", "%(h)s %(t)s %(m)s %(U)s %(s)s %(b)s %(M)sms", "--no-control-socket"]
