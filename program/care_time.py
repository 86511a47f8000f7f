"""Care time: what a care-team member spent on one patient's treatment management, logged by
hand or by a start/stop timer, approved for billing.

The decisions (docs/api.md, "The RPM program"; README, "Care time"):

- One running timer per user, held by the partial unique index
  `time_entry_one_running_timer`: starting a second one is refused (TimerAlreadyRunning
  names the running one, which the pages offer to stop). Refused rather than stopping the
  first: stopping asks what was done (activity, interactive, note), which only the user can
  say, and a silent stop would file the first patient's time with none of it.
- A stopped timer counts the elapsed time rounded to the nearest whole minute (half a
  minute up), at least 1: rounding every entry up would inflate the month's total by up to a
  minute per entry, rounding down would lose the short calls.
- A timer left running past VIGIL_TIMER_CAP_MINUTES counts the cap, not the elapsed time,
  and is flagged `capped` for the approver: when stopped late, and by the periodic sweep
  (cap_forgotten_timers) that stops it on its own.
- Minutes of an entry are 1 to VIGIL_TIME_ENTRY_MAX_MINUTES; an entry does not start or end
  in the future (VIGIL_FUTURE_SKEW of clock skew allowed). Only a phone or video call is an
  interactive communication (CMS: real-time synchronous two-way audio, with or without
  video); a data review, a message or care planning is not.
- Its author changes an entry until it is approved; then nobody does. A running timer is
  stopped or discarded, not changed.
- Approval: the billing practitioner of the episode running on the entry's day (the
  patient's local day), or a physician of the patient's team (APPROVE_TIME). Nobody
  approves their own entry, except the billing practitioner: their own time is theirs to
  attest, and a team with one physician could not bill it otherwise.

The API's audit middleware and the admin record the changes they make; the sweep, which no
surface runs, records its own (actor SWEEP_ACTOR).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import CareTeamMembership
from alerts.teams import APPROVE_TIME, can
from config.celery import enqueue_on_commit
from monitoring.audit import record
from monitoring.models import AuditAction, Patient
from program.models import Activity, Episode, TimeEntry, TimeSource

NOTE_MAX_LENGTH = 4000
# Only these are a real-time interactive communication (the ledger's 99470/99457 need one).
INTERACTIVE_ACTIVITIES = frozenset({Activity.PHONE_CALL, Activity.VIDEO_CALL})
SWEEP_ACTOR = "system:timer-cap"
EDITABLE_FIELDS = ("started_at", "minutes", "activity", "interactive", "note")

APPROVE_REFUSAL = (
    "Only the episode's billing practitioner or a physician of the team may approve time."
)
OWN_ENTRY_REFUSAL = (
    "Nobody approves their own time entry, except the billing practitioner of the episode."
)


class InvalidTimeEntry(Exception):
    """An entry's fields were wrong; `errors` maps each field to its reasons."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


class TimerAlreadyRunning(Exception):
    """The user has a running timer (`running`; None if it stopped since) already."""

    def __init__(self, running: TimeEntry | None):
        super().__init__(running.pk if running is not None else None)
        self.running = running


class TimerNotRunning(Exception):
    """No such running timer of the user's (stopped already, capped by the sweep, gone)."""


class NotEditable(Exception):
    """The entry may not be changed, by this user or any longer (approved, running)."""


class ApprovalRefused(Exception):
    """The user may not approve this entry (their own, or not an approver of its patient)."""


class NotApprovable(Exception):
    """The entry cannot be approved: approved already, or a timer still running."""


def timer_cap() -> timedelta:
    return timedelta(minutes=settings.VIGIL_TIMER_CAP_MINUTES)


def entry_errors(
    *,
    started_at: datetime,
    minutes: int | None,
    activity: str,
    interactive: bool,
    note: str,
    now: datetime,
) -> dict[str, list[str]]:
    """The reasons an entry's fields are wrong (empty when they are right). `minutes` None:
    a running timer, which has none yet."""
    errors: dict[str, list[str]] = {}
    latest = now + settings.VIGIL_FUTURE_SKEW
    if started_at > latest:
        errors["started_at"] = ["Is in the future."]
    if minutes is not None:
        highest = settings.VIGIL_TIME_ENTRY_MAX_MINUTES
        if not 1 <= minutes <= highest:
            errors["minutes"] = [f"Between 1 and {highest} minutes."]
        elif "started_at" not in errors and started_at + timedelta(minutes=minutes) > latest:
            errors["minutes"] = ["Would end in the future: the time was spent from started_at."]
    if activity not in Activity.values:
        errors["activity"] = [f"One of: {', '.join(Activity.values)}."]
    elif interactive and activity not in INTERACTIVE_ACTIVITIES:
        errors["interactive"] = [
            "Only a phone or video call is a real-time interactive communication."
        ]
    if len(note) > NOTE_MAX_LENGTH:
        errors["note"] = [f"At most {NOTE_MAX_LENGTH} characters."]
    return errors


def _check(**fields) -> None:
    errors = entry_errors(**fields)
    if errors:
        raise InvalidTimeEntry(errors)


# --- Entered by hand ----------------------------------------------------------------------


def log_time(
    *,
    user,
    patient: Patient,
    started_at: datetime,
    minutes: int,
    activity: str,
    interactive: bool = False,
    note: str = "",
    alert=None,
    now: datetime | None = None,
) -> TimeEntry:
    """Logs time spent on the patient, entered by hand. Raises InvalidTimeEntry.
    Writes: one TimeEntry (source manual)."""
    now = now or timezone.now()
    _check(
        started_at=started_at,
        minutes=minutes,
        activity=activity,
        interactive=interactive,
        note=note,
        now=now,
    )
    return TimeEntry.objects.create(
        user=user,
        patient=patient,
        alert=alert,
        source=TimeSource.MANUAL,
        started_at=started_at,
        minutes=minutes,
        activity=activity,
        interactive=interactive,
        note=note,
    )


def change_time_entry(
    *, entry: TimeEntry, user, now: datetime | None = None, **changes
) -> tuple[TimeEntry, list[str]]:
    """Changes an entry's EDITABLE_FIELDS given in `changes`: its author only, until it is
    approved, and not a running timer. Returns the entry and the names of the fields that
    changed. Raises NotEditable or InvalidTimeEntry.
    Writes: the TimeEntry, its row locked (an approval waits, then sees the change)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    now = now or timezone.now()
    with transaction.atomic():
        locked = TimeEntry.objects.select_for_update().get(pk=entry.pk)
        if locked.user_id != user.pk:
            raise NotEditable("Only the author of a time entry may change it.")
        if locked.is_approved:
            raise NotEditable("The entry is approved: it may no longer be changed.")
        if locked.is_running:
            raise NotEditable("The timer is running: stop it first.")
        merged = {name: changes.get(name, getattr(locked, name)) for name in EDITABLE_FIELDS}
        _check(**merged, now=now)
        changed = [name for name in EDITABLE_FIELDS if merged[name] != getattr(locked, name)]
        for name in changed:
            setattr(locked, name, merged[name])
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
    return locked, changed


# --- The timer ----------------------------------------------------------------------------


def running_timer(user) -> TimeEntry | None:
    """The user's running timer, if any (the partial unique index serves the lookup)."""
    return (
        TimeEntry.objects.filter(user=user, source=TimeSource.TIMER, stopped_at__isnull=True)
        .select_related("patient")
        .first()
    )


def start_timer(*, user, patient: Patient, alert=None, now: datetime | None = None) -> TimeEntry:
    """Starts the user's timer on the patient (from an alert's page: that alert). Raises
    TimerAlreadyRunning when the user has one running: the database refuses the second
    (time_entry_one_running_timer), so two starts at once leave exactly one.
    Writes: one TimeEntry (source timer, no stopped_at, no minutes; activity data review
    until the stop says what it was)."""
    try:
        with transaction.atomic():
            return TimeEntry.objects.create(
                user=user,
                patient=patient,
                alert=alert,
                source=TimeSource.TIMER,
                started_at=now or timezone.now(),
                activity=Activity.DATA_REVIEW,
            )
    except IntegrityError as error:
        # The only unique key a new timer can break is the one running timer per user
        # (SQLite names the column, not the constraint: ask for the running one instead).
        running = running_timer(user)
        if running is None:
            raise
        raise TimerAlreadyRunning(running) from error


def elapsed_minutes(elapsed: timedelta) -> int:
    """Whole minutes, half a minute up, at least 1."""
    return max(1, int((elapsed.total_seconds() + 30) // 60))


def stop_timer(
    *,
    user,
    entry_id: int,
    activity: str,
    interactive: bool = False,
    note: str = "",
    now: datetime | None = None,
) -> TimeEntry:
    """Stops the user's running timer `entry_id` and says what the time was. Past the cap it
    counts VIGIL_TIMER_CAP_MINUTES and is flagged capped (stopped_at = start + cap).
    Raises TimerNotRunning (not the user's, stopped already, capped by the sweep) or
    InvalidTimeEntry. Writes: the TimeEntry, its row locked against the sweep."""
    now = now or timezone.now()
    with transaction.atomic():
        entry = (
            TimeEntry.objects.select_for_update()
            .filter(pk=entry_id, user=user, source=TimeSource.TIMER)
            .first()
        )
        if entry is None:
            raise TimerNotRunning("You have no such timer.")
        if entry.stopped_at is not None:
            raise TimerNotRunning(_stopped_already(entry))
        _check(
            started_at=entry.started_at,
            minutes=None,
            activity=activity,
            interactive=interactive,
            note=note,
            now=now,
        )
        elapsed = now - entry.started_at
        if elapsed > timer_cap():
            _cap(entry)
        else:
            entry.stopped_at = now
            entry.minutes = elapsed_minutes(elapsed)
        entry.activity, entry.interactive, entry.note = activity, interactive, note
        entry.save()
    return entry


def _stopped_already(entry: TimeEntry) -> str:
    if entry.capped:
        return (
            f"The timer was stopped already, capped at {entry.minutes} minutes: change the "
            "entry to say what the time was."
        )
    return "The timer was stopped already."


def _cap(entry: TimeEntry) -> None:
    cap = timer_cap()
    entry.stopped_at = entry.started_at + cap
    entry.minutes = settings.VIGIL_TIMER_CAP_MINUTES
    entry.capped = True


def discard_timer(*, user, entry_id: int) -> TimeEntry:
    """Discards the user's running timer `entry_id` (started by mistake): nothing is logged.
    Raises TimerNotRunning. Deletes: that TimeEntry. Returns the deleted entry (for the
    audit)."""
    with transaction.atomic():
        entry = (
            TimeEntry.objects.select_for_update()
            .filter(pk=entry_id, user=user, source=TimeSource.TIMER, stopped_at__isnull=True)
            .first()
        )
        if entry is None:
            raise TimerNotRunning("You have no such running timer.")
        pk = entry.pk
        entry.delete()
        entry.pk = pk
    return entry


def cap_forgotten_timers(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Stops every timer running longer than VIGIL_TIMER_CAP_MINUTES, at the cap, flagged
    capped: at most `limit` (VIGIL_SWEEP_BATCH) per run, the oldest first, and when the
    batch is full the sweep again after commit. Rows a stop holds are skipped (their stop
    decides). Returns how many were capped.
    Writes: those TimeEntry rows, and an AuditEvent for each (actor SWEEP_ACTOR)."""
    now = now or timezone.now()
    limit = limit or settings.VIGIL_SWEEP_BATCH
    with transaction.atomic():
        # The partial unique index on running timers (one per user) serves this: it holds
        # only the running ones.
        due = list(
            TimeEntry.objects.select_for_update(skip_locked=True)
            .filter(
                source=TimeSource.TIMER, stopped_at__isnull=True, started_at__lt=now - timer_cap()
            )
            .order_by("started_at", "pk")[:limit]
        )
        for entry in due:
            _cap(entry)
            entry.save(update_fields=["stopped_at", "minutes", "capped", "updated_at"])
            record(
                user=SWEEP_ACTOR,
                patient=entry.patient_id,
                action=AuditAction.CHANGE,
                what=entry,
                fields=["stopped_at", "minutes", "capped"],
            )
        if len(due) == limit:
            enqueue_on_commit("program.tasks.cap_forgotten_timers_task")
    return len(due)


# --- Approval -----------------------------------------------------------------------------


def entry_day(entry: TimeEntry, patient: Patient) -> date:
    """The patient's local calendar day the entry started on."""
    return entry.started_at.astimezone(patient.zone).date()


def episode_on(episodes: Iterable[Episode], day: date) -> Episode | None:
    """The episode (of those given, one patient's) running on `day`."""
    for episode in episodes:
        if episode.start <= day and (episode.end is None or day <= episode.end):
            return episode
    return None


def billing_practitioner_id(entry: TimeEntry, episodes: Iterable[Episode] | None = None):
    """The billing practitioner (user id) of the episode running on the entry's day, or None.
    `episodes`: the patient's, when the caller has them loaded (a page of entries)."""
    patient = entry.patient
    if episodes is None:
        episodes = Episode.objects.filter(patient_id=patient.pk).active_on(
            entry_day(entry, patient)
        )
    episode = episode_on(episodes, entry_day(entry, patient))
    return episode.billing_practitioner_id if episode is not None else None


def approval_refusal(*, user, entry: TimeEntry, episodes=None) -> str | None:
    """Why `user` may not approve `entry`, or None when they may (see the module's rules)."""
    team_id = entry.patient.care_team_id
    is_practitioner = (
        user.is_active
        and billing_practitioner_id(entry, episodes) == user.pk
        and CareTeamMembership.objects.filter(team_id=team_id, user_id=user.pk).exists()
    )
    if entry.user_id == user.pk and not is_practitioner:
        return OWN_ENTRY_REFUSAL
    if is_practitioner or can(user, APPROVE_TIME, team_id=team_id):
        return None
    return APPROVE_REFUSAL


def may_approve(*, user, entry: TimeEntry, episodes=None) -> bool:
    return approval_refusal(user=user, entry=entry, episodes=episodes) is None


def approve_time_entry(*, entry: TimeEntry, user, now: datetime | None = None) -> TimeEntry:
    """Approves the entry for billing. Raises ApprovalRefused (approval_refusal) or
    NotApprovable (approved already, or a timer still running).
    Writes: TimeEntry.approved_by/at, by a conditional UPDATE, so two approvers at once
    approve it once and an edit in progress is waited for."""
    refusal = approval_refusal(user=user, entry=entry)
    if refusal is not None:
        raise ApprovalRefused(refusal)
    now = now or timezone.now()
    claimed = TimeEntry.objects.filter(
        pk=entry.pk, approved_at__isnull=True, minutes__isnull=False
    ).update(approved_by=user, approved_at=now, updated_at=now)
    entry.refresh_from_db()
    if not claimed:
        if entry.is_approved:
            raise NotApprovable("The entry is approved already.")
        raise NotApprovable("The timer is running: it is approved once stopped.")
    return entry
