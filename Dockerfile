# Vigil: one image for web, worker, beat and the one-shot migrate service (docker-compose.yml).
FROM python:3.11-slim

# The code runs from /app (settings derive STATIC_ROOT from its location); PYTHONPATH puts it
# first for every process, so gunicorn, celery and manage.py all import that one copy.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    VIGIL_VAR_DIR=/app/var

RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --home-dir /app --shell /usr/sbin/nologin vigil

WORKDIR /app

# Pinned dependencies first, read from pyproject.toml, so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# Not editable: the package as released, with the dependencies above (--no-deps: already in).
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && mkdir -p var staticfiles \
    && chown vigil:vigil var staticfiles

# The code stays root-owned and read-only to the app; it writes only var/ and staticfiles/.
USER vigil
EXPOSE 8000

# The access log: the path without its query string (%(U)s, not %(r)s: a search names the
# patient) and no referrer, as in scripts/run.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", \
     "--access-logformat", "%(h)s %(t)s %(m)s %(U)s %(s)s %(b)s %(M)sms", "--no-control-socket"]
