"""Properties of the alerting, over generated sequences of readings, and boundaries generated
from the clinical reference for every default threshold rule.

Hypothesis draws readings of every metric in every accepted unit and UTC offset, posts them
in batches of any size, in any order of measurement, evaluating after each batch as the
worker does, and then checks what must hold whatever the sequence:

- every reading beyond a critical limit of an active rule is covered by an unresolved
  critical alert of its problem (nothing is silenced here);
- no alert is marked cleared while the latest reading still meets one of its rules;
- an alert shows its worst reading, and carries the highest severity its readings met;
- every reading is evaluated.

The expectations are computed here from the rules' limits with plain comparisons, not with
the product's rule kinds.
"""

from __future__ import annotations

import operator
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts.models import Alert
from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from monitoring.ingest.store import ItemStatus
from monitoring.models import Reading, Rule
from monitoring.patient_rules import apply_protocols
from monitoring.problems import DIRECTIONS, direction_of, problem_table
from monitoring.protocols import protocol_templates
from monitoring.rules import KINDS, threshold
from monitoring.units import metric_units
from tests.factories import CareTeamFactory, PatientFactory

OPERATORS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
SIDE_OF_OP = {"lt": "low", "le": "low", "gt": "high", "ge": "high"}
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
# What a patient of each protocol measures, as the app sends it: (type, unit, low, high,
# decimals). Ranges lie inside the reference's plausible range and span every default limit.
MEASURED = {
    "diabetes": [
        ("glucose", "mg/dL", 20, 600, 1),
        ("glucose", "mmol/L", 1.2, 33.3, 1),
    ],
    "anticoagulation": [("inr", "", 0.5, 14, 2)],
    "copd": [
        ("spo2", "", 70, 100, 1),
        ("heart_rate", "", 30, 200, 0),
        ("temperature", "Cel", 33, 42, 1),
        ("temperature", "[degF]", 92, 107, 1),
    ],
    "hypertension": [("blood_pressure", "mmHg", 60, 240, 0)],
}
# UTC offsets clients send, from -12:00 to +14:00 in quarter hours.
OFFSETS = st.integers(min_value=-48, max_value=56).map(lambda quarters: quarters * 15)


def _item(measurement, value, diastolic, minutes_ago, offset, now):
    kind, unit, *_ = measurement
    zone = timezone(timedelta(minutes=offset))
    measured_at = (now - timedelta(minutes=minutes_ago)).astimezone(zone).isoformat()
    item = {"id": str(uuid.uuid4()), "type": kind, "measured_at": measured_at}
    if kind == "blood_pressure":
        item |= {"systolic": value, "diastolic": diastolic, "unit": unit}
    else:
        item |= {"value": value} | ({"unit": unit} if unit else {})
    return item


@st.composite
def reading_sequences(draw, protocol: str):
    """Readings of one protocol's metrics, measured within the last 20 hours at distinct
    minutes, split into upload batches; returned with the time they are measured against."""
    now = datetime.now(UTC).replace(microsecond=0)
    count = draw(st.integers(min_value=1, max_value=12))
    minutes = draw(
        st.lists(
            st.integers(min_value=1, max_value=20 * 60), min_size=count, max_size=count, unique=True
        )
    )
    items = []
    for minutes_ago in minutes:
        measurement = draw(st.sampled_from(MEASURED[protocol]))
        _, _, low, high, decimals = measurement
        value = round(draw(st.floats(min_value=low, max_value=high)), decimals)
        diastolic = None
        if measurement[0] == "blood_pressure":
            diastolic = draw(st.integers(min_value=35, max_value=min(140, int(value) - 10)))
        items.append(_item(measurement, value, diastolic, minutes_ago, draw(OFFSETS), now))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=count), max_size=3)))
    batches = [items[a:b] for a, b in zip([0, *cuts], [*cuts, count], strict=True) if a < b]
    return batches


# --- The oracle -----------------------------------------------------------------------------


def _conditions(rule: Rule) -> list[dict]:
    return rule.parameters.get("conditions", [])


def _matches(rule: Rule, reading: Reading) -> bool:
    results = [
        getattr(reading, c.get("component", "value")) is not None
        and OPERATORS[c["op"]](getattr(reading, c.get("component", "value")), c["value"])
        for c in _conditions(rule)
    ]
    return any(results) if rule.parameters.get("match", "any") == "any" else all(results)


def _group(rule: Rule, reading: Reading) -> str:
    """The alert group of a threshold rule's finding: a rule on both sides of a range sends
    each reading to its side's group (monitoring/problems.yaml)."""
    conditions = _conditions(rule)
    sides = {SIDE_OF_OP[c["op"]] for c in conditions}
    if rule.parameters.get("match", "any") == "any" and len(sides) == 2:
        side = next(
            SIDE_OF_OP[c["op"]]
            for c in conditions
            if OPERATORS[c["op"]](getattr(reading, c.get("component", "value")), c["value"])
        )
        return problem_table().two_sided[rule.group][side]
    return rule.group


def _threshold_only_groups(rules: list[Rule]) -> set[str]:
    """Groups fed only by threshold rules of one metric and no other group of its problem
    (so every finding folds into the group's one alert)."""
    kinds: dict[str, set[str]] = {}
    for rule in rules:
        for direction in DIRECTIONS:
            sides = problem_table().two_sided.get(rule.group)
            group = sides[direction] if sides else rule.group
            kinds.setdefault(group, set()).add(rule.kind)
    table = problem_table().problem_of_group
    return {
        group
        for group, seen in kinds.items()
        if seen == {"threshold"} and (group not in table or len(table[group].groups) == 1)
    }


def _post_and_evaluate(patient, batches) -> None:
    for batch in batches:
        result = record_readings(patient=patient, items=batch)
        assert result.created == len(batch), result.as_dict()
        evaluate_pending_readings(patient_id=patient.pk)


def _check_invariants(patient) -> None:
    rules = list(Rule.objects.filter(patient=patient, active=True, kind="threshold"))
    readings = list(Reading.objects.filter(patient=patient).order_by("measured_at", "id"))
    alerts = {a.dedupe_key: a for a in Alert.objects.filter(patient=patient)}
    assert all(reading.evaluated_at is not None for reading in readings)

    # Every reading beyond a critical limit is covered by a critical alert of its problem.
    for rule in rules:
        for reading in readings:
            critical = reading.metric == rule.metric and rule.severity == "critical"
            if critical and _matches(rule, reading):
                alert = alerts.get(_group(rule, reading))
                assert alert is not None, (rule.key, reading.value, reading.systolic)
                assert (alert.severity, alert.status) == ("critical", "open")

    # No alert is cleared while the latest reading of its metric still meets one of its rules.
    for alert in alerts.values():
        if alert.condition_cleared_at is None:
            continue
        latest = [r for r in readings if r.metric == alert.metric][-1]
        holding = [
            rule.key
            for rule in rules
            if rule.metric == alert.metric
            and _matches(rule, latest)
            and _group(rule, latest) == alert.dedupe_key
        ]
        assert holding == [], (alert.dedupe_key, latest.value, holding)

    # An alert shows its worst reading and the highest severity its readings met.
    for group in _threshold_only_groups(rules):
        met = [
            (rule, reading)
            for rule in rules
            for reading in readings
            if reading.metric == rule.metric
            and _matches(rule, reading)
            and _group(rule, reading) == group
        ]
        if not met:
            assert group not in alerts
            continue
        alert = alerts[group]
        assert alert.severity == max((rule.severity for rule, _ in met), key=SEVERITY_RANK.get)
        shown = alert.reading_ids[0]
        # The reading shown met a rule of the alert's own severity in this group...
        assert shown in {r.id for rule, r in met if rule.severity == alert.severity}
        if alert.metric != "blood_pressure":
            # ...and, of one value, is the most extreme of them (lowest for a low problem).
            sign = -1 if direction_of(group) == "low" else 1
            worst = max(sign * r.value for rule, r in met if rule.severity == alert.severity)
            assert shown in {r.id for _, r in met if sign * r.value == worst}


def _patient(protocol: str):
    team = CareTeamFactory()
    patient = PatientFactory(care_team=team, timezone="America/Los_Angeles")
    apply_protocols(patient=patient, codes=[protocol])
    return patient


# VIGIL_PROPERTY_EXAMPLES=200 ./scripts/test tests/monitoring/test_alerting_properties.py
# searches harder than CI has time for.
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=int(os.environ.get("VIGIL_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", sorted(MEASURED))
def test_alerting_invariants_hold_for_any_sequence_of_readings(protocol):
    @PROPERTY_SETTINGS
    @given(batches=reading_sequences(protocol))
    def check(batches):
        patient = _patient(protocol)
        _post_and_evaluate(patient, batches)
        _check_invariants(patient)

    check()


# --- Boundaries generated from the reference ------------------------------------------------


def _step(unit: str) -> float:
    """The smallest change a device reports in this unit (whole mg/dL, mmHg, %, /min)."""
    return 1 if unit in ("mg/dL", "mm[Hg]", "%", "/min") else 0.1


def _in_unit(metric: str, canonical: float, unit: str) -> float:
    spec = metric_units()[metric].units[unit]
    return round(canonical / spec.factor + spec.offset, 1)


def _distinct_units(metric: str) -> list[str]:
    """One spelling per conversion ('{INR}', '1' and 'INR' are one unit)."""
    seen, units = set(), []
    for code, unit in metric_units()[metric].units.items():
        if (unit.factor, unit.offset) not in seen:
            seen.add((unit.factor, unit.offset))
            units.append(code)
    return units


def _boundary_cases():
    cases = []
    for protocol, templates in protocol_templates().items():
        for template in templates:
            if template.kind != "threshold":
                continue
            units = _distinct_units(template.metric)
            for condition in template.parameters["conditions"]:
                for unit in units:
                    at = _in_unit(template.metric, condition["value"], unit)
                    for delta in (-_step(unit), 0, _step(unit)):
                        cases.append(
                            pytest.param(
                                protocol,
                                template.metric,
                                condition.get("component", "value"),
                                unit,
                                round(at + delta, 1),
                                id=f"{template.key} {condition['op']} {at}{delta:+} {unit}",
                            )
                        )
    return cases


def _reading_item(metric: str, component: str, unit: str, value: float) -> dict:
    measured_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    item = {"id": str(uuid.uuid4()), "type": metric, "measured_at": measured_at}
    if metric == "blood_pressure":
        # The other component stays in the middle of the normal range, so only one limit is
        # under test; a systolic under test keeps its diastolic below it, and vice versa.
        systolic, diastolic = (
            (value, min(70, value - 10))
            if component == "systolic"
            else (
                max(120, value + 10),
                value,
            )
        )
        return item | {"systolic": systolic, "diastolic": diastolic}
    return item | {"value": value, "unit": unit}


@pytest.mark.django_db
@pytest.mark.parametrize(("protocol", "metric", "component", "unit", "value"), _boundary_cases())
def test_a_reading_at_and_beside_every_default_limit_raises_exactly_what_the_rules_say(
    protocol, metric, component, unit, value
):
    # given
    patient = _patient(protocol)
    item = _reading_item(metric, component, unit, value)
    result = record_readings(patient=patient, items=[item])
    if result.count(
        ItemStatus.REJECTED
    ):  # beside a plausibility limit: rejected with a reason, nothing else
        assert (result.created, Reading.objects.filter(patient=patient).count()) == (0, 0)
        return

    # when
    evaluate_pending_readings(patient_id=patient.pk)

    # then: one alert per group the reading meets, at the highest severity met there
    reading = Reading.objects.get(patient=patient)
    expected: dict[str, str] = {}
    for rule in Rule.objects.filter(patient=patient, metric=metric, kind="threshold"):
        if _matches(rule, reading):
            group = _group(rule, reading)
            severity = max(expected.get(group, rule.severity), rule.severity, key=SEVERITY_RANK.get)
            expected[group] = severity
    raised = dict(Alert.objects.filter(patient=patient).values_list("dedupe_key", "severity"))
    assert raised == expected
    assert reading.measured_at > datetime.now(UTC) - settings.VIGIL_STALE_READING_AGE


# --- One failing reading --------------------------------------------------------------------

POISON = 123.4  # mg/dL: the glucose value whose evaluation this test makes raise


@pytest.mark.django_db
def test_one_reading_whose_evaluation_raises_never_leaves_another_unevaluated(monkeypatch):
    evaluate_threshold = threshold.evaluate

    def failing_on_poison(rule, context):
        if any(reading.value == POISON for reading in context.new):
            raise ZeroDivisionError("a bug met by one reading")
        return evaluate_threshold(rule, context)

    monkeypatch.setitem(KINDS, "threshold", replace(KINDS["threshold"], evaluate=failing_on_poison))

    @PROPERTY_SETTINGS
    @given(batches=reading_sequences("diabetes"), poisoned=st.integers(min_value=0))
    def check(batches, poisoned):
        items = [item for batch in batches for item in batch]
        victim = items[poisoned % len(items)]
        victim |= {"value": POISON, "unit": "mg/dL"}
        patient = _patient("diabetes")

        _post_and_evaluate(patient, batches)

        readings = Reading.objects.filter(patient=patient)
        assert list(
            readings.filter(evaluated_at__isnull=True).values_list("client_id", flat=True)
        ) == [uuid.UUID(victim["id"])]
        assert readings.get(client_id=victim["id"]).evaluation_failed_at is not None
        assert readings.filter(evaluation_failed_at__isnull=False).count() == 1
        # Every other reading beyond a critical limit still has its critical alert.
        for rule in Rule.objects.filter(patient=patient, kind="threshold", severity="critical"):
            for reading in readings.exclude(client_id=victim["id"]):
                if reading.metric == rule.metric and _matches(rule, reading):
                    alert = Alert.objects.get(patient=patient, dedupe_key=_group(rule, reading))
                    assert alert.severity == "critical"

    check()


# --- Batching changes nothing -----------------------------------------------------------------


def _alerts_after(protocol: str, batches) -> list[tuple]:
    patient = _patient(protocol)
    _post_and_evaluate(patient, batches)
    return sorted(
        Alert.objects.filter(patient=patient).values_list(
            "dedupe_key", "severity", "occurrences", "title", "values", "condition_cleared_at"
        )
    )


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", sorted(MEASURED))
def test_the_alerts_do_not_depend_on_how_readings_were_batched(protocol):
    @PROPERTY_SETTINGS
    @given(batches=reading_sequences(protocol))
    def check(batches):
        # Uploaded in the order measured, in the batches drawn, or all at once.
        readings = sorted(
            (item for batch in batches for item in batch),
            key=lambda item: datetime.fromisoformat(item["measured_at"]),
        )
        cuts = [0, *sorted({len(batch) for batch in batches if len(batch) < len(readings)})]
        split = [readings[a:b] for a, b in zip(cuts, [*cuts[1:], len(readings)], strict=True)]
        copies = [[{**item, "id": str(uuid.uuid4())} for item in readings]]

        assert _alerts_after(protocol, split) == _alerts_after(protocol, copies)

    check()


# Found by the property above (hypertension, 12 readings in three uploads): the warning
# measured before a crisis in the same upload was hidden by it in one upload and raised
# reading by reading. Inhibition follows measured order now (monitoring/evaluation/outcomes.py).
DAY_OF_READINGS = [
    ("05T06:47", 123), ("05T15:17", 176), ("05T15:22", 91), ("05T18:11", 163),
    ("05T22:01", 60), ("05T22:12", 219), ("05T23:02", 60), ("05T23:39", 60),
    ("06T00:21", 60), ("06T00:32", 60), ("06T01:40", 60), ("06T02:18", 60),
]  # fmt: skip


def _day_of_readings() -> list[dict]:
    return [
        {
            "id": str(uuid.uuid4()),
            "type": "blood_pressure",
            "measured_at": f"2026-12-{at}:00+00:00",
            "systolic": systolic,
            "diastolic": 35,
            "unit": "mmHg",
        }
        for at, systolic in DAY_OF_READINGS
    ]


@pytest.mark.django_db
def test_a_warning_measured_before_a_crisis_in_one_upload_is_raised_as_reading_by_reading(
    time_machine,
):
    time_machine.move_to(datetime(2026, 12, 6, 2, 20, tzinfo=UTC), tick=False)
    readings = _day_of_readings()

    in_three_uploads = _alerts_after("hypertension", [readings[0:4], readings[4:8], readings[8:]])
    in_one_upload = _alerts_after("hypertension", [_day_of_readings()])

    assert in_one_upload == in_three_uploads
    assert [(key, severity, occurrences) for key, severity, occurrences, *_ in in_one_upload] == [
        ("bp_average", "warning", 2),
        ("bp_high", "critical", 1),
        ("bp_low", "critical", 12),
    ]
