"""docker-compose.yml's layouts: one host, and the `scale` profile (docs/deployment.md).

Docker is not run here: the file is read as YAML and held to what the settings route and
what the deployment guide promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

COMPOSE = Path(settings.BASE_DIR) / "docker-compose.yml"


def services(profile: str | None = None) -> dict[str, dict]:
    """The services `docker compose [--profile profile] up` starts."""
    every = yaml.safe_load(COMPOSE.read_text())["services"]
    return {
        name: service
        for name, service in every.items()
        if not service.get("profiles") or profile in service["profiles"]
    }


def command(service: dict) -> list[str]:
    return [str(part) for part in service.get("command", [])]


def consumed_queues(layout: dict[str, dict]) -> set[str]:
    queues = set()
    for service in layout.values():
        for part in command(service):
            if part.startswith("--queues="):
                queues.update(part.removeprefix("--queues=").split(","))
    return queues


def test_every_routed_queue_is_consumed_in_both_layouts():
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    routed.add(settings.CELERY_TASK_DEFAULT_QUEUE)

    for profile in (None, "scale"):
        assert consumed_queues(services(profile)) == routed == {"evaluation", "notifications"}


def test_evaluation_and_deliveries_have_workers_of_their_own():
    for profile in (None, "scale"):
        per_service = {
            name: consumed_queues({name: service})
            for name, service in services(profile).items()
            if "worker" in command(service)
        }
        assert per_service == {"worker": {"evaluation"}, "notifier": {"notifications"}}


def test_beat_is_one_service_of_one_replica_in_both_layouts():
    for profile in (None, "scale"):
        beats = [
            (name, service.get("deploy", {}).get("replicas", 1))
            for name, service in services(profile).items()
            if "beat" in command(service)
        ]
        assert beats == [("beat", 1)]


def test_the_scale_profile_adds_the_pooler_the_broker_and_web_replicas_behind_a_proxy():
    single, scale = services(), services("scale")

    assert sorted(set(scale) - set(single)) == ["pgbouncer", "proxy", "rabbitmq", "web-replica"]
    assert scale["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    assert "ports" not in scale["web-replica"]  # only through the proxy
    assert scale["proxy"]["volumes"] == [
        "./deploy/nginx/vigil.conf:/etc/nginx/conf.d/default.conf:ro"
    ]
    upstreams = (Path(settings.BASE_DIR) / "deploy/nginx/vigil.conf").read_text()
    assert "server web:8000" in upstreams and "server web-replica:8000" in upstreams


def test_the_app_services_follow_the_layout_and_migrate_talks_to_postgresql_itself():
    layout = services("scale")
    app = layout["web"]["environment"]

    assert "${VIGIL_DATABASE_HOST:-postgres}:${VIGIL_DATABASE_PORT:-5432}" in app["DATABASE_URL"]
    assert app["DATABASE_POOLER"] == "${DATABASE_POOLER:-}"
    assert app["CELERY_BROKER_URL"] == "${VIGIL_BROKER_URL:-redis://redis:6379/0}"
    assert "@postgres:5432/" in layout["migrate"]["environment"]["DATABASE_URL"]
    assert layout["web"]["depends_on"]["pgbouncer"] == {
        "condition": "service_healthy",
        "required": False,
    }


def test_on_rabbitmq_the_queue_type_is_chosen_by_the_environment():
    script = (
        "import django; django.setup(); from config.celery import app; "
        "print(app.conf.task_default_queue_type)"
    )

    def queue_type(**environment: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings"} | environment,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    assert queue_type(CELERY_BROKER_URL=amqp) == "classic"
    assert queue_type(CELERY_BROKER_URL=amqp, CELERY_QUEUE_TYPE="quorum") == "quorum"
