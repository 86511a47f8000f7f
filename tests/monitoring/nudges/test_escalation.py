"""Escalation of persistent non-response (monitoring/nudges/escalation.py). Slots are made
directly; time is frozen and passed explicitly."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from datetime import timedelta

import pytest

from alerts.lifecycle import resolve_alert
from alerts.models import Alert, AlertEvent
from monitoring.models import Nudge, Reading, Rule
from monitoring.nudges import handle_missed_slot
from monitoring.patient_rules import apply_protocols, change_rule
from tests.factories import (
    MedicationPlanFactory,
)
from tests.monitoring.nudges.helpers import (  # noqa: F401
    DEFAULTS,
    DELIVER,
    MISSED_DOSE_FLAG,
    MISSED_IN_A_ROW,
    ROUTE,
    clock,
    day_at_eight,
    dose,
    logged_dose,
    patient,
    published,
    schedule,
    weighing,
)

# --- Escalation ---------------------------------------------------------------------------


# The rails as conftest.py spells them out (a fixture these tests ask for by name).
pytestmark = pytest.mark.usefixtures("_rails")


def miss(slot):
    """What the reminder sweep does when the slot's window closes without an answer."""
    slot.status = "missed"
    slot.save()
    handle_missed_slot(slot=slot, now=slot.closes_at)


@pytest.fixture
def warfarin(patient):
    return MedicationPlanFactory(patient=patient, critical=True)


@pytest.mark.django_db
def test_two_consecutive_missed_critical_doses_raise_one_adherence_alert(
    patient, warfarin, django_capture_on_commit_callbacks
):
    # given: missed doses on 2 and 3 March; the patient has no adherence rule yet
    first, second = dose(warfarin, due=day_at_eight(2)), dose(warfarin, due=day_at_eight(3))

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        miss(first)
        assert Alert.objects.count() == 0
        miss(second)

    # then: one warning alert for the care team, through the reference's missed-dose rule,
    # given to the patient on demand
    alert = Alert.objects.get()
    rule = Rule.objects.get(patient=patient)
    assert (rule.key, rule.kind, rule.metric, rule.group, rule.severity) == (
        "doses_missed_consecutively",
        "adherence",
        "dose",
        "dose_missed",
        DEFAULTS[0]["severity"],
    )
    assert rule.parameters == {
        "mode": "consecutive_missed",
        "count": MISSED_IN_A_ROW,
        "medications": [],
    }
    assert rule.reference == f"{MISSED_DOSE_FLAG}.alert_defaults.0"
    assert rule.revisions.get().note == (
        "Given at the first missed dose of a critical plan (warfarin-5mg)."
    )
    assert (alert.rule, alert.dedupe_key, alert.kind, alert.severity, alert.status) == (
        rule,
        "dose_missed",
        "adherence",
        "warning",
        "open",
    )
    assert alert.title == "2 scheduled doses in a row of a medication marked critical are missed"
    assert alert.detail == (
        "Warfarin 5 mg: 2 consecutive scheduled doses not logged; last due 3 Mar 2026, 08:00 CET"
    )
    assert alert.occurrences == 1
    assert (alert.first_triggered_at, alert.last_triggered_at) == (
        first.closes_at,
        second.closes_at,
    )
    assert alert.values == {
        "plan_id": warfarin.pk,
        "medication": "warfarin-5mg",
        "missed": 2,
        "slot_ids": [first.pk, second.pk],
    }
    event = AlertEvent.objects.get()
    missed_nudges = list(Nudge.objects.order_by("created_at"))
    assert [n.purpose for n in missed_nudges] == ["dose_missed", "dose_missed"]
    assert published(callbacks) == [
        (DELIVER, (missed_nudges[0].pk,)),
        (DELIVER, (missed_nudges[1].pk,)),
        (ROUTE, (event.pk,)),
    ]


def missed_dose_alerts():
    """The patients' consecutive-missed-doses alerts (a protocol's taking-rate rule may raise
    its own alongside)."""
    return Alert.objects.filter(dedupe_key="dose_missed")


@pytest.mark.django_db
def test_a_protocol_rule_tailored_to_three_misses_waits_for_the_third(patient, warfarin, physician):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = Rule.objects.get(patient=patient, key="doses_missed_consecutively")
    change_rule(rule=rule, user=physician, parameters=rule.parameters | {"count": 3})
    slots = [dose(warfarin, due=day_at_eight(day)) for day in (2, 3, 4)]

    miss(slots[0])
    miss(slots[1])
    assert missed_dose_alerts().count() == 0

    miss(slots[2])
    alert = missed_dose_alerts().get()
    assert (alert.rule_id, alert.rule_version, alert.values["missed"]) == (rule.pk, 2, 3)
    assert Rule.objects.filter(patient=patient, kind="adherence").count() == 2  # no new rule


@pytest.mark.django_db
def test_a_deactivated_missed_dose_rule_stays_off(patient, warfarin, physician):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = Rule.objects.get(patient=patient, key="doses_missed_consecutively")
    change_rule(rule=rule, user=physician, active=False, note="Family gives the doses.")
    rules_before = set(Rule.objects.values_list("pk", "version"))

    for day in (2, 3, 4):
        miss(dose(warfarin, due=day_at_eight(day)))

    assert missed_dose_alerts().count() == 0
    assert set(Rule.objects.values_list("pk", "version")) == rules_before


@pytest.mark.django_db
def test_a_rule_listing_its_medications_watches_only_those(patient, physician):
    # given: the clinician watches the (non-critical) statin by name, not the insulin
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = Rule.objects.get(patient=patient, key="doses_missed_consecutively")
    watched = rule.parameters | {"medications": ["atorvastatin-20mg"]}
    change_rule(rule=rule, user=physician, parameters=watched)
    statin = MedicationPlanFactory(
        patient=patient, medication="atorvastatin-20mg", name="Atorvastatin", critical=False
    )
    insulin = MedicationPlanFactory(
        patient=patient, medication="insulin-glargine", name="Insulin glargine", critical=True
    )

    for day in (2, 3):
        miss(dose(insulin, due=day_at_eight(day)))
    assert missed_dose_alerts().count() == 0
    for day in (2, 3):
        miss(dose(statin, due=day_at_eight(day)))

    alert = missed_dose_alerts().get()
    assert (alert.rule_id, alert.values["medication"]) == (rule.pk, "atorvastatin-20mg")


@pytest.mark.django_db
def test_doses_never_logged_lower_the_taking_rate_without_any_reading(
    patient, warfarin, django_capture_on_commit_callbacks
):
    # given: a 7-day taking-rate rule (anticoagulation) and four doses taken on time
    apply_protocols(patient=patient, codes=["anticoagulation"])
    rule = Rule.objects.get(patient=patient, key="dose_taking_rate_7_days")
    for day in (2, 3, 4, 5):
        dose(warfarin, due=day_at_eight(day), status="done")

    # when: the next dose's window closes with nothing logged (4 of 5 = 80 %: not below)
    miss(dose(warfarin, due=day_at_eight(6)))
    assert Alert.objects.filter(dedupe_key="dose_adherence").count() == 0

    # and the one after (4 of 6)
    last = dose(warfarin, due=day_at_eight(7))
    miss(last)

    # then: the info alert, from the slots alone
    alert = Alert.objects.get(dedupe_key="dose_adherence")
    assert (alert.rule_id, alert.severity, alert.values) == (
        rule.pk,
        "info",
        {"taking_percent": 66.7, "doses": 6},
    )
    assert alert.detail == "4 of 6 doses taken in 7 days (67 %, below 80 %)"
    assert alert.last_triggered_at == last.closes_at
    assert Reading.objects.count() == 0


@pytest.mark.django_db
def test_doses_logged_as_skipped_count_against_the_taking_rate_when_their_window_closes(
    patient, warfarin
):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    for day in (2, 3, 4, 5):
        dose(warfarin, due=day_at_eight(day), status="done")
    skipped = [dose(warfarin, due=day_at_eight(day)) for day in (6, 7)]
    for slot in skipped:
        logged_dose(slot, "skipped")

    miss(skipped[0])  # 4 of 5: not below 80 %
    assert Alert.objects.count() == 0
    miss(skipped[1])  # 4 of 6

    alert = Alert.objects.get()
    assert (alert.dedupe_key, alert.values) == (
        "dose_adherence",
        {"taking_percent": 66.7, "doses": 6},
    )
    # skipping is an answer: no 'missed' message, no missed-dose alert
    assert Nudge.objects.count() == 0


@pytest.mark.django_db
def test_a_dose_taken_but_not_yet_evaluated_is_left_to_its_evaluation(patient, warfarin):
    apply_protocols(patient=patient, codes=["anticoagulation"])
    slot = dose(warfarin, due=day_at_eight(2))
    logged_dose(slot, "taken")

    miss(slot)

    # counted now it would be 0 of 1, below 80 %
    assert (Alert.objects.count(), Nudge.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_two_critical_plans_share_the_one_reference_rule_and_alert(patient, warfarin):
    insulin = MedicationPlanFactory(
        patient=patient, medication="insulin-glargine", name="Insulin glargine", critical=True
    )

    for day in (2, 3):
        miss(dose(warfarin, due=day_at_eight(day)))
        miss(dose(insulin, due=day_at_eight(day)))

    rule = Rule.objects.get(patient=patient)
    alert = Alert.objects.get()
    assert (rule.key, alert.rule_id, alert.occurrences) == (
        "doses_missed_consecutively",
        rule.pk,
        2,
    )


@pytest.mark.django_db
def test_further_misses_count_as_occurrences_of_the_same_alert(patient, warfarin):
    slots = [dose(warfarin, due=day_at_eight(day)) for day in (2, 3, 4, 5)]

    for slot in slots:
        miss(slot)

    alert = Alert.objects.get()
    assert alert.occurrences == 3
    assert alert.last_triggered_at == slots[-1].closes_at
    # the lifecycle keeps the title and detail of the first finding (same severity) and
    # the values of the latest
    assert alert.values["missed"] == 4
    assert alert.values["slot_ids"] == [slot.pk for slot in slots]
    assert AlertEvent.objects.count() == 1


@pytest.mark.django_db
def test_missed_doses_of_a_non_critical_medication_raise_no_alert(patient):
    statin = MedicationPlanFactory(
        patient=patient, medication="atorvastatin-20mg", name="Atorvastatin", critical=False
    )

    for day in (2, 3, 4):
        miss(dose(statin, due=day_at_eight(day)))

    assert Alert.objects.count() == 0
    assert Rule.objects.filter(patient=patient).count() == 0  # none given for it
    # the patient still got a supportive message after each miss
    assert list(Nudge.objects.values_list("purpose", flat=True)) == ["dose_missed"] * 3


@pytest.mark.django_db
def test_missed_measurements_escalate_too(patient, schedule):
    miss(weighing(patient, schedule=schedule, due=day_at_eight(2)))
    miss(weighing(patient, schedule=schedule, due=day_at_eight(3)))

    alert = Alert.objects.get()
    assert alert.rule.key == "reminders_unanswered_weight"
    assert alert.title == "2 weight reminders in a row go unanswered"
    assert alert.detail == (
        "Body weight: 2 consecutive measurements not logged; last due 3 Mar 2026, 08:00 CET"
    )


@pytest.mark.django_db
def test_a_done_slot_between_misses_restarts_the_count(patient, warfarin):
    miss(dose(warfarin, due=day_at_eight(2)))
    dose(warfarin, due=day_at_eight(3), status="done")
    miss(dose(warfarin, due=day_at_eight(4)))

    assert Alert.objects.count() == 0


@pytest.mark.django_db
def test_a_dose_logged_as_skipped_is_an_answer_not_silence(patient, warfarin):
    miss(dose(warfarin, due=day_at_eight(2)))
    skipped = dose(warfarin, due=day_at_eight(3))
    logged_dose(skipped, "skipped", after=timedelta(minutes=10))

    miss(skipped)

    assert Alert.objects.count() == 0
    assert Nudge.objects.filter(slot=skipped).count() == 0


@pytest.mark.django_db
def test_after_the_alert_is_resolved_it_takes_fresh_misses_to_raise_another(
    patient, warfarin, nurse, clock
):
    for day in (2, 3):
        miss(dose(warfarin, due=day_at_eight(day)))
    clock.move_to(day_at_eight(3) + timedelta(hours=4), tick=False)
    resolve_alert(alert=Alert.objects.get(), user=nurse, note="Called the patient.")

    miss(dose(warfarin, due=day_at_eight(4)))
    assert Alert.objects.filter(status="open").count() == 0

    miss(dose(warfarin, due=day_at_eight(5)))
    assert Alert.objects.filter(status="open").count() == 1
    assert Alert.objects.count() == 2


@pytest.mark.django_db
def test_a_missed_slot_that_was_answered_after_all_changes_nothing(patient, warfarin):
    # given: the dose was logged in time, the upload arrived after the window closed
    slot = dose(warfarin, due=day_at_eight(2))
    logged_dose(slot, "taken", after=timedelta(minutes=30))

    miss(slot)
    later = dose(warfarin, due=day_at_eight(3))
    miss(later)

    # no supportive message for it, and it breaks the run of misses
    assert Alert.objects.count() == 0
    assert [nudge.slot for nudge in Nudge.objects.all()] == [later]
