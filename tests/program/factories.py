"""factory_boy factories of the program's records (program/models.py), for every program test.

The people are members of the patient's care team unless given: an episode's billing
practitioner is a physician of it, a time entry's author a nurse of it, a review's reviewer
and a note's author a nurse of it. Times are relative to the (frozen or real) clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import factory
from django.utils import timezone

from alerts.models import CareTeamRole
from program.models import (
    Activity,
    ConsentMethod,
    Episode,
    NoteKind,
    PatientNote,
    Review,
    TimeEntry,
    TimeSource,
)
from tests.factories import MembershipFactory, PatientFactory


def member_of(patient, role: str = CareTeamRole.NURSE):
    """A new user holding `role` in the patient's care team."""
    return MembershipFactory(team=patient.care_team, role=role).user


class EpisodeFactory(factory.django.DjangoModelFactory):
    """An open episode started 14 days ago (UTC date), consented in writing that morning,
    billed by a physician of the patient's team, for hypertension (I10)."""

    class Meta:
        model = Episode
        skip_postgeneration_save = True

    patient = factory.SubFactory(PatientFactory)
    start = factory.LazyFunction(lambda: timezone.now().date() - timedelta(days=14))
    end = None
    consent_at = factory.LazyAttribute(lambda o: datetime.combine(o.start, time(9), tzinfo=UTC))
    consent_method = ConsentMethod.WRITTEN
    billing_practitioner = factory.LazyAttribute(
        lambda o: member_of(o.patient, CareTeamRole.PHYSICIAN)
    )
    conditions = factory.LazyFunction(lambda: ["I10"])

    @factory.post_generation
    def devices(episode, create, extracted, **kwargs):
        """EpisodeFactory(devices=[device, …]): the devices supplied."""
        if create and extracted:
            episode.devices.set(extracted)


class TimeEntryFactory(factory.django.DjangoModelFactory):
    """Ten minutes of data review by a nurse of the patient's team, entered by hand, started
    two hours ago, not approved. `interactive=True` makes it a phone call; traits:
    `running=True` (a running timer), `approved=True` (approved by a physician of the team)."""

    class Meta:
        model = TimeEntry

    class Params:
        running = factory.Trait(source=TimeSource.TIMER, minutes=None, stopped_at=None)
        approved = factory.Trait(
            approved_by=factory.LazyAttribute(
                lambda o: member_of(o.patient, CareTeamRole.PHYSICIAN)
            ),
            approved_at=factory.LazyAttribute(lambda o: o.started_at + timedelta(hours=1)),
        )

    user = factory.LazyAttribute(lambda o: member_of(o.patient))
    patient = factory.SubFactory(PatientFactory)
    source = TimeSource.MANUAL
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=2))
    minutes = 10
    interactive = False
    activity = factory.LazyAttribute(
        lambda o: Activity.PHONE_CALL if o.interactive else Activity.DATA_REVIEW
    )
    note = ""


class ReviewFactory(factory.django.DjangoModelFactory):
    """A "reviewed" sign-off by a nurse of the patient's team, now."""

    class Meta:
        model = Review

    patient = factory.SubFactory(PatientFactory)
    reviewer = factory.LazyAttribute(lambda o: member_of(o.patient))
    at = factory.LazyFunction(timezone.now)
    note = ""


class PatientNoteFactory(factory.django.DjangoModelFactory):
    """A note on the patient by a nurse of the patient's team, now; `kind="call"` with a
    `call_outcome` for the call log."""

    class Meta:
        model = PatientNote

    patient = factory.SubFactory(PatientFactory)
    author = factory.LazyAttribute(lambda o: member_of(o.patient))
    at = factory.LazyFunction(timezone.now)
    kind = NoteKind.NOTE
    call_outcome = ""
    text = "Feels well; no dizziness since the dose change."
