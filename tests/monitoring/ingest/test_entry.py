"""How a reading was entered (docs/api.md, "Reading items: how the value was entered"):
`entry` defaults by the door the batch came in by, an item may say it, and only an
interface's own mapping may set internal fields such as a CGM's trend arrow."""

import pytest

from monitoring.auth import register_device
from monitoring.ingest import APP, DEVICE_KEY, FHIR, NIGHTSCOUT
from monitoring.models import Reading
from tests.factories import ReadingItemFactory
from tests.monitoring.ingest.helpers import errors_of, record


def stored(item) -> tuple:
    return Reading.objects.values_list("source", "entry").get(client_id=item["id"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        (APP, ("app", "manual")),
        (DEVICE_KEY, ("device", "device")),
        (FHIR, ("fhir", "device")),
        (NIGHTSCOUT, ("nightscout", "device")),
    ],
)
def test_an_item_that_does_not_say_gets_its_channels_entry(patient, channel, expected):
    item = ReadingItemFactory()

    record(patient, [item], channel=channel)

    assert stored(item) == expected


@pytest.mark.django_db
def test_a_device_keys_batch_is_a_device_entry_without_naming_the_channel(patient):
    device, _key = register_device(patient=patient, kind="glucometer", model="X", serial="G-1")
    item = ReadingItemFactory()

    record(patient, [item], device=device)

    assert stored(item) == ("device", "device")


@pytest.mark.django_db
def test_an_app_item_synced_from_a_device_says_so(patient):
    synced, typed = ReadingItemFactory(entry="device"), ReadingItemFactory(entry="manual")

    record(patient, [synced, typed])

    assert stored(synced) == ("app", "device")
    assert stored(typed) == ("app", "manual")


def test_an_unknown_entry_is_refused_by_name():
    assert errors_of(ReadingItemFactory(entry="automatic")) == {
        "entry": ["Must be one of: device, manual."]
    }
    assert errors_of(ReadingItemFactory(entry=1)) == {"entry": ["Must be one of: device, manual."]}


@pytest.mark.django_db
def test_a_client_cannot_set_the_trend_only_an_interface_mapping_can(patient):
    from_the_api = ReadingItemFactory(trend="Flat")
    from_nightscout = ReadingItemFactory(trend="SingleDown")

    rejected = record(patient, [from_the_api])
    record(patient, [from_nightscout], channel=NIGHTSCOUT)

    assert rejected.results[0].errors == {"trend": ["Not a field of a glucose reading."]}
    assert not Reading.objects.filter(client_id=from_the_api["id"]).exists()
    assert Reading.objects.get(client_id=from_nightscout["id"]).trend == "SingleDown"


@pytest.mark.django_db
def test_a_resend_that_differs_only_in_entry_is_a_duplicate_not_a_conflict(patient):
    item = ReadingItemFactory(entry="device")
    record(patient, [item])

    again = record(patient, [{**item, "entry": "manual"}])

    assert again.results[0].status == "duplicate"
    assert stored(item) == ("app", "device")
