"""The clinical header of the alert and patient pages: who the patient is, at a glance.

Name, age, MRN, the phone as a tap-to-call link, the language they speak, what they are
monitored for, the medications they take on a plan, their care team and — on the alert
page — who the alert is assigned to. A nurse calling a patient reads it all in one place
(issue 14.2). Built in a fixed number of queries whatever the patient holds: the protocols,
the active medication plans, the running RPM episode's codes and the team's members, one
query each (the team's name with them when the patient's team is not loaded already).

Presentation only: it reads, writes nothing and logs nothing (the header is PHI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from django.conf.locale import LANG_INFO
from django.contrib.auth.models import AbstractBaseUser

from alerts.models import CareTeamMembership, CareTeamRole
from monitoring.display import format_clock, format_date
from monitoring.models import MedicationPlan, Patient
from program.models import Episode

NO_ASSIGNEE = "Nobody"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # Python's 0 = Monday


@dataclass(frozen=True)
class Medication:
    name: str  # the plan's name holds drug and dose as prescribed: "Warfarin 5 mg"
    schedule: str  # "08:00 and 20:00 daily", "08:00 Mon, Wed, Fri"
    critical: bool  # missed doses escalate (anticoagulant, insulin …)


@dataclass(frozen=True)
class TeamMember:
    name: str
    role: str


@dataclass(frozen=True)
class ClinicalHeader:
    patient_id: int
    name: str
    age: str  # "67 years", or "age unknown" without a date of birth
    born: str  # "3 Apr 1959", or ""
    mrn: str
    phone: str  # as the clinic wrote it
    phone_href: str  # "tel:+4915112345678", or "" without a phone number
    email: str
    language: str  # "German": the language's name, not its code
    zone: str  # "Europe/Berlin"
    local_time: str  # the patient's clock now, "14:05 CET": before calling them
    conditions: list[str]  # the protocols' names: "Heart failure", "Hypertension"
    diagnosis_codes: list[str]  # ICD-10-CM codes of the running RPM episode
    medications: list[Medication]
    care_team: str
    team: list[TeamMember]
    assignee: str | None  # None: not shown (the patient page); the alert's, else "Nobody"


def clinical_header(
    *,
    patient: Patient,
    now: datetime,
    show_assignee: bool = False,
    assignee: AbstractBaseUser | None = None,
) -> ClinicalHeader:
    """The header of `patient`'s pages at `now`; with show_assignee (the alert page) the
    alert's assignee too ("Nobody" when it has none)."""
    zone = patient.zone
    today = now.astimezone(zone).date()
    age = patient.age_on(today)
    members, team_name = _team(patient)
    return ClinicalHeader(
        patient_id=patient.pk,
        name=patient.name,
        age="age unknown" if age is None else describe_age(age),
        born=format_date(patient.date_of_birth) if patient.date_of_birth else "",
        mrn=patient.external_id,
        phone=patient.phone,
        phone_href=tel_href(patient.phone),
        email=patient.email,
        language=language_name(patient.language),
        zone=patient.timezone,
        local_time=format_clock(now, zone),
        conditions=list(patient.protocols.order_by("name").values_list("name", flat=True)),
        diagnosis_codes=_diagnosis_codes(patient, today),
        medications=[
            Medication(
                name=plan.name,
                schedule=describe_schedule(plan.dose_times, plan.days_of_week),
                critical=plan.critical,
            )
            for plan in MedicationPlan.objects.filter(patient=patient, active=True).order_by(
                "name", "id"
            )
        ],
        care_team=team_name,
        team=members,
        assignee=_display_name(assignee) if assignee else NO_ASSIGNEE if show_assignee else None,
    )


def describe_age(years: int) -> str:
    return "1 year" if years == 1 else f"{years} years"


def tel_href(phone: str) -> str:
    """A tel: URI of the number's digits (and a leading +): what a phone or softphone dials,
    whatever spaces, dashes or brackets the clinic typed."""
    digits = re.sub(r"[^\d]", "", phone)
    if not digits:
        return ""
    return f"tel:{'+' if phone.strip().startswith('+') else ''}{digits}"


def language_name(code: str) -> str:
    """ "de" -> "German"; a code Django does not know is shown as it is."""
    code = (code or "").strip().lower()
    info = LANG_INFO.get(code) or LANG_INFO.get(code.split("-")[0]) or {}
    if "fallback" in info and "name" not in info:
        info = LANG_INFO.get(info["fallback"][0], {})
    return info.get("name", code or "not given")


def describe_schedule(times: list[str], days_of_week: list[int]) -> str:
    """ "08:00 and 20:00 daily"; on some weekdays "08:00 Mon, Wed, Fri"."""
    ordered = sorted(times)
    when = ordered[0] if len(ordered) == 1 else f"{', '.join(ordered[:-1])} and {ordered[-1]}"
    days = sorted(set(days_of_week))
    if not days or len(days) == 7:
        return f"{when} daily"
    return f"{when} {', '.join(WEEKDAYS[day] for day in days)}"


def _diagnosis_codes(patient: Patient, today: date) -> list[str]:
    conditions = (
        Episode.objects.filter(patient=patient)
        .active_on(today)
        .order_by("-start")
        .values_list("conditions", flat=True)
        .first()
    )
    return list(conditions or [])


ROLE_ORDER = {CareTeamRole.PHYSICIAN: 0, CareTeamRole.NURSE: 1, CareTeamRole.COORDINATOR: 2}


def _team(patient: Patient) -> tuple[list[TeamMember], str]:
    """The team's active members, physicians first, and the team's name (read with them
    when the patient's team is not loaded)."""
    memberships = list(
        CareTeamMembership.objects.filter(team_id=patient.care_team_id, user__is_active=True)
        .select_related("user", "team")
        .order_by("escalation_level", "id")
    )
    members = [
        TeamMember(name=_display_name(m.user), role=CareTeamRole(m.role).label)
        for m in sorted(memberships, key=lambda m: ROLE_ORDER.get(m.role, 3))
    ]
    if memberships:
        return members, memberships[0].team.name
    return members, patient.care_team.name


def _display_name(user: AbstractBaseUser) -> str:
    full = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()
