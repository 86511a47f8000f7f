"""RPM episodes: start one with its consent, billing practitioner, conditions and devices;
end one.

The rules (docs/api.md, "The RPM program"; the decisions are in each function's docstring):

- A patient has at most one open episode (no end): the partial unique index
  `episode_one_open` holds it. Episodes of one patient never overlap: checked with the
  patient's row locked (SELECT … FOR UPDATE), so two coordinators starting an episode for
  one patient at the same moment are serialised and the second sees the first.
- The billing practitioner is an active physician member of the patient's care team when
  the episode starts (the care team's role vocabulary, alerts.teams: physicians approve
  time, coordinators manage episodes; a nurse or coordinator does not bill RPM).
- Consent (when, how) is given by the start day: an episode never runs without it.
- Start and end are the patient's local calendar days, never after today there.

Who may start or end one (MANAGE_EPISODES) is the caller's to ask (the API and the admin);
what each change was is recorded by the surface that made it (the API's audit middleware,
the admin's TeamScopedAdmin), as for every other record of a patient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import CareTeamMembership, CareTeamRole
from monitoring.models import Device, Patient
from program.models import ConsentMethod, Episode

# An ICD-10-CM code as written: a letter, a digit, a digit or letter (the category), then
# optionally a dot and one to four more characters (the subcategory, and the 7th character
# extension). The format only: whether the code exists in this year's code set is the
# billing system's to check.
ICD10_CM = re.compile(r"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?")
ICD10_CM_FORMAT = (
    "Not an ICD-10-CM code: a letter, a digit and a digit or letter, then optionally a dot "
    'and up to four more, e.g. "I10" or "E11.9".'
)


class InvalidEpisode(Exception):
    """The episode's fields were wrong; `errors` maps each field to its reasons (a list, or
    for a list field, a dict of the item's index to its reasons)."""

    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


class EpisodeConflict(Exception):
    """The change contradicts another episode of the patient (an open one, an overlapping
    one) or the episode's own state (ended already)."""


def local_today(patient: Patient, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(patient.zone).date()


def normalise_conditions(codes: Sequence[str]) -> tuple[list[str], dict[int, list[str]]]:
    """The codes upper-cased and stripped, and the reasons of each wrong one by its index.
    At least one code; each once."""
    normalised = [str(code).strip().upper() for code in codes]
    errors: dict[int, list[str]] = {}
    seen: set[str] = set()
    for index, code in enumerate(normalised):
        if not ICD10_CM.fullmatch(code):
            errors[index] = [ICD10_CM_FORMAT]
        elif code in seen:
            errors[index] = ["Listed twice."]
        seen.add(code)
    return normalised, errors


def team_physician(*, patient: Patient, username: str):
    """The active physician of the patient's care team with this username, or None."""
    membership = (
        CareTeamMembership.objects.filter(
            team_id=patient.care_team_id,
            role=CareTeamRole.PHYSICIAN,
            user__username=username,
            user__is_active=True,
        )
        .select_related("user")
        .first()
    )
    return membership.user if membership is not None else None


def validate_start(
    *,
    patient: Patient,
    start: date,
    consent_at: datetime | None,
    consent_method: str,
    billing_practitioner: str,
    conditions: Sequence[str],
    device_ids: Sequence[int],
    now: datetime,
) -> tuple[object, list[str], list[Device]]:
    """The billing practitioner (a user), the normalised condition codes and the devices of
    a new episode; raises InvalidEpisode with every wrong field's reasons. Reads only: the
    admin's form asks it before anything is written."""
    errors: dict = {}
    today = local_today(patient, now)
    if start > today:
        errors["start"] = [
            f"Is after today ({today.isoformat()}, the patient's time zone): an episode "
            "starts on the day monitoring begins, not ahead of it."
        ]
    if consent_at is None:
        errors["consent_at"] = ["When the patient consented is required."]
    elif consent_at > now + settings.VIGIL_FUTURE_SKEW:
        errors["consent_at"] = ["Is in the future."]
    elif consent_at.astimezone(patient.zone).date() > start:
        errors["consent_at"] = [
            "Is after the episode's start day: consent is given by the time monitoring "
            "begins. Start the episode on the day of consent or later."
        ]
    if consent_method not in ConsentMethod.values:
        errors["consent_method"] = [f"One of: {', '.join(ConsentMethod.values)}."]
    practitioner = team_physician(patient=patient, username=billing_practitioner)
    if practitioner is None:
        errors["billing_practitioner"] = [
            f"'{billing_practitioner}' is not an active physician of the patient's care team."
        ]
    codes, code_errors = normalise_conditions(conditions)
    if not codes:
        errors["conditions"] = ["At least one condition monitored (ICD-10-CM) is required."]
    elif code_errors:
        errors["conditions"] = code_errors
    devices, device_errors = _patient_devices(patient, device_ids)
    if device_errors:
        errors["devices"] = device_errors
    if errors:
        raise InvalidEpisode(errors)
    return practitioner, codes, devices


def _patient_devices(
    patient: Patient, device_ids: Sequence[int]
) -> tuple[list[Device], dict[int, list[str]]]:
    """The devices supplied: the patient's own active (not revoked) devices, each once."""
    found = {
        device.pk: device
        for device in Device.objects.filter(
            patient=patient, revoked_at__isnull=True, pk__in=list(device_ids)
        )
    }
    errors: dict[int, list[str]] = {}
    seen: set[int] = set()
    for index, device_id in enumerate(device_ids):
        if device_id not in found:
            errors[index] = [f"Device {device_id} is not an active device of this patient."]
        elif device_id in seen:
            errors[index] = ["Listed twice."]
        seen.add(device_id)
    return list(found.values()), errors


def start_episode(
    *,
    patient: Patient,
    start: date,
    consent_at: datetime | None,
    consent_method: str,
    billing_practitioner: str,
    conditions: Sequence[str],
    devices: Sequence[int] = (),
    user,
    now: datetime | None = None,
) -> Episode:
    """Starts an open RPM episode for the patient on `start` (a local calendar day).

    `billing_practitioner` is a username: an active physician of the patient's team.
    `conditions` are ICD-10-CM codes (format checked, normalised to upper case), `devices`
    ids of the patient's active devices. Raises InvalidEpisode with per-field reasons, or
    EpisodeConflict when the patient has an open episode or one that runs on or after
    `start` (episodes never overlap; a backdated start may not reach into an earlier one).

    Writes: Episode and its devices, in one transaction, under the patient's row lock.
    """
    now = now or timezone.now()
    practitioner, codes, supplied = validate_start(
        patient=patient,
        start=start,
        consent_at=consent_at,
        consent_method=consent_method,
        billing_practitioner=billing_practitioner,
        conditions=conditions,
        device_ids=devices,
        now=now,
    )
    try:
        with transaction.atomic():
            # The lock serialises every episode change of this patient: the overlap check
            # below and the insert see the same episodes (no check-then-write race).
            Patient.objects.select_for_update().filter(pk=patient.pk).values_list("pk").get()
            clash = find_clash(patient=patient, start=start)
            if clash is not None:
                raise EpisodeConflict(clash_message(clash))
            episode = Episode.objects.create(
                patient=patient,
                start=start,
                consent_at=consent_at,
                consent_method=consent_method,
                billing_practitioner=practitioner,
                conditions=codes,
                created_by=user,
            )
            episode.devices.set(supplied)
    except IntegrityError as error:
        # episode_one_open: only a write that bypassed the lock could get here.
        raise EpisodeConflict("The patient has an open episode: end it first.") from error
    return episode


def find_clash(*, patient: Patient, start: date) -> Episode | None:
    """The patient's episode a new open one from `start` would contradict: an open one, or
    one running on or after `start`."""
    return (
        Episode.objects.filter(patient=patient)
        .filter(Q(end__isnull=True) | Q(end__gte=start))
        .order_by("start")
        .first()
    )


def clash_message(clash: Episode) -> str:
    if clash.end is None:
        return (
            f"The patient has an open episode (episode {clash.pk}, started "
            f"{clash.start.isoformat()}): end it first."
        )
    return (
        f"The episode would overlap episode {clash.pk} ({clash.start.isoformat()} to "
        f"{clash.end.isoformat()}): start it after {clash.end.isoformat()}."
    )


def end_reasons(*, episode: Episode, end: date, now: datetime | None = None) -> list[str]:
    """Why `end` cannot end the episode (empty when it can): before its start, after today
    (the patient's local day)."""
    today = local_today(episode.patient, now)
    if end < episode.start:
        return [f"Is before the episode's start ({episode.start.isoformat()})."]
    if end > today:
        return [
            f"Is after today ({today.isoformat()}, the patient's time zone): end an episode "
            "on the day monitoring stopped, not ahead of it."
        ]
    return []


def end_episode(*, episode: Episode, end: date, user, now: datetime | None = None) -> Episode:
    """Ends an open episode on `end` (inclusive, the patient's local day): not before its
    start, not after today. Ending it cannot make it overlap another (it only shortens it).

    Raises InvalidEpisode ({"end": …}) or EpisodeConflict (ended already).
    Writes: Episode.end and ended_by, the episode's row locked.
    """
    with transaction.atomic():
        locked = Episode.objects.select_related("patient").select_for_update(of=("self",))
        locked = locked.get(pk=episode.pk)
        if locked.end is not None:
            raise EpisodeConflict(f"The episode ended already, on {locked.end.isoformat()}.")
        reasons = end_reasons(episode=locked, end=end, now=now)
        if reasons:
            raise InvalidEpisode({"end": reasons})
        locked.end = end
        locked.ended_by = user
        locked.save(update_fields=["end", "ended_by"])
    return locked
