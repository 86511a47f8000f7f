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
