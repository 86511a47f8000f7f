"""Vigil settings: one file, every value from the environment.

With no DATABASE_URL / CELERY_BROKER_URL set, Vigil runs on an embedded default that needs
no servers (SQLite in WAL mode, kombu's filesystem transport). Production, CI and the test
suite set both and use PostgreSQL and Redis.
"""

import ipaddress
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_HASHES, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VIGIL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_datetime(name: str, default: str) -> datetime:
    """An ISO 8601 date or date-time; UTC unless it names an offset."""
    value = datetime.fromisoformat(os.environ.get(name) or default)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    # Local runs without a configured key get one generated once and kept under var/, so
    # sessions survive restarts; deployments set DJANGO_SECRET_KEY (compose file does).
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        import secrets

        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if h]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    # django.contrib.admin with Vigil's admin site (config/admin.py).
    "config.apps.VigilAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files for the docs page, served as our own static files (no CDN).
    "drf_spectacular_sidecar",
    # django-csp: its system checks flag a policy written in the old settings format.
    "csp",
    "monitoring",
    "alerts",
    # Interoperability: FHIR R4 at /fhir and Nightscout uploads (issue 12).
    "interop",
    # The remote-monitoring program: episodes, care time, panel, RPM ledger (issue 13).
    "program",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Cache-Control: no-store on every API response: they carry patient data.
    "config.api.NoStoreApiMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): did this session pass two-factor?
    "django_otp.middleware.OTPMiddleware",
    # request.viewer_zone: the viewer's own clock, shown beside the patient's (issue 14).
    "config.viewer_zone.ViewerZoneMiddleware",
    # The audit log of API calls that show or change patient data (monitoring/audit.py).
    "monitoring.audit.ApiAuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # paths (issue 15.2): a query cancelled at the statement timeout answers 503, not a 500.
    "config.api.StatementTimeoutMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The admin site's own pages (login with the authenticator code, two-factor setup).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# Persistent connections: with Django's default CONN_MAX_AGE=0 every request pays a new
# PostgreSQL connection (docs/architecture.md, "Performance facts we measured": ~75 vs ~220
# readings/s).
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
            conn_health_checks=True,
        )
    }
    # --- paths (issue 15.2): a statement_timeout, so a page cannot run on after gunicorn ---
    # A web request's queries are cancelled by PostgreSQL past DATABASE_STATEMENT_TIMEOUT_MS
    # (default 30 s, gunicorn's worker timeout): killing a gunicorn worker does not stop its
    # query, which ran on for minutes over a 13-million-row count. The request then answers a
    # clean 503 (config.api.StatementTimeoutMiddleware). Workers are bounded by their task's
    # hard time limit instead (DATABASE_WORKER_STATEMENT_TIMEOUT_MS, default that limit);
    # migrations, shells and beat have none: an index build on a big table may take longer.
    # Which process this is: config/wsgi.py says "web"; a `celery` command is a worker.
    # Sent as a startup option: behind PgBouncer (transaction pooling) set it on the role
    # instead (ALTER ROLE … SET statement_timeout), as PgBouncer refuses `options`.
    VIGIL_PROCESS = os.environ.get("VIGIL_PROCESS") or (
        "worker" if Path(sys.argv[0]).name == "celery" else ""
    )
    STATEMENT_TIMEOUT_MS = {
        "web": env_int("DATABASE_STATEMENT_TIMEOUT_MS", 30_000),
        "worker": env_int(
            "DATABASE_WORKER_STATEMENT_TIMEOUT_MS",
            1000 * env_int("CELERY_TASK_TIME_LIMIT", 180),
        ),
    }.get(VIGIL_PROCESS, 0)
    if STATEMENT_TIMEOUT_MS > 0 and DATABASES["default"]["ENGINE"].endswith("postgresql"):
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        )
    # --- end paths ---
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "vigil.sqlite3",
            "OPTIONS": {
                # WAL lets the web process read while the worker writes; IMMEDIATE takes the
                # write lock at BEGIN so concurrent writers wait instead of failing mid-way.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Tests on the embedded default use a file like ./scripts/run does: Django's
            # in-memory test database is shared-cache, whose table locks fail concurrent
            # writers at once ("database table is locked") instead of making them wait.
            "TEST": {"NAME": VAR_DIR / "test-vigil.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- More machines: a transaction pooler, a read replica (docs/deployment.md) -------------
# DATABASE_POOLER=transaction: DATABASE_URL (and DATABASE_REPLICA_URL) point at PgBouncer in
# transaction pooling, where consecutive transactions of one client connection may run on
# different server connections. Vigil keeps no session state (no SET, advisory locks only
# pg_advisory_xact_lock, no LISTEN, no temporary tables); what Django would keep is turned
# off here: server-side cursors (.iterator() would open a named cursor that the next
# statement may not find) and prepared statements (PgBouncer < 1.21 does not track them;
# Django's client-side binding cursors never prepare, and prepare_threshold=None says so
# for any other). CONN_MAX_AGE keeps the client connection to PgBouncer, which is cheap;
# the server connections are PgBouncer's (default_pool_size per database and user).
DATABASE_POOLER = os.environ.get("DATABASE_POOLER", "")
if DATABASE_POOLER not in ("", "transaction"):
    raise ImproperlyConfigured(f"DATABASE_POOLER is '' or 'transaction', not {DATABASE_POOLER!r}")
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL and not DATABASE_URL:
    raise ImproperlyConfigured("DATABASE_REPLICA_URL needs DATABASE_URL (PostgreSQL)")
if DATABASE_URL and DATABASE_REPLICA_URL:
    # Read-only admin pages on a streaming replica (config/db_router.py says which, and how
    # a read never follows a write there). In tests the alias mirrors the test database.
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    MIDDLEWARE.insert(0, "config.db_router.ReplicaRoutingMiddleware")
for _database in DATABASES.values():
    if _database["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, whose health check asks `SELECT 1` only when the connection's
        # socket says something happened (config/postgresql/base.py).
        _database["ENGINE"] = "config.postgresql"
if DATABASE_URL and DATABASE_POOLER == "":
    # Statements on every reading's path are prepared, when asked for by name
    # (config/statements.py); Django's own client-side binding cursors still never prepare.
    # A threshold no statement reaches keeps psycopg from preparing anything on its own.
    # Those statements are index lookups whose plan does not depend on their values:
    # planned once per connection (a generic plan), not again at every execution. Left to
    # choose, PostgreSQL planned anew at every reading each statement given an array of
    # patient ids (`= ANY($1)`: it cannot know the array holds one id) and the update of the
    # partitioned readings table, which cost more than running them (benchmarks/README.md,
    # "Cost per live reading, fourth pass"). A generic plan on the partitioned table prunes
    # its partitions when it runs. Django's own statements bind client-side: no plan cache.
    for _database in DATABASES.values():
        _database.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
        startup = _database["OPTIONS"].get("options", "")
        _database["OPTIONS"]["options"] = " ".join(
            [*startup.split(), "-c", "plan_cache_mode=force_generic_plan"]
        )
if DATABASE_URL and DATABASE_POOLER == "transaction":
    for _database in DATABASES.values():
        _database["DISABLE_SERVER_SIDE_CURSORS"] = True
        _database.setdefault("OPTIONS", {})["prepare_threshold"] = None
        # PgBouncer 1.18 refuses startup options (`options=-c statement_timeout=…`): the
        # pooler sets such limits on its server connections instead, one pool per limit
        # (connect_query in its [databases] entries, docs/deployment.md).
        _database["OPTIONS"].pop("options", None)
        if _database["OPTIONS"].get("server_side_binding"):
            raise ImproperlyConfigured("server_side_binding prepares statements: no pooler")
# GET pages that read the replica (regular expressions on the path), and how long a browser
# that changed something reads the primary instead (above the replica's allowed lag).
DATABASE_REPLICA_PATHS = [
    r"^/admin/$",
    r"^/admin/(monitoring|alerts|delivery)/[a-z]+/$",
    r"^/admin/(monitoring|alerts|delivery)/[a-z]+/\d+/(change|history)/$",
]
DATABASE_REPLICA_PIN_SECONDS = env_int("DATABASE_REPLICA_PIN_SECONDS", 30)

# --- Cache (login throttling) -------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("VIGIL_CACHE_PREFIX", "vigil"),
            # A hung Redis must not hang a login (the failure store lives here): seconds.
            "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The staff's admin is English (no LocaleMiddleware: the language never follows the browser).
# What Vigil sends a patient is rendered in the patient's language under
# translation.override (monitoring/nudges): its phrases come from the catalogues in
# config/locale (beside the code, so the wheel carries them; the compiled .mo files are
# committed: a checkout needs no gettext tools). A language not listed here reads English.
LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("de", "German")]
LOCALE_PATHS = [BASE_DIR / "config" / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Beside the code by default (./scripts/run); an installed wheel's code sits in a read-only
# site-packages, so deployments name their own folder (the image: /app/staticfiles).
STATIC_ROOT = Path(os.environ.get("VIGIL_STATIC_ROOT", BASE_DIR / "staticfiles"))
# whitenoise warns on every start without it; collectstatic fills it for deployments.
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: a 500-reading batch is ~150 kB of JSON; anything far beyond is not a batch.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("VIGIL_MAX_BODY_BYTES", 2 * 1024 * 1024)

SESSION_COOKIE_AGE = env_int("VIGIL_SESSION_SECONDS", 30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("VIGIL_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- HTTPS and browser security -----------------------------------------------------------
# Behind a TLS-terminating proxy, the header by which it tells Django a request came over
# https (e.g. X-Forwarded-Proto; the value must be "https"). Set it only when the proxy sets
# that header on every request and drops the client's own: Django believes it.
_proxy_ssl_header = os.environ.get("VIGIL_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (f"HTTP_{_proxy_ssl_header.upper().replace('-', '_')}", "https")
# HSTS, sent on https responses only: browsers refuse plain http to this host for that long.
# 0 (off) until every URL is served over https; try 300, then a year (31536000).
SECURE_HSTS_SECONDS = env_int("VIGIL_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("VIGIL_HSTS_INCLUDE_SUBDOMAINS", False)
# Redirect http to https; /healthz stays on http for the container's own health check.
SECURE_SSL_REDIRECT = env_bool("VIGIL_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# A care team's webhook carries the patient's identity: https only, except in development
# (DJANGO_DEBUG), where a local receiver on plain http is allowed.
VIGIL_ALLOW_HTTP_WEBHOOKS = env_bool("VIGIL_ALLOW_HTTP_WEBHOOKS", DEBUG)
# The admin's pages, the docs page and the API load scripts, styles, images and fonts only
# from this origin. Inline styles stay allowed (the admin's templates and Django's own use
# <style> and style attributes; a nonce would switch 'unsafe-inline' off); inline scripts do
# not: the docs page's one inline script carries the request's nonce (config/templates/api/
# docs.html), and the one inline handler, the issued credential's onfocus="this.select()",
# is allowed by its hash alone. data: images are Swagger UI's icons, drawn in its CSS.
_SELECT_ON_FOCUS = "'sha256-biFQTroSCI3Z5BmsMGyEE2jFZdwjjG1Oe7JLytgH6jM='"  # this.select()
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE, UNSAFE_HASHES, _SELECT_ON_FOCUS],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Logins (monitoring/auth.py; the API's token login and the admin's) --------------------
# Staff must set up and use an authenticator app (TOTP) to reach the admin. Without it,
# two-factor is still asked of every user who has set up a device.
VIGIL_REQUIRE_2FA = env_bool("VIGIL_REQUIRE_2FA", False)
OTP_TOTP_ISSUER = os.environ.get("VIGIL_OTP_ISSUER", "Vigil")
# Failed logins, API and admin together, counted in the cache by the username as it logs in
# (trimmed, case-folded) and the client's address: past a limit within the window, the login
# answers 429 without checking the password until the window ends. One address's guesses at
# one username lock that pair; the per-username limit (any address) stops guessing spread
# over many addresses, the per-address one many usernames tried from one; both sit far above
# what people mistype, so one attacker cannot lock out a whole clinic behind one NAT.
VIGIL_LOGIN_FAILURES_PER_USERNAME_AND_ADDRESS = env_int(
    "VIGIL_LOGIN_FAILURES_PER_USERNAME_AND_ADDRESS", 5
)
VIGIL_LOGIN_FAILURES_PER_USERNAME = env_int("VIGIL_LOGIN_FAILURES_PER_USERNAME", 50)
VIGIL_LOGIN_FAILURES_PER_ADDRESS = env_int("VIGIL_LOGIN_FAILURES_PER_ADDRESS", 100)
VIGIL_LOGIN_LOCKOUT = timedelta(minutes=env_int("VIGIL_LOGIN_LOCKOUT_MINUTES", 15))
# The reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For is
# believed: the client is the last address in it that is not one of them. Empty: the
# client is REMOTE_ADDR and X-Forwarded-For, which anyone can write, is ignored. Login
# throttling and the audit log both use it (monitoring.audit.client_ip).
VIGIL_TRUSTED_PROXIES = tuple(
    ipaddress.ip_network(entry.strip(), strict=False)
    for entry in os.environ.get("VIGIL_TRUSTED_PROXIES", "").split(",")
    if entry.strip()
)

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["monitoring.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSONParser, answering 400 to bodies it would let end in a 500 (config/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Vigil API",
    "DESCRIPTION": (
        "Remote patient monitoring: patient apps and devices post readings; care teams "
        "manage patients, credentials and alerts. Every call takes `Authorization: Bearer`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # The docs page loads Swagger UI from our own static files (drf-spectacular-sidecar).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The enum hook is drf-spectacular's default; ours documents the 401, 403 and 404 that
    # every operation may answer, with the error body (config/api.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MetricEnum": "monitoring.models.Metric.choices",
        "MeasuredMetricEnum": "monitoring.serializers.MEASURED_METRICS",
        "DeviceKindEnum": "monitoring.models.DeviceKind.choices",
        "RuleKindEnum": "monitoring.models.RuleKind.choices",
        "SeverityEnum": "monitoring.models.Severity.choices",
        "NudgeStatusEnum": "monitoring.models.NudgeStatus.choices",
        "NudgeChannelEnum": "monitoring.models.NudgeChannel.choices",
        "NudgePurposeEnum": "monitoring.models.NudgePurpose.choices",
        "PushPlatformEnum": "monitoring.models.PushPlatform.choices",
    },
}

# Credential lifetimes.
VIGIL_STAFF_TOKEN_TTL = timedelta(hours=env_int("VIGIL_STAFF_TOKEN_HOURS", 12))
VIGIL_APP_TOKEN_TTL = timedelta(days=env_int("VIGIL_APP_TOKEN_DAYS", 90))

# Readings: clock-skew allowance for measured_at in the future (clinical.yaml
# plausibility_summary.general_rules: "+5 min"); batch size limit from docs/api.md.
VIGIL_FUTURE_SKEW = timedelta(minutes=5)
# The earliest measured_at (or dose scheduled_for) accepted: a device whose clock was reset
# reports 1970 or 0001-01-01, which no rule window or schedule slot can hold. An engineering
# choice, not a clinical number.
VIGIL_EARLIEST_MEASUREMENT = env_datetime("VIGIL_EARLIEST_MEASUREMENT", "2000-01-01")
VIGIL_MAX_BATCH = 500
# Readings not evaluated after this long are re-enqueued by the sweep.
VIGIL_EVALUATION_GRACE = timedelta(seconds=env_int("VIGIL_EVALUATION_GRACE_SECONDS", 60))
VIGIL_SWEEP_BATCH = env_int("VIGIL_SWEEP_BATCH", 500)
# A running evaluation drain waits this long for more uploads before it lets go (seconds,
# below 1): under steady traffic one message then serves many uploads (monitoring/evaluation/
# drain.py). It holds one worker process while it waits; 0 turns the waiting off.
VIGIL_DRAIN_LINGER_SECONDS = env_float("VIGIL_DRAIN_LINGER_SECONDS", 0.5)
# Info alerts resolve themselves this long after their last trigger (nobody has to act).
VIGIL_INFO_ALERT_TTL = timedelta(hours=env_int("VIGIL_INFO_ALERT_TTL_HOURS", 24))
# The triage queue reloads itself this often (filters kept; a nurse can pause it); 0: never.
VIGIL_QUEUE_REFRESH_SECONDS = env_int("VIGIL_QUEUE_REFRESH_SECONDS", 60)
# Readings measured longer ago than this are late: only a critical finding on one raises an
# alert, titled as late with its measured time; lesser ones are stored and shown but raise
# nothing (docs/clinical-policies.md, "Late and out-of-order data").
VIGIL_STALE_READING_AGE = timedelta(hours=env_int("VIGIL_STALE_READING_HOURS", 24))
# The panel's "no data for N days" (program.panel): the product's definition of a patient
# gone quiet (issue 13: "three days"), a working-list choice of the clinic, not a clinical limit.
VIGIL_PANEL_NO_DATA_DAYS = env_int("VIGIL_PANEL_NO_DATA_DAYS", 3)
# Scheduled rules (missing data, CGM and INR summaries) are re-checked at most this often.
VIGIL_SUMMARY_CHECK_INTERVAL = timedelta(minutes=env_int("VIGIL_SUMMARY_CHECK_MINUTES", 60))
# Schedules: a measurement (or dose) up to this long before its slot's time counts for the
# slot, so measuring a little early neither misses the slot nor brings a reminder. An
# engineering choice, not a clinical number.
VIGIL_SLOT_LEAD = timedelta(minutes=env_int("VIGIL_SLOT_LEAD_MINUTES", 60))

# Nudges (monitoring/nudges/): the rails of the per-patient message choice. Operational
# choices, not clinical numbers.
# The first decisions of a patient are uniformly random (a few days of one reminder a day):
# unbiased data for everyone, before the patient's own record steers the choice.
VIGIL_NUDGE_WARMUP_DECISIONS = env_int("VIGIL_NUDGE_WARMUP_DECISIONS", 5)
# Every variant keeps at least this chance of being chosen and none gets more than the
# maximum, so the policy keeps learning and never locks one message in: bounds of the kind
# HeartSteps V2 put on its randomisation probability (Liao et al. 2020); the values are ours.
# With more than 1/min candidates the minimum becomes 1/K; a lone candidate is always chosen.
VIGIL_NUDGE_MIN_PROBABILITY = env_float("VIGIL_NUDGE_MIN_PROBABILITY", 0.1)
VIGIL_NUDGE_MAX_PROBABILITY = env_float("VIGIL_NUDGE_MAX_PROBABILITY", 0.8)
# No nudge within this many minutes of the last one ("just messaged").
VIGIL_NUDGE_MIN_GAP_MINUTES = env_int("VIGIL_NUDGE_MIN_GAP_MINUTES", 30)
# The population's record with a variant weighs as at most this many of the patient's own
# outcomes in the patient's prior (policy.population_prior).
VIGIL_NUDGE_PRIOR_STRENGTH = env_float("VIGIL_NUDGE_PRIOR_STRENGTH", 10.0)
# Consecutive missed slots of one measurement schedule before the care team gets an adherence
# alert (missed doses follow the reference's own rule, monitoring/nudges/escalation.py); 2 by
# analogy with clinical.yaml's default for critical medications (medication_adherence
# .dose_level_adherence.missed_dose_flag.alert_defaults, engineering choice). It is the count
# of each patient's rule when created; clinicians tailor it there.
VIGIL_NONRESPONSE_MISSES = env_int("VIGIL_NONRESPONSE_MISSES", 2)

# --- Notifications ------------------------------------------------------------------------
VIGIL_BASE_URL = os.environ.get("VIGIL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
VIGIL_WEBHOOK_TIMEOUT = float(os.environ.get("VIGIL_WEBHOOK_TIMEOUT_SECONDS", "10"))
VIGIL_NOTIFICATION_MAX_ATTEMPTS = env_int("VIGIL_NOTIFICATION_MAX_ATTEMPTS", 6)
# Without an SMTP server, alert emails are written as files under var/mail (not to the
# console: they name patients, and logs carry no PHI).
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "vigil@localhost")
# SMS through Twilio: enabled when all three are set.
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_API_BASE = os.environ.get("TWILIO_API_BASE", "https://api.twilio.com").rstrip("/")
# Push to the patient app through FCM's HTTP v1 API: enabled when the project id and a
# service account key file (JSON, with the firebase.messaging scope granted) are set.
FCM_PROJECT_ID = os.environ.get("FCM_PROJECT_ID", "")
FCM_SERVICE_ACCOUNT_FILE = os.environ.get("FCM_SERVICE_ACCOUNT_FILE", "")
FCM_API_BASE = os.environ.get("FCM_API_BASE", "https://fcm.googleapis.com").rstrip("/")
# A nudge is about now (a measurement or dose due): a few quick retries, then it is recorded
# as failed rather than arriving hours late (30 s, 1 min, 2 min apart by default).
VIGIL_NUDGE_MAX_ATTEMPTS = env_int("VIGIL_NUDGE_MAX_ATTEMPTS", 4)

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "filesystem://"
CELERY_BROKER_IS_EMBEDDED = CELERY_BROKER_URL.startswith("filesystem://")
if CELERY_BROKER_IS_EMBEDDED:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange bindings; kombu's default is "control" relative to the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest task (time limit) and the longest countdown we use, so a
        # message is never redelivered while its first delivery is still running.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        # After a whole-worker crash, look for unacked messages past visibility_timeout every
        # 15 s: kombu scans every interval * throttle seconds (default 10 * 10 = 100 s).
        "unacked_restore_interval": 15,
        "unacked_restore_throttle": 1,
        # redis-py waits forever on a broker that accepted the connection and stopped
        # answering (a hung Redis, a network partition): a publish from a request would hang.
        # Each command now gives up after this long; a healthy Redis answers in under a
        # millisecond. The worker's BRPOP is read by its event loop only once the reply
        # arrives, so no socket timeout cuts an idle consumer off.
        "socket_connect_timeout": 1,
        "socket_timeout": 1,
        # A publisher's first connection (kombu's default channel) is tried once: otherwise it
        # is retried for CELERY_BROKER_CONNECTION_TIMEOUT with 2 s pauses (4 s measured).
        "max_retries": 0,
    }
if CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
    # RabbitMQ (docs/deployment.md): Celery declares durable queues and publishes persistent
    # messages. "quorum" replicates the queues over a RabbitMQ cluster (declare them on a fresh
    # vhost: an existing classic queue cannot change type).
    CELERY_TASK_DEFAULT_QUEUE_TYPE = os.environ.get("CELERY_QUEUE_TYPE", "classic")
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing is not retried: with Redis frozen (SIGSTOP) each try waits the socket timeout, and
# two retries made an upload take 12 s; a Redis that restarted is reconnected by redis-py's
# pool without a retry (measured with kombu 5.7, redis-py 8.1). A failed publish is logged in
# one line (config/celery.py) and the row it was about stays pending in its outbox (readings,
# alert events, notifications, nudges), which a sweep enqueues again: the database, not the
# broker, is the source of truth (docs/architecture.md, "The flow of one reading", step 3).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 0}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# A worker child killed mid-task must not lose the task (docs/architecture.md, "Reliability
# facts we measured").
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 180)
CELERY_TASK_DEFAULT_QUEUE = "evaluation"
# Deliveries wait on other people's servers: their own queue keeps a slow webhook from
# holding up evaluation.
CELERY_TASK_ROUTES = {
    "alerts.tasks.route_alert_event_task": {"queue": "notifications"},
    "alerts.tasks.deliver_notification_task": {"queue": "notifications"},
    "monitoring.tasks.deliver_nudge_task": {"queue": "notifications"},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the DB connection around every task unless this is set
# (CONN_MAX_AGE is ignored in workers): ~90 vs ~400 tasks/s (docs/architecture.md,
# "Performance facts we measured").
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BEAT_SCHEDULE = {
    "enqueue-unevaluated-readings": {
        "task": "monitoring.tasks.enqueue_unevaluated_readings_task",
        "schedule": 60.0,
    },
    "enqueue-due-scheduled-rules": {
        "task": "monitoring.tasks.enqueue_due_scheduled_rules_task",
        "schedule": 60.0,
    },
    "escalate-overdue-alerts": {
        "task": "alerts.tasks.escalate_overdue_alerts_task",
        "schedule": 30.0,
    },
    "expire-info-alerts": {"task": "alerts.tasks.expire_info_alerts_task", "schedule": 300.0},
    # Paging alert events whose routing task was lost (a Redis restart, a killed worker).
    "enqueue-unrouted-alert-events": {
        "task": "alerts.tasks.enqueue_unrouted_alert_events_task",
        "schedule": 60.0,
    },
    "enqueue-pending-notifications": {
        "task": "alerts.tasks.enqueue_pending_notifications_task",
        "schedule": 60.0,
    },
    # Nudge deliveries whose task was lost (a Redis restart) go out after all.
    "enqueue-pending-nudges": {
        "task": "monitoring.tasks.enqueue_pending_nudges_task",
        "schedule": 60.0,
    },
    # Opens due slots, reminds at each slot's local time, marks closed ones missed.
    "run-reminder-sweep": {"task": "monitoring.tasks.run_reminder_sweep_task", "schedule": 60.0},
    # Outcomes of nudges whose window closed, into each patient's record with the variant.
    "settle-nudge-outcomes": {
        "task": "monitoring.tasks.settle_nudge_outcomes_task",
        "schedule": 300.0,
    },
    # Streak milestones, in each patient's late morning (monitoring/nudges/sweeps.py).
    "nudge-streaks": {"task": "monitoring.tasks.nudge_streaks_task", "schedule": 900.0},
    # Keep-sending nudges to patients whose device period is at risk of missing its days with
    # data, once a local day in their late afternoon (program/outreach.py).
    "nudge-patients-at-risk": {
        "task": "program.tasks.nudge_patients_at_risk_task",
        "schedule": 900.0,
    },
    # --- partition: the readings' monthly partitions ahead, and retention (docs/retention.md).
    "maintain-reading-partitions": {
        "task": "monitoring.tasks.maintain_reading_partitions_task",
        "schedule": 6 * 3600.0,
    },
    "apply-retention": {"task": "monitoring.tasks.apply_retention_task", "schedule": 24 * 3600.0},
    # The RPM ledger's previous and current month, recomputed (program.ledger): lines turn
    # billable as periods close in each patient's zone; ~1.5 s per month for 1,000 patients.
    "recompute-ledger": {"task": "program.tasks.recompute_ledger_task", "schedule": 6 * 3600.0},
    # --- program: care time. Timers left running past VIGIL_TIMER_CAP_MINUTES are capped.
    "cap-forgotten-timers": {
        "task": "program.tasks.cap_forgotten_timers_task",
        "schedule": 300.0,
    },
}

# --- partition: readings partitions and retention per data class (docs/retention.md) -----


def env_days(name: str) -> timedelta | None:
    """A number of days, or None (the default: kept forever) when unset or empty."""
    value = os.environ.get(name)
    return None if value in (None, "") else timedelta(days=int(value))


# Monthly partitions of the readings kept ready ahead of the current month (PostgreSQL).
VIGIL_READING_PARTITIONS_AHEAD = env_int("VIGIL_READING_PARTITIONS_AHEAD", 3)
# The clinic's records policy, per data class: how long each is kept at least. None (the
# default) keeps it forever; nothing is deleted.
VIGIL_RETAIN_READINGS = env_days("VIGIL_RETAIN_READINGS_DAYS")
VIGIL_RETAIN_ALERTS = env_days("VIGIL_RETAIN_ALERTS_DAYS")
VIGIL_RETAIN_AUDIT = env_days("VIGIL_RETAIN_AUDIT_DAYS")
# Only where the clinic chooses: raw CGM readings older than this are replaced by their
# hourly summaries (monitoring.CgmHourlySummary). None (the default): raw CGM is kept.
VIGIL_CGM_RAW_REPLACED_AFTER = env_days("VIGIL_CGM_RAW_REPLACED_AFTER_DAYS")

# --- program: care time (program/care_time.py) ------------------------------------------
# Operational choices of the clinic, not billing rules. A timer left running longer than
# this counts this many minutes and is flagged "capped" for the approver (when stopped late,
# or by the cap-forgotten-timers sweep).
VIGIL_TIMER_CAP_MINUTES = env_int("VIGIL_TIMER_CAP_MINUTES", 60)
# The most one time entry may count (entered by hand or changed): a slip of the keyboard
# ("600" for "60") must not reach the ledger.
VIGIL_TIME_ENTRY_MAX_MINUTES = env_int("VIGIL_TIME_ENTRY_MAX_MINUTES", 120)

# --- Logging ------------------------------------------------------------------------------
# Ids only, never names, values or MRNs (no PHI in logs). A database error's message quotes
# the row's values (PostgreSQL's "DETAIL: Key (…)=(…)"): the formatter writes its class and
# SQLSTATE instead, in tracebacks and in messages that quote it (config/logs.py). Django
# logs each query with its parameters at DEBUG (with DJANGO_DEBUG): kept at WARNING, so not
# even VIGIL_LOG_LEVEL=DEBUG writes them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "config.logs.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("VIGIL_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
