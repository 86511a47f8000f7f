"""Reading ingestion, storing (monitoring/ingest/store.py): record_readings and devices.

Plausibility limits come from monitoring.units.metric_units() (read from clinical.yaml), so
these tests follow the reference instead of restating it.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.auth import register_device, revoke_device
from monitoring.ingest import (
    COLUMNS,
)
from monitoring.models import Reading, ReadingSource
from tests.factories import PatientFactory, ReadingItemFactory
from tests.monitoring.ingest.helpers import CONFLICT_ERRORS, NOW, record, statuses

# --- record_readings: storing a batch ------------------------------------------------------


@pytest.mark.django_db
def test_valid_siblings_of_rejected_items_are_stored(patient):
    # given
    good_glucose = ReadingItemFactory(value=5.5, unit="mmol/L")
    bad_value = ReadingItemFactory(value="5.5")
    good_weight = ReadingItemFactory(type="weight", value=176.4, unit="lb")
    not_an_object = "glucose 5.5"

    # when
    result = record(patient, [good_glucose, bad_value, good_weight, not_an_object])

    # then
    assert result.as_dict() == {
        "created": 2,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 2,
        "results": [
            {"id": good_glucose["id"], "status": "created"},
            {
                "id": bad_value["id"],
                "status": "rejected",
                "errors": {"value": ["Must be a number."]},
            },
            {"id": good_weight["id"], "status": "created"},
            {
                "id": None,
                "status": "rejected",
                "errors": {"non_field_errors": ["Each reading must be a JSON object."]},
            },
        ],
    }
    assert sorted(Reading.objects.values_list("client_id", flat=True)) == sorted(
        [uuid.UUID(good_glucose["id"]), uuid.UUID(good_weight["id"])]
    )


@pytest.mark.django_db
def test_a_rejected_item_echoes_its_id_as_sent_when_it_is_not_a_uuid(patient):
    result = record(patient, [ReadingItemFactory(id="my-reading-1", value="x"), {"id": 7}])

    assert [item.id for item in result.results] == ["my-reading-1", None]
    assert Reading.objects.count() == 0


@pytest.mark.django_db
def test_a_stored_reading_holds_every_field_of_the_item(patient):
    # given
    item = ReadingItemFactory(
        value=5.5,
        unit="mmol/L",
        context="fasting",
        device="GM-7",
        measured_at="2026-03-01T07:30:00+05:30",
    )

    # when
    record(patient, [item])

    # then
    stored = Reading.objects.get()
    assert {
        "patient": stored.patient_id,
        "client_id": str(stored.client_id),
        "metric": stored.metric,
        "value": stored.value,
        "unit": stored.unit,
        "sent_value": stored.sent_value,
        "sent_unit": stored.sent_unit,
        "systolic": stored.systolic,
        "context": stored.context,
        "measured_at": stored.measured_at,
        "utc_offset_minutes": stored.utc_offset_minutes,
        "received_at": stored.received_at,
        "source": stored.source,
        "device": stored.device_id,
        "device_serial": stored.device_serial,
        "part_of": stored.part_of,
        "evaluated_at": stored.evaluated_at,
    } == {
        "patient": patient.pk,
        "client_id": item["id"],
        "metric": "glucose",
        "value": 99,
        "unit": "mg/dL",
        "sent_value": 5.5,
        "sent_unit": "mmol/L",
        "systolic": None,
        "context": "fasting",
        "measured_at": datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
        "utc_offset_minutes": 330,
        "received_at": NOW,
        "source": ReadingSource.APP,
        "device": None,
        "device_serial": "GM-7",
        "part_of": None,
        "evaluated_at": None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metric", "value", "unit", "stored_value", "stored_unit", "sent_unit"),
    [
        ("weight", 176.4, "lb", round(176.4 * 0.45359237, 6), "kg", "[lb_av]"),
        ("temperature", 100.4, "°F", 38.0, "Cel", "[degF]"),
        ("temperature", 37.2, "°C", 37.2, "Cel", "Cel"),
        ("inr", 2.4, "{INR}", 2.4, "{INR}", "{INR}"),
    ],
)
def test_a_converted_reading_is_stored_canonical_with_the_value_as_sent(
    patient, metric, value, unit, stored_value, stored_unit, sent_unit
):
    record(patient, [ReadingItemFactory(type=metric, value=value, unit=unit)])

    assert list(Reading.objects.values_list("value", "unit", "sent_value", "sent_unit")) == [
        (stored_value, stored_unit, value, sent_unit)
    ]


@pytest.mark.django_db
def test_a_dose_is_stored_with_its_medication_status_and_scheduled_time(patient):
    item = ReadingItemFactory(type="dose", status="taken")

    record(patient, [item])

    stored = Reading.objects.get()
    assert (stored.metric, stored.medication, stored.dose_status) == (
        "dose",
        "warfarin-5mg",
        "taken",
    )
    assert stored.scheduled_for == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert (stored.value, stored.sent_value, stored.unit) == (None, None, "")


@pytest.mark.django_db
def test_a_blood_pressure_with_pulse_also_stores_a_heart_rate_reading(patient):
    # given
    item = ReadingItemFactory(type="blood_pressure", systolic=142, diastolic=91, pulse=72)

    # when
    result = record(patient, [item])

    # then
    assert result.as_dict()["results"] == [{"id": item["id"], "status": "created"}]
    bp = Reading.objects.get(metric="blood_pressure")
    assert (bp.systolic, bp.diastolic, bp.value, bp.unit) == (142.0, 91.0, None, "mm[Hg]")
    heart_rate = Reading.objects.get(metric="heart_rate")
    assert (heart_rate.value, heart_rate.unit, heart_rate.sent_value, heart_rate.sent_unit) == (
        72.0,
        "/min",
        72.0,
        "/min",
    )
    assert heart_rate.part_of == uuid.UUID(item["id"])
    assert heart_rate.client_id != bp.client_id
    assert heart_rate.measured_at == bp.measured_at
    assert Reading.objects.count() == 2


@pytest.mark.django_db
def test_a_pulse_row_is_the_blood_pressures_time_device_and_fingerprint_and_nothing_else(patient):
    # given
    device, _ = register_device(patient=patient, kind="bp_monitor", model="C", serial="CUFF-1")
    item = ReadingItemFactory(
        type="blood_pressure", systolic=142, diastolic=91, pulse=72, device="CUFF-1"
    )

    # when
    record(patient, [item])

    # then
    bp = Reading.objects.get(metric="blood_pressure")
    heart_rate = Reading.objects.get(metric="heart_rate")
    shared = ("patient_id", "measured_at", "utc_offset_minutes", "received_at", "source",
              "device_id", "device_serial", "fingerprint")  # fmt: skip
    assert [getattr(heart_rate, name) for name in shared] == [getattr(bp, name) for name in shared]
    assert heart_rate.device_id == device.pk
    assert (heart_rate.systolic, heart_rate.diastolic, heart_rate.part_of) == (
        None,
        None,
        bp.client_id,
    )
    assert (heart_rate.context, heart_rate.medication, heart_rate.dose_status) == ("", "", "")
    assert heart_rate.scheduled_for is None and bp.part_of is None


def test_the_insert_writes_every_reading_column_but_the_key_and_the_evaluation_bookkeeping():
    columns = {field.column for field in Reading._meta.concrete_fields}
    bookkeeping = {"id", "evaluated_at", "evaluation_failed_at", "evaluation_error"}

    assert sorted(COLUMNS) == sorted(columns - bookkeeping)


@pytest.mark.django_db
def test_resending_a_blood_pressure_with_pulse_creates_nothing_new(patient):
    item = ReadingItemFactory(type="blood_pressure", pulse=72)
    record(patient, [item])

    result = record(patient, [item])

    assert statuses(result) == ["duplicate"]
    assert Reading.objects.count() == 2


@pytest.mark.django_db
def test_a_blood_pressure_without_pulse_stores_one_reading(patient):
    record(patient, [ReadingItemFactory(type="blood_pressure")])

    assert list(Reading.objects.values_list("metric", flat=True)) == ["blood_pressure"]


@pytest.mark.django_db
def test_a_conflicting_blood_pressure_with_a_pulse_stores_no_heart_rate(patient):
    # given: the reading is stored without a pulse
    item = ReadingItemFactory(type="blood_pressure")
    record(patient, [item])

    # when: the same id comes back with a pulse
    result = record(patient, [{**item, "pulse": 72}])

    # then: a conflict, and nothing of the conflicting content is stored
    assert statuses(result) == ["conflict"]
    assert list(Reading.objects.values_list("metric", flat=True)) == ["blood_pressure"]


@pytest.mark.django_db
def test_a_resent_item_is_a_duplicate_and_stored_once(patient):
    item = ReadingItemFactory()
    record(patient, [item])

    result = record(patient, [item])

    assert result.as_dict() == {
        "created": 0,
        "duplicates": 1,
        "conflicts": 0,
        "rejected": 0,
        "results": [{"id": item["id"], "status": "duplicate"}],
    }
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_a_resent_item_with_its_instant_in_another_offset_is_a_duplicate(patient):
    item = ReadingItemFactory(measured_at="2026-03-01T07:30:00+01:00")
    record(patient, [item])

    result = record(patient, [{**item, "measured_at": "2026-03-01T06:30:00Z"}])

    assert statuses(result) == ["duplicate"]
    assert Reading.objects.get().utc_offset_minutes == 60


@pytest.mark.django_db
def test_a_resent_item_with_another_spelling_of_its_id_and_unit_is_a_duplicate(patient):
    item = ReadingItemFactory(type="weight", value=176.4, unit="lb")
    record(patient, [item])

    result = record(patient, [{**item, "id": item["id"].upper(), "unit": "[lb_av]"}])

    assert statuses(result) == ["duplicate"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"value": 113},
        {"unit": "mmol/L", "value": 6.2},
        {"measured_at": "2026-03-01T07:31:00+01:00"},
        {"context": "fasting"},
        {"device": "GM-7"},
        {"type": "weight", "value": 81.5, "unit": "kg"},
    ],
)
def test_the_same_id_with_other_content_is_a_conflict_and_the_stored_reading_is_kept(
    patient, change
):
    # given
    item = ReadingItemFactory()
    record(patient, [item])
    before = Reading.objects.values().get()

    # when
    result = record(patient, [{**item, **change}], received_at=NOW + timedelta(hours=1))

    # then
    assert result.as_dict() == {
        "created": 0,
        "duplicates": 0,
        "conflicts": 1,
        "rejected": 0,
        "results": [{"id": item["id"], "status": "conflict", "errors": CONFLICT_ERRORS}],
    }
    assert Reading.objects.values().get() == before


@pytest.mark.django_db
def test_the_same_id_twice_in_one_batch_with_the_same_content_is_created_then_duplicate(patient):
    item = ReadingItemFactory()

    result = record(patient, [item, dict(item)])

    assert statuses(result) == ["created", "duplicate"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_the_same_id_twice_in_one_batch_with_other_content_is_created_then_conflict(patient):
    item = ReadingItemFactory(value=112)

    result = record(patient, [item, {**item, "value": 140}])

    assert [entry.as_dict() for entry in result.results] == [
        {"id": item["id"], "status": "created"},
        {"id": item["id"], "status": "conflict", "errors": CONFLICT_ERRORS},
    ]
    assert list(Reading.objects.values_list("value", flat=True)) == [112.0]


@pytest.mark.django_db
def test_an_already_stored_id_twice_in_one_batch_is_a_duplicate_both_times(patient):
    item = ReadingItemFactory()
    record(patient, [item])

    result = record(patient, [item, dict(item), {**item, "value": 140}])

    assert statuses(result) == ["duplicate", "duplicate", "conflict"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_a_rejected_first_copy_does_not_stop_a_valid_second_copy(patient):
    item = ReadingItemFactory()

    result = record(patient, [{**item, "value": "oops"}, item])

    assert statuses(result) == ["rejected", "created"]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_results_keep_the_order_of_the_request_and_counts_add_up(patient):
    # given: ids whose sort order differs from the request order (rows are inserted sorted)
    stored = ReadingItemFactory(id="ffffffff-0000-4000-8000-000000000000")
    record(patient, [stored])
    items = [
        ReadingItemFactory(id="cccccccc-0000-4000-8000-000000000000"),
        stored,
        ReadingItemFactory(id="aaaaaaaa-0000-4000-8000-000000000000", value=0),
        {**stored, "value": 99},
        ReadingItemFactory(id="bbbbbbbb-0000-4000-8000-000000000000", type="weight"),
    ]

    # when
    result = record(patient, items)

    # then
    data = result.as_dict()
    assert [(entry["id"], entry["status"]) for entry in data["results"]] == [
        ("cccccccc-0000-4000-8000-000000000000", "created"),
        ("ffffffff-0000-4000-8000-000000000000", "duplicate"),
        ("aaaaaaaa-0000-4000-8000-000000000000", "rejected"),
        ("ffffffff-0000-4000-8000-000000000000", "conflict"),
        ("bbbbbbbb-0000-4000-8000-000000000000", "created"),
    ]
    assert (data["created"], data["duplicates"], data["conflicts"], data["rejected"]) == (
        2,
        1,
        1,
        1,
    )
    assert Reading.objects.count() == 3


@pytest.mark.django_db
def test_a_batch_with_nothing_valid_stores_nothing(patient):
    result = record(patient, [ReadingItemFactory(value=None), 5, {}])

    assert statuses(result) == ["rejected", "rejected", "rejected"]
    assert Reading.objects.count() == 0


@pytest.mark.django_db
def test_the_idempotency_key_is_unique_per_patient_not_globally(patient, other_patient):
    item = ReadingItemFactory()

    mine = record(patient, [item])
    theirs = record(other_patient, [item])

    assert statuses(mine) == statuses(theirs) == ["created"]
    assert Reading.objects.filter(client_id=item["id"]).count() == 2


# --- devices -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_device_serial_the_patient_owns_links_the_reading_to_that_device(patient):
    device, _ = register_device(patient=patient, kind="glucose_meter", model="M", serial="GM-7")

    record(patient, [ReadingItemFactory(device="GM-7")])

    assert Reading.objects.values_list("device_id", "device_serial", "source").get() == (
        device.pk,
        "GM-7",
        ReadingSource.APP,
    )


@pytest.mark.django_db
def test_a_device_serial_of_another_patient_or_a_revoked_device_links_nothing(patient):
    register_device(patient=PatientFactory(), kind="glucose_meter", model="M", serial="GM-7")
    revoked, _ = register_device(patient=patient, kind="scale", model="S", serial="SC-9")
    revoke_device(device=revoked)

    record(patient, [ReadingItemFactory(device="GM-7"), ReadingItemFactory(device="SC-9")])

    assert sorted(Reading.objects.values_list("device_id", "device_serial")) == [
        (None, "GM-7"),
        (None, "SC-9"),
    ]


@pytest.mark.django_db
def test_a_reading_posted_with_a_device_key_belongs_to_that_device(patient):
    device, _ = register_device(patient=patient, kind="scale", model="Body+", serial="SC-1")

    record(patient, [ReadingItemFactory(type="weight", device="OTHER")], device=device)

    assert Reading.objects.values_list("device_id", "device_serial", "source").get() == (
        device.pk,
        "OTHER",
        ReadingSource.DEVICE,
    )


# --- One reading alone: the same row as in a batch ------------------------------------------

STORED_AS_SENT = (
    "metric",
    "value",
    "unit",
    "sent_value",
    "sent_unit",
    "systolic",
    "diastolic",
    "measured_at",
    "context",
    "medication",
    "dose_status",
    "scheduled_for",
    "entry",
    "source",
    "device_serial",
    "fingerprint",
)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "item",
    [
        {"type": "glucose", "value": 6.2, "unit": "mmol/L", "context": "fasting"},
        {"type": "weight", "value": 180.4, "unit": "[lb_av]"},
        {"type": "blood_pressure", "systolic": 141, "diastolic": 92},
        {"type": "temperature", "value": 100.4, "unit": "[degF]"},
        {"type": "inr", "value": 3.1},
        {"type": "spo2", "value": 91, "entry": "device"},
        {"type": "dose", "medication": "warfarin-5mg", "status": "skipped"},
    ],
    ids=lambda item: item["type"],
)
def test_a_reading_posted_alone_is_stored_as_the_same_reading_in_a_batch(team, item):
    # given: the same item, once alone (one row: the statement's single-row form) and once
    # beside another reading (the array form), for two patients
    alone, batched = PatientFactory(care_team=team), PatientFactory(care_team=team)
    sent = ReadingItemFactory(**item)

    # when
    record(alone, [sent])
    record(
        batched, [sent, ReadingItemFactory(type="heart_rate", measured_at="2026-03-01T09:00:00Z")]
    )

    # then: every column as sent and converted is the same
    first = Reading.objects.filter(patient=alone).values(*STORED_AS_SENT).get()
    second = (
        Reading.objects.filter(patient=batched, client_id=sent["id"]).values(*STORED_AS_SENT).get()
    )
    assert first == second
    assert str(Reading.objects.get(patient=alone).client_id) == sent["id"]
