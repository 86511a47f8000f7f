from datetime import UTC, datetime, timedelta

import pytest

from monitoring.enrolment import enrol_patient
from monitoring.models import Protocol, Rule, RuleRevision
from monitoring.patient_rules import StaleRule, add_rule, apply_protocols, change_rule
from monitoring.protocols import protocol_templates
from monitoring.rules import InvalidParameters, is_scheduled
from tests.factories import PatientFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def rule_of(patient, key: str) -> Rule:
    return Rule.objects.get(patient=patient, key=key)


def revisions_of(rule: Rule) -> list[tuple]:
    return list(
        RuleRevision.objects.filter(rule=rule)
        .order_by("version")
        .values_list("version", "parameters", "severity", "active", "changed_by", "note")
    )


def expected_first_check(template):
    if template.kind == "missing_data":
        return NOW + timedelta(hours=template.parameters["silent_hours"])
    return NOW if is_scheduled(template.kind) else None


# --- Enrolment copies the protocol defaults -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", list(protocol_templates()))
def test_applying_a_protocol_gives_the_patient_their_own_copy_of_each_default(
    protocol, patient, clock
):
    templates = protocol_templates()[protocol]

    added = apply_protocols(patient=patient, codes=[protocol])

    assert added == len(templates)
    rules = {
        rule.key: (
            rule.kind, rule.metric, rule.severity, rule.group, rule.title, rule.parameters,
            rule.default_parameters, rule.reference, rule.source, rule.protocol.code,
            rule.version, rule.active, rule.next_check_at,
        )
        for rule in Rule.objects.filter(patient=patient).select_related("protocol")
    }  # fmt: skip
    assert rules == {
        t.key: (
            t.kind, t.metric, t.severity, t.group, t.title, t.parameters, t.parameters,
            t.reference, t.source, protocol, 1, True, expected_first_check(t),
        )
        for t in templates
    }  # fmt: skip
    assert sorted(
        RuleRevision.objects.filter(rule__patient=patient).values_list(
            "rule__key", "version", "parameters", "severity", "active", "note"
        )
    ) == sorted(
        (t.key, 1, t.parameters, t.severity, True, f"{protocol} protocol default")
        for t in templates
    )


@pytest.mark.django_db
def test_two_protocols_sharing_a_rule_give_the_patient_one_copy_of_it(team, clock):
    heart_failure = {t.key for t in protocol_templates()["heart_failure"]}
    hypertension = {t.key for t in protocol_templates()["hypertension"]}
    shared = heart_failure & hypertension
    assert {"hypotension", "dose_taking_rate_7_days"} <= shared

    patient = enrol_patient(
        external_id="MRN-HF-HTN",
        name="A. Patient",
        timezone="Europe/London",
        care_team=team,
        protocols=["heart_failure", "hypertension"],
    )

    keys = list(Rule.objects.filter(patient=patient).values_list("key", flat=True))
    assert sorted(keys) == sorted(heart_failure | hypertension)
    assert {key: rule_of(patient, key).protocol.code for key in shared} == {
        key: "heart_failure" for key in shared
    }
    assert RuleRevision.objects.filter(rule__patient=patient).count() == len(keys)


@pytest.mark.django_db
def test_applying_a_protocol_again_adds_nothing_and_keeps_what_clinicians_tailored(
    patient, physician, clock
):
    apply_protocols(patient=patient, codes=["heart_failure"])
    tailored = change_rule(
        rule=rule_of(patient, "hypotension"),
        user=physician,
        parameters={"conditions": [{"component": "systolic", "op": "lt", "value": 95}]},
    )

    added = apply_protocols(patient=patient, codes=["heart_failure", "hypertension"])

    hypertension_only = {t.key for t in protocol_templates()["hypertension"]} - {
        t.key for t in protocol_templates()["heart_failure"]
    }
    assert added == len(hypertension_only)
    hypotension = rule_of(patient, "hypotension")
    assert (hypotension.version, hypotension.parameters) == (2, tailored.parameters)
    assert [version for version, *_ in revisions_of(hypotension)] == [1, 2]
    assert apply_protocols(patient=patient, codes=["heart_failure", "hypertension"]) == 0


@pytest.mark.django_db
def test_each_patients_rules_are_their_own(team, physician, clock):
    first, second = PatientFactory.create_batch(2, care_team=team)
    apply_protocols(patient=first, codes=["diabetes"])
    apply_protocols(patient=second, codes=["diabetes"])

    change_rule(
        rule=rule_of(first, "hypoglycemia_level_1"),
        user=physician,
        parameters={"conditions": [{"op": "ge", "value": 54}, {"op": "lt", "value": 80}],
                    "match": "all"},
    )  # fmt: skip

    untouched = rule_of(second, "hypoglycemia_level_1")
    assert (untouched.version, untouched.parameters) == (1, untouched.default_parameters)


# --- Tailoring: every change is a version ---------------------------------------------------


@pytest.mark.django_db
def test_changing_a_rule_makes_a_new_version_with_its_revision(patient, physician, clock):
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = rule_of(patient, "hypoglycemia_level_1")
    default = rule.parameters
    tighter = {"conditions": [{"op": "ge", "value": 54}, {"op": "lt", "value": 80}], "match": "all"}

    changed = change_rule(
        rule=rule, user=physician, parameters=tighter, note="Hypoglycaemia unawareness"
    )

    stored = rule_of(patient, "hypoglycemia_level_1")
    assert (stored.version, stored.parameters, stored.default_parameters, stored.updated_by) == (
        2,
        tighter,
        default,
        physician,
    )
    assert changed.version == 2
    assert revisions_of(stored) == [
        (1, default, "warning", True, None, "diabetes protocol default"),
        (2, tighter, "warning", True, physician.pk, "Hypoglycaemia unawareness"),
    ]


@pytest.mark.django_db
def test_severity_and_switching_off_are_versions_too(patient, physician, clock):
    apply_protocols(patient=patient, codes=["copd"])
    rule = rule_of(patient, "fever")

    change_rule(rule=rule, user=physician, severity="critical")
    change_rule(rule=rule, user=physician, active=False, note="On antibiotics, reviewed daily")

    stored = rule_of(patient, "fever")
    assert (stored.version, stored.severity, stored.active) == (3, "critical", False)
    assert [(v, severity, active) for v, _, severity, active, *_ in revisions_of(stored)] == [
        (1, "warning", True),
        (2, "critical", True),
        (3, "critical", False),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "parameters", "errors"),
    [
        ("hypoglycemia_level_1", {"conditions": [{"op": "below", "value": "seventy"}]},
         {"conditions[0].op": ["Must be one of: lt, le, gt, ge."],
          "conditions[0].value": ["Must be a number."]}),
        ("bp_crisis", {"conditions": [{"component": "value", "op": "gt", "value": 180}]},
         {"conditions[0].component": ["Must be one of: systolic, diastolic."]}),
        ("hf_gain_1_day", {"window_days": 0, "delta": -1, "direction": "gain"},
         {"window_days": ["Must be at least 1."], "delta": ["Must be at least 0."]}),
        ("weight_missing", {"silent_hours": 36, "quiet": True},
         {"quiet": ["Not a parameter of this rule kind."]}),
        ("inr_ttr_rosendaal", {"target_low": 3.5, "target_high": 2.5, "max_gap_days": 56,
                               "window_days": 183, "below_percent": 65},
         {"target_high": ["Must be above target_low."]}),
        ("dose_taking_rate_7_days", [], {"parameters": ["Must be an object."],
                                         "mode": ["Must be one of: consecutive_missed, "
                                                  "taking_rate, unanswered_reminders."]}),
    ],
)  # fmt: skip
def test_invalid_parameters_are_rejected_per_parameter_and_change_nothing(
    key, parameters, errors, team, physician, clock
):
    patient = PatientFactory(care_team=team)
    apply_protocols(
        patient=patient, codes=["diabetes", "hypertension", "heart_failure", "anticoagulation"]
    )
    rule = rule_of(patient, key)

    with pytest.raises(InvalidParameters) as raised:
        change_rule(rule=rule, user=physician, parameters=parameters)

    assert raised.value.errors == errors
    stored = rule_of(patient, key)
    assert (stored.version, stored.parameters) == (1, stored.default_parameters)
    assert len(revisions_of(stored)) == 1


@pytest.mark.django_db
def test_a_clinicians_own_rule_starts_at_version_1(patient, physician, clock):
    parameters = {"conditions": [{"op": "gt", "value": 250}], "count": 3}

    rule = add_rule(
        patient=patient, key="glucose_high_3_in_a_row", kind="sustained", metric="glucose",
        severity="warning", group="glucose_high", title="High glucose 3 times in a row",
        parameters=parameters, user=physician, note="Steroid course",
    )  # fmt: skip

    assert (rule.version, rule.parameters, rule.next_check_at, rule.reference) == (
        1,
        parameters,
        None,
        "",
    )
    assert revisions_of(rule) == [(1, parameters, "warning", True, physician.pk, "Steroid course")]


@pytest.mark.django_db
def test_a_clinicians_own_rule_with_an_unknown_kind_is_rejected_and_not_stored(patient):
    with pytest.raises(InvalidParameters) as raised:
        add_rule(
            patient=patient, key="odd", kind="fuzzy", metric="glucose", severity="info",
            group="odd", title="Odd", parameters={},
        )  # fmt: skip

    assert list(raised.value.errors) == ["kind"]
    assert Rule.objects.filter(patient=patient).count() == 0


# --- Concurrency ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_enrolments_applying_protocols_at_once_copy_each_rule_once(
    team, clock, run_concurrently
):
    patient = PatientFactory(care_team=team)
    codes = ["heart_failure", "hypertension"]
    keys = {t.key for code in codes for t in protocol_templates()[code]}

    run_concurrently(*[lambda: apply_protocols(patient=patient, codes=codes)] * 2)

    assert sorted(Rule.objects.filter(patient=patient).values_list("key", flat=True)) == sorted(
        keys
    )
    assert sorted(
        RuleRevision.objects.filter(rule__patient=patient).values_list("rule__key", "version")
    ) == sorted((key, 1) for key in keys)


@pytest.mark.django_db(transaction=True)
def test_two_clinicians_changing_a_rule_at_once_both_get_a_version(
    team, physician, clock, run_concurrently
):
    patient = PatientFactory(care_team=team)
    apply_protocols(patient=patient, codes=["copd"])
    rule = rule_of(patient, "spo2_copd_warning")

    run_concurrently(
        lambda: change_rule(rule=rule, user=physician, severity="critical", note="first"),
        lambda: change_rule(rule=rule, user=physician, note="second"),
    )

    stored = rule_of(patient, "spo2_copd_warning")
    assert stored.version == 3
    assert [version for version, *_ in revisions_of(stored)] == [1, 2, 3]
    assert sorted(note for *_, note in revisions_of(stored)[1:]) == ["first", "second"]


@pytest.mark.django_db
def test_enrolment_works_even_when_the_protocol_rows_of_the_data_migration_are_gone(team):
    # A flushed database (as transactional tests leave it) has no Protocol rows.
    Protocol.objects.all().delete()

    patient = enrol_patient(
        external_id="MRN-FLUSHED", name="x", timezone="UTC", care_team=team, protocols=["copd"]
    )

    assert list(patient.protocols.values_list("code", flat=True)) == ["copd"]
    assert patient.rules.filter(protocol__code="copd").count() == len(protocol_templates()["copd"])


@pytest.mark.django_db
def test_new_values_of_a_scheduled_rule_are_checked_at_the_next_sweep(patient, physician, clock):
    # given: weight_missing (36 h) last checked a day ago, its deadline 35 h away
    apply_protocols(patient=patient, codes=["heart_failure"])
    rule = rule_of(patient, "weight_missing")
    Rule.objects.filter(pk=rule.pk).update(next_check_at=NOW + timedelta(hours=35))

    # when: the limit drops to 12 hours
    change_rule(rule=rule, user=physician, parameters={"silent_hours": 12})

    # then: due now, so the sweep sets the deadline the 12 hours imply
    assert rule_of(patient, "weight_missing").next_check_at == NOW


@pytest.mark.django_db
def test_a_new_severity_alone_keeps_the_deadline(patient, physician, clock):
    apply_protocols(patient=patient, codes=["heart_failure"])
    rule = rule_of(patient, "weight_missing")
    deadline = NOW + timedelta(hours=35)
    Rule.objects.filter(pk=rule.pk).update(next_check_at=deadline)

    change_rule(rule=rule, user=physician, severity="critical")

    assert rule_of(patient, "weight_missing").next_check_at == deadline


@pytest.mark.django_db(transaction=True)
def test_of_two_clinicians_saving_on_the_same_version_at_once_the_second_is_refused(
    team, run_concurrently
):
    # given: both opened version 1
    patient = PatientFactory(care_team=team)
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = rule_of(patient, "hypoglycemia_level_1")

    def save(severity):
        def change():
            try:
                return change_rule(rule=rule, severity=severity, expected_version=1).version
            except StaleRule as error:
                return f"stale at {error.current_version}"

        return change

    # when
    outcomes = run_concurrently(save("critical"), save("info"))

    # then: one saved version 2, the other was told so; nothing was overwritten unseen
    assert sorted(map(str, outcomes)) == ["2", "stale at 2"]
    stored = rule_of(patient, "hypoglycemia_level_1")
    assert stored.version == 2
    assert list(stored.revisions.values_list("version", flat=True)) == [1, 2]
