"""Retention per data class (monitoring.retention, docs/retention.md): nothing is deleted by
default; past a configured records policy, whole months of readings go (partitions dropped
on PostgreSQL), resolved alerts and old audit events go; raw CGM is replaced by hourly
summaries only where the clinic chose it, and exactly."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from alerts.models import Alert
from monitoring.ingest import NIGHTSCOUT, record_readings
from monitoring.models import AuditEvent, CgmHourlySummary, Reading, ReadingKey
from monitoring.partitions import create_month_partition, monthly_partitions
from monitoring.retention import apply_retention
from monitoring.tasks import apply_retention_task
from tests.factories import (
    AlertFactory,
    PatientFactory,
    ReadingFactory,
    ReadingItemFactory,
    SlotFactory,
)

NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


@pytest.fixture(autouse=True)
def _at_now(time_machine):
    time_machine.move_to(NOW, tick=False)


def audit_event(at: datetime, patient=None) -> AuditEvent:
    return AuditEvent.objects.create(
        at=at, actor="nurse", patient=patient, action="view", model="monitoring.patient",
        surface="api",
    )  # fmt: skip


def cgm(patient, at: datetime, value: float, **kwargs) -> Reading:
    return ReadingFactory(
        **{
            "patient": patient, "metric": "glucose", "value": value, "unit": "mg/dL",
            "measured_at": at, "source": "nightscout", "evaluated_at": at, **kwargs,
        }
    )  # fmt: skip


@pytest.mark.django_db
def test_by_default_nothing_is_deleted_or_replaced():
    # given: data of every class, years old
    patient = PatientFactory()
    old = NOW - 10 * YEAR
    reading = cgm(patient, old, 100)
    alert = AlertFactory(patient=patient, status="resolved", resolved_at=old)
    event = audit_event(old, patient)

    # when
    done = apply_retention_task.apply().get()

    # then
    assert done == {}
    assert Reading.objects.filter(pk=reading.pk).exists()
    assert Alert.objects.filter(pk=alert.pk).exists()
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert not CgmHourlySummary.objects.exists()


@pytest.mark.django_db
def test_readings_go_by_whole_months_past_retention_with_their_keys(settings):
    # given: keep readings 2 years; readings of Nov 2024 (past), Dec 2024 (its month not yet
    # wholly past: the cut-off is 2024-12-01), and 2001 (DEFAULT on PostgreSQL)
    settings.VIGIL_RETAIN_READINGS = 2 * YEAR
    patient = PatientFactory()
    for month in (datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC)):
        if connection.vendor == "postgresql":
            create_month_partition(month)
    past = ReadingFactory(patient=patient, measured_at=datetime(2024, 11, 30, 23, 0, tzinfo=UTC))
    ancient = ReadingFactory(patient=patient, measured_at=datetime(2001, 1, 1, tzinfo=UTC))
    kept = ReadingFactory(patient=patient, measured_at=datetime(2024, 12, 1, 0, 0, tzinfo=UTC))
    recent = ReadingFactory(patient=patient, measured_at=NOW - timedelta(days=1))
    slot = SlotFactory(schedule__patient=patient, status="done", fulfilled_by=past)

    # when
    done = apply_retention()
    again = apply_retention()

    # then
    assert set(Reading.objects.values_list("pk", flat=True)) == {kept.pk, recent.pk}
    assert set(ReadingKey.objects.values_list("reading_id", flat=True)) == {kept.pk, recent.pk}
    slot.refresh_from_db()
    assert slot.fulfilled_by_id is None
    if connection.vendor == "postgresql":
        assert done == {"reading_partitions_dropped": 1, "readings": 1, "cgm_summaries": 0}
        names = {partition.name for partition in monthly_partitions()}
        assert "monitoring_reading_2024_11" not in names
        assert "monitoring_reading_2024_12" in names
    else:
        assert done == {"reading_partitions_dropped": 0, "readings": 2, "cgm_summaries": 0}
    assert again == {"reading_partitions_dropped": 0, "readings": 0, "cgm_summaries": 0}
    assert ancient.pk not in set(Reading.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_raw_cgm_is_replaced_by_exact_hourly_summaries_only_when_chosen(settings):
    # given: replace raw CGM after 90 days; one old hour of three CGM readings, an
    # unevaluated old one, an old fingerstick (typed), and a recent CGM reading
    settings.VIGIL_CGM_RAW_REPLACED_AFTER = timedelta(days=90)
    patient = PatientFactory()
    hour = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
    replaced = [
        cgm(patient, hour + timedelta(minutes=m), v) for m, v in ((5, 90), (10, 120), (15, 150))
    ]
    waiting = cgm(patient, hour + timedelta(minutes=20), 200, evaluated_at=None)
    typed = ReadingFactory(
        patient=patient, metric="glucose", value=95, unit="mg/dL", measured_at=hour,
        evaluated_at=hour,
    )  # fmt: skip
    recent = cgm(patient, NOW - timedelta(days=1), 110)
    slot = SlotFactory(schedule__patient=patient, status="done", fulfilled_by=replaced[0])

    # when
    done = apply_retention()
    again = apply_retention()

    # then: one summary of exactly those three; the rest stays raw
    assert done == {"cgm_readings_replaced": 3}
    assert again == {"cgm_readings_replaced": 0}
    summary = CgmHourlySummary.objects.get()
    assert (summary.patient_id, summary.hour, summary.unit, summary.count) == (
        patient.pk, hour, "mg/dL", 3,
    )  # fmt: skip
    assert (summary.minimum, summary.maximum, summary.mean) == (90, 150, 120)
    assert summary.standard_deviation == pytest.approx(24.494897, abs=1e-6)
    assert set(Reading.objects.values_list("pk", flat=True)) == {waiting.pk, typed.pk, recent.pk}
    slot.refresh_from_db()
    assert slot.fulfilled_by_id is None
    # the keys stay: a late retry of a replaced reading is a duplicate, not counted again
    assert ReadingKey.objects.filter(patient=patient).count() == 6


@pytest.mark.django_db
def test_an_hour_replaced_in_two_runs_adds_up_exactly(settings):
    # given: an hour already summarised, then a late upload of the same hour
    settings.VIGIL_CGM_RAW_REPLACED_AFTER = timedelta(days=90)
    patient = PatientFactory()
    hour = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
    cgm(patient, hour + timedelta(minutes=5), 80)
    apply_retention()
    late = ReadingItemFactory(
        measured_at=(hour + timedelta(minutes=30)).isoformat(), value=160, unit="mg/dL"
    )
    record_readings(patient=patient, items=[late], channel=NIGHTSCOUT)
    Reading.objects.filter(patient=patient).update(evaluated_at=NOW)

    # when
    apply_retention()

    # then
    summary = CgmHourlySummary.objects.get()
    assert (summary.count, summary.minimum, summary.maximum, summary.mean) == (2, 80, 160, 120)
    assert not Reading.objects.filter(patient=patient).exists()
    # and re-sending the replaced reading is a duplicate: nothing stored, nothing counted
    result = record_readings(patient=patient, items=[late], channel=NIGHTSCOUT)
    assert result.as_dict()["duplicates"] == 1
    assert not Reading.objects.filter(patient=patient).exists()


@pytest.mark.django_db
def test_resolved_alerts_go_past_retention_open_ones_never(settings):
    settings.VIGIL_RETAIN_ALERTS = YEAR
    patient = PatientFactory()
    old = NOW - YEAR - timedelta(days=1)
    gone = AlertFactory(patient=patient, status="resolved", resolved_at=old)
    fresh = AlertFactory(patient=patient, status="resolved", resolved_at=NOW - timedelta(days=3))
    still_open = AlertFactory(patient=patient, status="open", first_triggered_at=old)

    done = apply_retention()

    assert done == {"alerts": 1}
    assert set(Alert.objects.values_list("pk", flat=True)) == {fresh.pk, still_open.pk}
    assert not Alert.objects.filter(pk=gone.pk).exists()


@pytest.mark.django_db
def test_audit_events_go_past_retention_and_only_those(settings):
    settings.VIGIL_RETAIN_AUDIT = 6 * YEAR
    audit_event(NOW - 6 * YEAR - timedelta(days=1))
    young = audit_event(NOW - timedelta(days=1))

    done = apply_retention()

    assert done == {"audit_events": 1}
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [young.pk]


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_audit_trigger_refuses_deleting_an_event_within_the_stated_cut_off():
    # given: an event of yesterday; a transaction states a cut-off of last year
    young = audit_event(NOW - timedelta(days=1))

    # when / then: the deletion of the young event is refused in PostgreSQL itself
    with (
        pytest.raises(DatabaseError, match="within retention"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT set_config('vigil.audit_retention_before', %s, true)",
            [(NOW - YEAR).isoformat()],
        )
        cursor.execute("DELETE FROM monitoring_auditevent WHERE id = %s", [young.pk])
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM monitoring_auditevent WHERE id = %s", [young.pk])
    assert AuditEvent.objects.filter(pk=young.pk).exists()
