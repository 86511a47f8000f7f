"""Seed a demo clinic: one care team, staff logins and patients with app tokens.

Idempotent: a second run keeps the same team and patients, sets new passwords and issues
new app tokens (revoking the previous demo tokens), and prints them all again. The patients'
tokens also go to var/demo_tokens.json (readable by the owner only), where the reading
simulator (simulate_readings) finds them.
"""

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from alerts.models import CareTeam, CareTeamMembership, CareTeamRole
from alerts.teams import sync_role_groups
from monitoring.auth import issue_app_token
from monitoring.models import Patient, PatientAppToken, Protocol
from monitoring.patient_rules import apply_protocols
from monitoring.schedules import apply_protocol_schedules

TEAM_NAME = "Demo clinic"
TOKENS_FILE = "demo_tokens.json"
STAFF = [
    # username, role, escalation level, superuser
    ("nurse", CareTeamRole.NURSE, 1, False),
    ("physician", CareTeamRole.PHYSICIAN, 2, False),
    ("admin", None, None, True),
]
PATIENTS = [
    # external id, name, time zone, protocols
    ("DEMO-001", "Alex Demo", "America/New_York", ["heart_failure", "hypertension"]),
    ("DEMO-002", "Bea Demo", "Europe/Berlin", ["diabetes"]),
    ("DEMO-003", "Chen Demo", "Asia/Singapore", ["anticoagulation"]),
    ("DEMO-004", "Dana Demo", "Europe/London", ["copd"]),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo clinic and print its logins and tokens."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def handle(self, *args, base_url: str, **options):
        team, _ = CareTeam.objects.get_or_create(name=TEAM_NAME)
        logins = [self._staff(team, *spec) for spec in STAFF]
        tokens = [self._patient(team, *spec) for spec in PATIENTS]
        # Only once the new tokens are committed: the file must never hold tokens that a
        # failed seed rolled back, while the working ones were revoked.
        transaction.on_commit(lambda: write_tokens(settings.VAR_DIR / TOKENS_FILE, tokens))

        out = self.stdout.write
        out(self.style.SUCCESS("\nVigil demo clinic is ready."))
        out(f"  Admin:     {base_url}/admin/")
        out(f"  API docs:  {base_url}/api/docs/")
        out("  Staff logins (new passwords on every start):")
        for username, password in logins:
            out(f"    {username:<10} {password}")
        out("  Patient app tokens:")
        for external_id, protocols, token in tokens:
            out(f"    {external_id}  {','.join(protocols):<28} {token}")
        first = tokens[0][2]
        out("  Try:")
        out(
            f"    curl -s -X POST {base_url}/api/v1/readings -H 'Authorization: Bearer {first}' "
            "-H 'Content-Type: application/json' -d '{\"id\": \"'$(python3 -c 'import uuid;"
            'print(uuid.uuid4())\')\'", "type": "weight", "value": 81.5, "unit": "kg", '
            '"measured_at": "\'$(date -u +%Y-%m-%dT%H:%M:%SZ)\'"}\'\n'
        )

    def _staff(self, team, username, role, level, superuser):
        user, _ = get_user_model().objects.get_or_create(username=username)
        # Alert emails to the demo staff land in var/mail (the file backend), to look at.
        user.email = f"{username}@demo-clinic.invalid"
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        if role:
            CareTeamMembership.objects.update_or_create(
                team=team, user=user, defaults={"role": role, "escalation_level": level}
            )
            # The role's group carries the admin permissions (alerts/teams.py).
            sync_role_groups(users=[user])
        return username, password

    def _patient(self, team, external_id, name, zone, protocols):
        patient, _ = Patient.objects.update_or_create(
            external_id=external_id,
            defaults={"name": name, "timezone": zone, "care_team": team},
        )
        patient.protocols.set(Protocol.objects.for_codes(protocols))
        apply_protocols(patient=patient, codes=protocols)
        apply_protocol_schedules(patient=patient, codes=protocols)
        PatientAppToken.objects.filter(patient=patient, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        _, token = issue_app_token(patient=patient)
        return external_id, protocols, token


def write_tokens(path: Path, tokens: list[tuple[str, list[str], str]]) -> None:
    """Writes {external id: app token} to `path`, created 0600 (the tokens are the patients'
    credentials) and replaced atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    content = {external_id: token for external_id, _, token in tokens}
    partial.unlink(missing_ok=True)  # a leftover would keep its own permissions
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(content, file, indent=2)
    os.replace(partial, path)
