import uuid
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts.models import CareTeam, CareTeamMembership, CareTeamRole
from alerts.teams import sync_role_groups
from monitoring.ingest import ValidReading
from monitoring.models import Entry, Patient, Reading, ReadingKey, ReadingSource


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CareTeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CareTeam

    name = factory.Sequence(lambda n: f"Care team {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CareTeamMembership
        skip_postgeneration_save = True  # the hook below writes groups, not the membership

    team = factory.SubFactory(CareTeamFactory)
    user = factory.SubFactory(UserFactory)
    role = CareTeamRole.NURSE
    escalation_level = 1

    @factory.post_generation
    def _role_groups(obj, create, extracted, **kwargs):
        # As every product path that writes a membership does: the user's role groups
        # (their admin permissions) follow their roles.
        if create:
            sync_role_groups(users=[obj.user])


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    external_id = factory.Sequence(lambda n: f"MRN-{n:06d}")
    name = factory.Faker("name")
    timezone = "Europe/Berlin"
    care_team = factory.SubFactory(CareTeamFactory)


class ReadingFactory(factory.django.DjangoModelFactory):
    """A stored weight reading unless told otherwise."""

    class Meta:
        model = Reading
        skip_postgeneration_save = True

    patient = factory.SubFactory(PatientFactory)
    client_id = factory.LazyFunction(uuid.uuid4)
    metric = "weight"
    value = 80.0
    unit = "kg"
    sent_value = factory.LazyAttribute(lambda o: o.value)
    sent_unit = factory.LazyAttribute(lambda o: o.unit)
    measured_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    received_at = factory.LazyFunction(timezone.now)
    source = ReadingSource.APP
    entry = factory.LazyAttribute(
        lambda o: Entry.MANUAL if o.source == ReadingSource.APP else Entry.DEVICE
    )
    fingerprint = factory.LazyAttribute(
        lambda o: ValidReading(
            client_id=o.client_id,
            metric=o.metric,
            measured_at=o.measured_at,
            utc_offset_minutes=0,
            value=o.value,
            sent_value=o.sent_value,
            sent_unit=o.sent_unit,
        ).compute_fingerprint()
    )

    @factory.post_generation
    def key(reading, create, extracted, **kwargs):
        """A stored reading has its idempotency key, as ingest writes them together."""
        if create:
            ReadingKey.objects.create(
                patient_id=reading.patient_id,
                client_id=reading.client_id,
                reading_id=reading.pk,
                measured_at=reading.measured_at,
                fingerprint=reading.fingerprint,
            )


# --- Readings as a client posts them (docs/api.md, POST /api/v1/readings ITEM) ------------

# A plausible, valid item of each type; measured before the tests' frozen clock (2026-03-01).
READING_ITEM_DEFAULTS = {
    "glucose": {"value": 112, "unit": "mg/dL"},
    "blood_pressure": {"systolic": 128, "diastolic": 82},
    "weight": {"value": 81.5, "unit": "kg"},
    "inr": {"value": 2.4},
    "heart_rate": {"value": 64},
    "spo2": {"value": 97},
    "temperature": {"value": 36.8, "unit": "Cel"},
    "dose": {
        "medication": "warfarin-5mg",
        "status": "taken",
        "scheduled_for": "2026-03-01T08:00:00+01:00",
    },
}


class ReadingItemFactory(factory.DictFactory):
    """One ITEM dict: glucose unless `type=` says otherwise; keyword overrides win.

    ReadingItemFactory(type="blood_pressure", pulse=72) -> that type's valid defaults + pulse.
    """

    id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    type = "glucose"
    measured_at = "2026-03-01T07:30:00+01:00"

    @classmethod
    def _adjust_kwargs(cls, **kwargs):
        return READING_ITEM_DEFAULTS.get(kwargs["type"], {}) | kwargs


# --- Rules and alerts ---------------------------------------------------------------------


class RuleFactory(factory.django.DjangoModelFactory):
    """A patient's own glucose threshold rule (below 70 mg/dL, warning) unless told otherwise."""

    class Meta:
        model = "monitoring.Rule"

    patient = factory.SubFactory(PatientFactory)
    key = factory.Sequence(lambda n: f"glucose_low_{n}")
    kind = "threshold"
    metric = "glucose"
    severity = "warning"
    group = factory.LazyAttribute(lambda o: o.key)
    title = "Low glucose"
    parameters = factory.LazyFunction(
        lambda: {"conditions": [{"component": "value", "op": "lt", "value": 70}], "match": "any"}
    )


class AlertFactory(factory.django.DjangoModelFactory):
    """An open alert of its rule's group, as alerts.lifecycle.raise_alert would store it."""

    class Meta:
        model = "alerts.Alert"

    patient = factory.SubFactory(PatientFactory)
    rule = factory.SubFactory(RuleFactory, patient=factory.SelfAttribute("..patient"))
    dedupe_key = factory.LazyAttribute(lambda o: o.rule.group)
    metric = factory.LazyAttribute(lambda o: o.rule.metric)
    kind = factory.LazyAttribute(lambda o: o.rule.kind)
    severity = factory.LazyAttribute(lambda o: o.rule.severity)
    title = factory.LazyAttribute(lambda o: o.rule.title)
    detail = "62 mg/dL at 2026-03-01 07:30 CET; rule: < 70 mg/dL"
    first_triggered_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5))
    last_triggered_at = factory.LazyAttribute(lambda o: o.first_triggered_at)
    rule_version = factory.LazyAttribute(lambda o: o.rule.version)
    rule_parameters = factory.LazyAttribute(lambda o: o.rule.parameters)


class AlertEventFactory(factory.django.DjangoModelFactory):
    """An alert's "raised" event, not yet routed, as raise_alert writes it."""

    class Meta:
        model = "alerts.AlertEvent"

    alert = factory.SubFactory(AlertFactory)
    kind = "raised"
    at = factory.LazyFunction(timezone.now)
    data = factory.LazyAttribute(lambda o: {"severity": o.alert.severity, "rule_version": 1})


# --- Nudges and push tokens ---------------------------------------------------------------


class NudgeFactory(factory.django.DjangoModelFactory):
    """A pending in-app nudge as nudge_patient stores it, minus the slot and the variant."""

    class Meta:
        model = "monitoring.Nudge"

    patient = factory.SubFactory(PatientFactory)
    purpose = "measurement_due"
    channel = "in_app"
    text = "Time to step on the scale: your weight helps your care team spot fluid early."
    created_at = factory.LazyFunction(timezone.now)


class PushTokenFactory(factory.django.DjangoModelFactory):
    """An active FCM registration token of one of the patient's app installs."""

    class Meta:
        model = "monitoring.PushToken"

    patient = factory.SubFactory(PatientFactory)
    token = factory.Sequence(lambda n: f"fcm-registration-token-{n}:APA91bHun4MxP5egoKMwt2KZFBaFUH")
    platform = "android"


# --- Schedules, slots and nudge variants ---------------------------------------------------


class MeasurementScheduleFactory(factory.django.DjangoModelFactory):
    """A daily weighing at 08:00 local with a two-hour window unless told otherwise."""

    class Meta:
        model = "monitoring.MeasurementSchedule"

    patient = factory.SubFactory(PatientFactory)
    key = factory.Sequence(lambda n: f"weight_daily_{n}")
    metric = "weight"
    times = factory.LazyFunction(lambda: ["08:00"])
    window_minutes = 120


class MedicationPlanFactory(factory.django.DjangoModelFactory):
    """A critical daily warfarin dose at 08:00 local with a two-hour window."""

    class Meta:
        model = "monitoring.MedicationPlan"

    patient = factory.SubFactory(PatientFactory)
    medication = "warfarin-5mg"
    name = "Warfarin 5 mg"
    dose_times = factory.LazyFunction(lambda: ["08:00"])
    window_minutes = 120
    critical = True


class SlotFactory(factory.django.DjangoModelFactory):
    """An open slot of a new measurement schedule, or of `plan=` when given, due now and
    closing after the schedule's (or plan's) window."""

    class Meta:
        model = "monitoring.Slot"

    plan = None
    schedule = factory.Maybe(
        "plan", yes_declaration=None, no_declaration=factory.SubFactory(MeasurementScheduleFactory)
    )
    patient = factory.LazyAttribute(lambda o: (o.plan or o.schedule).patient)
    due_at = factory.LazyFunction(timezone.now)
    closes_at = factory.LazyAttribute(
        lambda o: o.due_at + timedelta(minutes=(o.plan or o.schedule).window_minutes)
    )
    status = "open"


class NudgeVariantFactory(factory.django.DjangoModelFactory):
    """An active English plain reminder for measurements and doses unless told otherwise."""

    class Meta:
        model = "monitoring.NudgeVariant"

    key = factory.Sequence(lambda n: f"variant-{n}")
    kind = "plain"
    purposes = factory.LazyFunction(lambda: ["measurement_due", "dose_due"])
    language = "en"
    text = "Reminder: {what} is due at {time}."
