import uuid
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts.models import CareTeam, CareTeamMembership, CareTeamRole
from monitoring.ingest import ValidReading
from monitoring.models import Patient, Reading, ReadingSource


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

    team = factory.SubFactory(CareTeamFactory)
    user = factory.SubFactory(UserFactory)
    role = CareTeamRole.NURSE
    escalation_level = 1


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


# --- Readings as a client posts them (API.md, POST /api/v1/readings ITEM) -----------------

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
