"""The wheel, as a user installs it: built from the source tree and installed in a fresh
virtual environment far from that tree, Vigil migrates its embedded SQLite default and serves
the admin with its own templates and the API docs page with Swagger UI from its own static
files. (The image and CI used to run the source tree, which hid a wheel without templates.)

Only Vigil's dependencies are borrowed from the running environment, through a .pth line
naming its site-packages; the test proves every Vigil module is imported from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

SOURCE = Path(__file__).resolve().parent.parent

# What a checkout may hold besides the sources: none of it may reach the wheel by accident.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "var",
    "staticfiles",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "test-artifacts",
    "control",
    "tests",
)

# Run inside the fresh environment, from a folder outside the source tree: the login page,
# the alert triage list (superuser, no 2FA configured), the docs page and one Swagger UI file.
PROBE = """
import json, os
import django
django.setup()
import alerts, config, monitoring
from config.settings import env_int
from monitoring.evaluation.failures import describe_error
from django.contrib.auth import get_user_model
from django.test import Client

admin = get_user_model().objects.create_superuser("root", "root@example.org", "x")
anonymous, client = Client(), Client()
client.force_login(admin)

def page(client, url):
    response = client.get(url)
    return {"status": response.status_code, "body": response.content.decode()}

SWAGGER_UI = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
from django.utils import translation
from django.utils.translation import pgettext
with translation.override("de"):
    german = pgettext("nudge notification title", "A reminder from Vigil")
os.environ["VIGIL_PROBE"] = "not a number"
try:
    env_int("VIGIL_PROBE", 1)
except ValueError as error:
    failure = describe_error(error)

print(json.dumps({
    "failure": failure,
    "modules": [module.__file__ for module in (config, monitoring, alerts)],
    "login": page(anonymous, "/admin/login/"),
    "triage": page(client, "/admin/alerts/alert/"),
    "docs": page(anonymous, "/api/docs/"),
    "swagger_ui": anonymous.get(SWAGGER_UI).status_code,
    "german": german,
}))
"""


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(python of a fresh venv holding only the built wheel, a folder to run in, its env)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(SOURCE, source, ignore=NOT_SOURCES)
    # No PYTHONPATH anywhere below: it would put a source tree back on the path.
    clean_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
        "--wheel-dir", str(work / "dist"), str(source), env=clean_env,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("vigil-*.whl")

    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    purelib = Path(
        run(
            str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    # The dependencies (pinned by the lock file) from this environment: a plain path line in a
    # .pth adds the folder without processing the .pth files in it, so an editable install of
    # Vigil there is not seen.
    borrowed = [
        path for path in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}
        if Path(path).is_dir()
    ]  # fmt: skip
    (purelib / "vigil_test_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    run(
        sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
        "--no-index", "--quiet", str(wheel), env=clean_env,
    )  # fmt: skip

    here = work / "elsewhere"
    here.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(here),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # The embedded defaults: SQLite and the file broker under VIGIL_VAR_DIR, no Redis.
        "VIGIL_VAR_DIR": str(here / "var"),
        "VIGIL_STATIC_ROOT": str(here / "staticfiles"),
    }
    return python, here, env


def test_the_wheel_carries_templates_yaml_and_migrations(installed):
    python, here, env = installed
    listing = run(
        str(python), "-c",
        "import importlib.metadata as m; print('\\n'.join(str(f) for f in m.files('vigil')))",
        cwd=here, env=env,
    ).stdout.split()  # fmt: skip

    for expected in (
        "config/templates/admin/vigil_login.html",
        "config/templates/api/docs.html",
        "alerts/templates/admin/alerts/alert/change_list.html",
        "monitoring/templates/admin/monitoring/patient/change_form.html",
        "monitoring/clinical.yaml",
        "monitoring/protocols.yaml",
        "monitoring/migrations/0001_initial.py",
        "alerts/migrations/0001_initial.py",
        "config/locale/de/LC_MESSAGES/django.mo",
        "config/locale/en/LC_MESSAGES/django.mo",
    ):
        assert expected in listing
    assert not [path for path in listing if path.startswith("tests/")]


def test_the_installed_wheel_migrates_sqlite_and_serves_the_admin_and_the_docs(installed):
    python, here, env = installed

    migrated = run(str(python), "-m", "django", "migrate", "--noinput", cwd=here, env=env)
    run(str(python), "-m", "django", "collectstatic", "--noinput", "-v", "0", cwd=here, env=env)
    probe = json.loads(run(str(python), "-c", PROBE, cwd=here, env=env).stdout.splitlines()[-1])

    assert "Applying monitoring.0001_initial... OK" in migrated.stdout
    assert (here / "var" / "vigil.sqlite3").exists()
    # Every Vigil module comes from the venv's site-packages, none from a source tree.
    site_packages = str(python.parent.parent)
    assert all(module.startswith(site_packages) for module in probe["modules"]), probe["modules"]
    assert all("site-packages" in module for module in probe["modules"]), probe["modules"]
    # config/templates/admin/vigil_login.html: the authenticator code under the password.
    assert probe["login"]["status"] == 200
    assert 'name="otp_token"' in probe["login"]["body"]
    # alerts/templates/admin/alerts/alert/change_list.html and its triage styles.
    assert probe["triage"]["status"] == 200
    assert ".vigil-severity-critical" in probe["triage"]["body"]
    # config/templates/api/docs.html with Swagger UI from our own static files, no CDN.
    docs = probe["docs"]["body"]
    assert probe["docs"]["status"] == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs
    assert "//cdn" not in docs and "https://" not in docs and "http://" not in docs
    assert probe["swagger_ui"] == 200
    # config/locale: the patient-facing catalogues, compiled, found through LOCALE_PATHS.
    assert probe["german"] == "Eine Erinnerung von Vigil"
    # An evaluation failure names the line of Vigil's code it passed through, as in a source
    # tree: installed, Vigil's packages sit in site-packages among the libraries.
    assert probe["failure"].startswith("ValueError at config/settings.py:"), probe["failure"]
    assert probe["failure"].endswith(" in env_int")
