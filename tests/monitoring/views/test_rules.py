"""GET / POST /api/v1/patients/{id}/rules, PATCH /api/v1/patients/{id}/rules/{rule_id}.

Every staff member of the patient's team reads the rules, with the protocol default each
started from and where that value came from; only the team's physicians add or tailor them.
A wrong parameter is a 400 naming it under errors.parameters. A change is a new version
with its RuleRevision. Another team's patient is a 404; nothing changes on any refusal.
"""

from __future__ import annotations

import pytest

from monitoring.models import Rule
from monitoring.patient_rules import apply_protocols
from tests.factories import MembershipFactory, PatientFactory, RuleFactory, UserFactory

pytestmark = pytest.mark.django_db

NOT_FOUND = {"detail": "Not found."}
NEEDS_STAFF = {"detail": "This endpoint needs a staff token."}
PHYSICIANS_ONLY = {"detail": "Only the patient's physicians may change rules."}
LOW_GLUCOSE = {"conditions": [{"component": "value", "op": "lt", "value": 70}], "match": "any"}


def rules_url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/rules"


def rule_url(patient, rule) -> str:
    return f"/api/v1/patients/{patient.pk}/rules/{rule.pk}"


@pytest.fixture
def physician_client(physician, staff_client):
    return staff_client(physician)


@pytest.fixture
def glucose_rule(patient):
    return RuleFactory(
        patient=patient, key="glucose_low", group="glucose_low", parameters=LOW_GLUCOSE
    )


def new_rule(**overrides) -> dict:
    return {
        "key": "weight_gain_2kg_3d",
        "kind": "rate_of_change",
        "metric": "weight",
        "severity": "warning",
        "group": "weight_gain",
        "title": "Weight gain over 3 days",
        "parameters": {"window_days": 3, "delta": 2.0, "direction": "gain", "op": "gt"},
        "note": "ESC self-care advice",
    } | overrides


def errors(response) -> dict:
    assert response.status_code == 400, response.content
    assert response.json()["detail"] == "Invalid input."
    return response.json()["errors"]


def rules_and_revisions() -> list[tuple]:
    """Every rule as stored, with its revisions: what a refused request must leave alone."""
    return [
        (
            rule.pk,
            rule.key,
            rule.kind,
            rule.severity,
            rule.parameters,
            rule.active,
            rule.title,
            rule.version,
            list(rule.revisions.values_list("version", "parameters", "severity", "note")),
        )
        for rule in Rule.objects.order_by("pk")
    ]


# --- GET ----------------------------------------------------------------------------------


def test_the_rules_show_the_protocol_default_and_its_source(nurse_client, patient):
    # given
    apply_protocols(patient=patient, codes=["heart_failure"])
    severe = Rule.objects.get(patient=patient, key="hypotension_severe_default")

    # when
    response = nurse_client.get(rules_url(patient))

    # then: ordered by metric, then key
    assert response.status_code == 200
    body = response.json()
    assert [(rule["metric"], rule["key"]) for rule in body] == [
        ("blood_pressure", "hypotension"),
        ("blood_pressure", "hypotension_severe_default"),
        ("dose", "dose_taking_rate_7_days"),
        ("weight", "hf_gain_1_day"),
        ("weight", "hf_gain_1_week"),
        ("weight", "hf_loss_possible_overdiuresis"),
        ("weight", "weight_missing"),
    ]
    assert body[1] == {
        "id": severe.pk,
        "key": "hypotension_severe_default",
        "protocol": "heart_failure",
        "kind": "threshold",
        "metric": "blood_pressure",
        "severity": "critical",
        "group": "bp_low",
        "title": "Severe low blood pressure",
        "parameters": {
            "conditions": [{"component": "systolic", "op": "lt", "value": 80}],
            "match": "any",
        },
        "default_parameters": {
            "conditions": [{"component": "systolic", "op": "lt", "value": 80}],
            "match": "any",
        },
        "reference": "blood_pressure.thresholds.hypotension_severe_default",
        "source": "engineering_choice: news2_2017",
        "active": True,
        "version": 1,
        "updated_at": severe.updated_at.isoformat(),
    }
    assert body[6]["reference"] == ""
    assert body[6]["source"].startswith("engineering_choice: Daily weighing")


def test_a_tailored_rule_shows_its_own_value_beside_the_default(physician_client, patient):
    apply_protocols(patient=patient, codes=["heart_failure"])
    rule = Rule.objects.get(patient=patient, key="hf_gain_1_day")
    tailored = {"window_days": 1, "delta": 1.5, "direction": "gain", "op": "gt"}
    physician_client.patch(rule_url(patient, rule), {"parameters": tailored}, format="json")

    body = {r["key"]: r for r in physician_client.get(rules_url(patient)).json()}

    assert body["hf_gain_1_day"]["parameters"] == tailored
    assert body["hf_gain_1_day"]["default_parameters"] == {
        "window_days": 1,
        "delta": 0.9,
        "direction": "gain",
        "op": "gt",
    }
    assert body["hf_gain_1_day"]["version"] == 2


def test_a_patient_without_rules_has_an_empty_list(nurse_client, patient):
    response = nurse_client.get(rules_url(patient))

    assert (response.status_code, response.json()) == (200, [])


def test_another_teams_patients_rules_are_a_404(outsider_client, patient, glucose_rule):
    theirs = outsider_client.get(rules_url(patient))
    missing = outsider_client.get("/api/v1/patients/999999/rules")

    assert (theirs.status_code, theirs.json()) == (404, NOT_FOUND)
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND)


def test_a_patient_token_may_not_read_rules(patient_client, patient, glucose_rule):
    response = patient_client.get(rules_url(patient))

    assert (response.status_code, response.json()) == (403, NEEDS_STAFF)


# --- POST ---------------------------------------------------------------------------------


def test_a_physician_adds_a_rule_as_version_one_with_its_revision(
    physician_client, physician, patient
):
    # when
    response = physician_client.post(rules_url(patient), new_rule(), format="json")

    # then
    assert response.status_code == 201
    rule = Rule.objects.get(patient=patient, key="weight_gain_2kg_3d")
    assert response.json() == {
        "id": rule.pk,
        "key": "weight_gain_2kg_3d",
        "protocol": None,
        "kind": "rate_of_change",
        "metric": "weight",
        "severity": "warning",
        "group": "weight_gain",
        "title": "Weight gain over 3 days",
        "parameters": {"window_days": 3, "delta": 2.0, "direction": "gain", "op": "gt"},
        "default_parameters": None,
        "reference": "",
        "source": "",
        "active": True,
        "version": 1,
        "updated_at": rule.updated_at.isoformat(),
    }
    assert rule.updated_by == physician
    assert list(
        rule.revisions.values_list(
            "version", "parameters", "severity", "active", "changed_by", "note"
        )
    ) == [
        (
            1,
            {"window_days": 3, "delta": 2.0, "direction": "gain", "op": "gt"},
            "warning",
            True,
            physician.pk,
            "ESC self-care advice",
        )
    ]


def test_a_rule_without_a_group_is_its_own_group(physician_client, patient):
    body = new_rule()
    del body["group"]

    response = physician_client.post(rules_url(patient), body, format="json")

    assert response.status_code == 201
    assert response.json()["group"] == "weight_gain_2kg_3d"


def test_a_scheduled_rule_gets_its_first_check(physician_client, patient, time_machine):
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    body = new_rule(
        key="cgm_silent", kind="missing_data", metric="glucose", parameters={"silent_hours": 3}
    )

    response = physician_client.post(rules_url(patient), body, format="json")

    assert response.status_code == 201
    assert Rule.objects.get(key="cgm_silent").next_check_at == now + timedelta(hours=3)


@pytest.mark.parametrize(
    ("kind", "metric", "parameters", "reasons"),
    [
        pytest.param(
            "threshold", "glucose",
            {"conditions": [{"op": "below", "value": 70}]},
            {"conditions[0].op": ["Must be one of: lt, le, gt, ge."]},
            id="threshold-operator",
        ),
        pytest.param(
            "threshold", "glucose",
            {"conditions": [{"op": "lt", "value": "seventy"}]},
            {"conditions[0].value": ["Must be a number."]},
            id="threshold-value",
        ),
        pytest.param(
            "threshold", "blood_pressure",
            {"conditions": [{"component": "value", "op": "gt", "value": 180}]},
            {"conditions[0].component": ["Must be one of: systolic, diastolic."]},
            id="threshold-bp-component",
        ),
        pytest.param(
            "threshold", "glucose",
            {"conditions": [], "match": "some"},
            {
                "conditions": ["Must be a non-empty list of {component, op, value}."],
            },
            id="threshold-no-conditions",
        ),
        pytest.param(
            "threshold", "glucose",
            {"conditions": [{"op": "lt", "value": 70}], "match": "some", "window_days": 3},
            {
                "match": ["Must be 'any' or 'all'."],
                "window_days": ["Not a parameter of this rule kind."],
            },
            id="threshold-every-wrong-one-at-once",
        ),
        pytest.param(
            "threshold", "glucose",
            [{"op": "lt", "value": 70}],
            {
                "parameters": ["Must be an object."],
                "conditions": ["Must be a non-empty list of {component, op, value}."],
            },
            id="not-an-object",
        ),
        pytest.param(
            "sustained", "glucose",
            {"conditions": [{"op": "gt", "value": 250}], "count": 3, "duration_minutes": 60},
            {"count": ["Give either 'count' or 'duration_minutes', not both."]},
            id="sustained-both",
        ),
        pytest.param(
            "sustained", "glucose",
            {"conditions": [{"op": "gt", "value": 250}], "count": 1},
            {"count": ["Must be at least 2."]},
            id="sustained-count",
        ),
        pytest.param(
            "count_in_window", "inr",
            {"conditions": [{"op": "le", "value": 1.5}], "count": 2.5},
            {"count": ["Must be a whole number."], "within_days": ["This parameter is required."]},
            id="count-in-window",
        ),
        pytest.param(
            "rate_of_change", "weight",
            {"window_days": 1, "delta": -0.9, "direction": "up"},
            {"delta": ["Must be at least 0."], "direction": ["Must be one of: gain, loss."]},
            id="rate-of-change",
        ),
        pytest.param(
            "average", "blood_pressure",
            {"conditions": [{"component": "systolic", "op": "ge", "value": 135}],
             "window_days": 7, "min_readings": 0},
            {"min_readings": ["Must be at least 1."]},
            id="average",
        ),
        pytest.param(
            "missing_data", "weight",
            {"silent_hours": "36"},
            {"silent_hours": ["Must be a number."]},
            id="missing-data",
        ),
        pytest.param(
            "adherence", "dose", {"mode": "sometimes"},
            {"mode": ["Must be one of: consecutive_missed, taking_rate, unanswered_reminders."]},
            id="adherence-mode",
        ),
        pytest.param(
            "adherence", "dose",
            {"mode": "consecutive_missed", "count": 2, "medications": "warfarin-5mg"},
            {"medications": ["Must be a list of medication ids."]},
            id="adherence-medications",
        ),
        pytest.param(
            "cgm_summary", "glucose",
            {"measure": "cv", "target": {"op": "above", "value": 36}, "window_days": 14,
             "min_days": 10, "min_percent_active": 70, "sensor_interval_minutes": 5},
            {"target": ["Must be {op: lt|le|gt|ge, value: number}."]},
            id="cgm-summary",
        ),
        pytest.param(
            "inr_ttr", "inr",
            {"target_low": 3.0, "target_high": 2.0, "max_gap_days": 56, "window_days": 180,
             "below_percent": 65},
            {"target_high": ["Must be above target_low."]},
            id="inr-ttr",
        ),
    ],
)  # fmt: skip
def test_a_wrong_parameter_is_a_400_naming_it_and_nothing_is_added(
    physician_client, patient, glucose_rule, kind, metric, parameters, reasons
):
    before = rules_and_revisions()

    response = physician_client.post(
        rules_url(patient),
        new_rule(key="new_rule", kind=kind, metric=metric, parameters=parameters),
        format="json",
    )

    assert errors(response) == {"parameters": reasons}
    assert rules_and_revisions() == before


@pytest.mark.parametrize(
    ("overrides", "reasons"),
    [
        ({"kind": "banana"}, {"kind": ['"banana" is not a valid choice.']}),
        ({"metric": "mood"}, {"metric": ['"mood" is not a valid choice.']}),
        ({"severity": "urgent"}, {"severity": ['"urgent" is not a valid choice.']}),
        ({"title": ""}, {"title": ["This field may not be blank."]}),
        ({"parameters": None}, {"parameters": ["This field may not be null."]}),
    ],
)
def test_a_wrong_field_is_a_400_naming_it(physician_client, patient, overrides, reasons):
    response = physician_client.post(rules_url(patient), new_rule(**overrides), format="json")

    assert errors(response) == reasons
    assert Rule.objects.count() == 0


def test_missing_fields_are_each_named(physician_client, patient):
    response = physician_client.post(rules_url(patient), {}, format="json")

    assert set(errors(response)) == {"key", "kind", "metric", "severity", "title", "parameters"}
    assert Rule.objects.count() == 0


@pytest.mark.parametrize(
    "parameters",
    [
        {"conditions": [{"op": "lt", "value": 70, "comment": "nul \u0000 inside"}]},
        {"conditions": [{"op": "lt", "value": 70}], "match": "any", "\u0000": 1},
    ],
    ids=["in-a-string", "in-a-key"],
)
def test_a_null_character_in_the_parameters_is_a_400_not_a_500(
    physician_client, patient, parameters
):
    # PostgreSQL's jsonb cannot hold U+0000: stored as is, the insert fails (a 500).
    response = physician_client.post(
        rules_url(patient), new_rule(kind="threshold", metric="glucose", parameters=parameters),
        format="json",
    )  # fmt: skip

    assert errors(response) == {"parameters": {"parameters": ["Null characters are not allowed."]}}
    assert Rule.objects.count() == 0


def test_a_null_character_in_a_medication_id_is_a_400_not_a_500(physician_client, patient):
    parameters = {"mode": "consecutive_missed", "count": 2, "medications": ["warfarin\u0000"]}

    response = physician_client.post(
        rules_url(patient), new_rule(kind="adherence", metric="dose", parameters=parameters),
        format="json",
    )  # fmt: skip

    assert errors(response) == {"parameters": {"parameters": ["Null characters are not allowed."]}}
    assert Rule.objects.count() == 0


def test_a_key_the_patient_already_has_is_a_400_and_the_rule_is_kept(
    physician_client, patient, glucose_rule
):
    before = rules_and_revisions()

    response = physician_client.post(rules_url(patient), new_rule(key="glucose_low"), format="json")

    assert errors(response) == {"key": ["The patient already has a rule with this key."]}
    assert rules_and_revisions() == before


def test_another_patient_may_have_the_same_key(physician_client, patient, team):
    RuleFactory(patient=PatientFactory(care_team=team), key="weight_gain_2kg_3d")

    response = physician_client.post(rules_url(patient), new_rule(), format="json")

    assert response.status_code == 201


def test_a_nurse_may_not_add_a_rule(nurse_client, patient, glucose_rule):
    before = rules_and_revisions()

    response = nurse_client.post(rules_url(patient), new_rule(), format="json")

    assert (response.status_code, response.json()) == (403, PHYSICIANS_ONLY)
    assert rules_and_revisions() == before


def test_a_nurse_learns_nothing_from_an_invalid_body(nurse_client, patient):
    response = nurse_client.post(rules_url(patient), {"kind": "banana"}, format="json")

    assert (response.status_code, response.json()) == (403, PHYSICIANS_ONLY)


def test_a_physician_of_another_team_gets_a_404(staff_client, other_team, patient, glucose_rule):
    stranger = MembershipFactory(
        team=other_team, user=UserFactory(username="dr.elsewhere"), role="physician"
    ).user
    before = rules_and_revisions()

    response = staff_client(stranger).post(rules_url(patient), new_rule(), format="json")

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert rules_and_revisions() == before


def test_a_patient_token_may_not_add_a_rule(patient_client, patient):
    response = patient_client.post(rules_url(patient), new_rule(), format="json")

    assert (response.status_code, response.json()) == (403, NEEDS_STAFF)
    assert Rule.objects.count() == 0


def test_a_superuser_may_add_a_rule(superuser, staff_client, other_patient):
    response = staff_client(superuser).post(rules_url(other_patient), new_rule(), format="json")

    assert response.status_code == 201


# --- PATCH --------------------------------------------------------------------------------


def test_tailoring_a_rule_makes_a_new_version_with_its_revision(
    physician_client, physician, patient
):
    # given: the protocol's copy, version 1
    apply_protocols(patient=patient, codes=["diabetes"])
    rule = Rule.objects.get(patient=patient, key="hypoglycemia_level_1")
    tailored = {"conditions": [{"component": "value", "op": "lt", "value": 80}], "match": "all"}

    # when
    response = physician_client.patch(
        rule_url(patient, rule),
        {"parameters": tailored, "note": "Hypoglycaemia unawareness: alert earlier"},
        format="json",
    )

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["version"], body["parameters"]) == (rule.pk, 2, tailored)
    assert body["default_parameters"] == rule.default_parameters
    fresh = Rule.objects.get(pk=rule.pk)
    assert (fresh.version, fresh.parameters, fresh.updated_by) == (2, tailored, physician)
    assert list(
        fresh.revisions.values_list("version", "parameters", "severity", "changed_by", "note")
    ) == [
        (1, rule.parameters, "warning", None, "diabetes protocol default"),
        (2, tailored, "warning", physician.pk, "Hypoglycaemia unawareness: alert earlier"),
    ]


@pytest.mark.parametrize(
    ("change", "column", "value"),
    [
        ({"severity": "critical"}, "severity", "critical"),
        ({"active": False}, "active", False),
        ({"title": "Hypo (tailored)"}, "title", "Hypo (tailored)"),
    ],
)
def test_any_change_makes_a_new_version(
    physician_client, patient, glucose_rule, change, column, value
):
    response = physician_client.patch(rule_url(patient, glucose_rule), change, format="json")

    assert response.status_code == 200
    fresh = Rule.objects.get(pk=glucose_rule.pk)
    assert (getattr(fresh, column), fresh.version, fresh.parameters) == (value, 2, LOW_GLUCOSE)
    assert list(fresh.revisions.values_list("version", flat=True)) == [2]


def test_each_change_counts_one_version(physician_client, patient, glucose_rule):
    physician_client.patch(rule_url(patient, glucose_rule), {"severity": "critical"}, format="json")
    physician_client.patch(rule_url(patient, glucose_rule), {"active": False}, format="json")

    fresh = Rule.objects.get(pk=glucose_rule.pk)
    assert (fresh.version, fresh.severity, fresh.active) == (3, "critical", False)
    assert list(fresh.revisions.values_list("version", "severity", "active")) == [
        (2, "critical", True),
        (3, "critical", False),
    ]


def test_a_change_made_on_the_current_version_is_saved(physician_client, patient, glucose_rule):
    response = physician_client.patch(
        rule_url(patient, glucose_rule), {"severity": "critical", "version": 1}, format="json"
    )

    assert (response.status_code, response.json()["version"]) == (200, 2)


def test_a_change_made_on_an_older_version_is_a_409_and_nothing_changes(
    physician_client, patient, glucose_rule
):
    # given: a colleague saved version 2 after this client read version 1
    physician_client.patch(rule_url(patient, glucose_rule), {"active": False}, format="json")
    before = rules_and_revisions()

    # when
    response = physician_client.patch(
        rule_url(patient, glucose_rule), {"severity": "critical", "version": 1}, format="json"
    )

    # then
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The rule changed since that version.",
        "errors": {
            "version": ["The rule is at version 2 now; reload it and make the change again."]
        },
    }
    assert rules_and_revisions() == before


NOTHING_TO_CHANGE = "Change at least one of parameters, severity, active, title."
AT_LEAST_1 = "Ensure this value is greater than or equal to 1."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"version": 1}, {"non_field_errors": [NOTHING_TO_CHANGE]}),
        ({"severity": "critical", "version": 0}, {"version": [AT_LEAST_1]}),
        ({"severity": "critical", "version": "two"}, {"version": ["A valid integer is required."]}),
    ],
)
def test_a_version_alone_or_not_a_version_number_is_a_400(
    physician_client, patient, glucose_rule, body, expected
):
    before = rules_and_revisions()

    response = physician_client.patch(rule_url(patient, glucose_rule), body, format="json")

    assert errors(response) == expected
    assert rules_and_revisions() == before


def test_a_wrong_parameter_in_a_change_is_a_400_naming_it_and_nothing_changes(
    physician_client, patient, glucose_rule
):
    before = rules_and_revisions()

    response = physician_client.patch(
        rule_url(patient, glucose_rule),
        {"parameters": {"conditions": [{"op": "lt", "value": 70}], "count": 3}},
        format="json",
    )

    assert errors(response) == {"parameters": {"count": ["Not a parameter of this rule kind."]}}
    assert rules_and_revisions() == before


def test_a_change_that_changes_nothing_is_a_400(physician_client, patient, glucose_rule):
    before = rules_and_revisions()

    response = physician_client.patch(
        rule_url(patient, glucose_rule), {"note": "just a note"}, format="json"
    )

    assert errors(response) == {
        "non_field_errors": ["Change at least one of parameters, severity, active, title."]
    }
    assert rules_and_revisions() == before


def test_a_nurse_may_not_change_a_rule(nurse_client, patient, glucose_rule):
    before = rules_and_revisions()

    response = nurse_client.patch(
        rule_url(patient, glucose_rule), {"severity": "info"}, format="json"
    )

    assert (response.status_code, response.json()) == (403, PHYSICIANS_ONLY)
    assert rules_and_revisions() == before


def test_another_teams_rule_is_a_404_and_unchanged(outsider_client, patient, glucose_rule):
    before = rules_and_revisions()

    response = outsider_client.patch(
        rule_url(patient, glucose_rule), {"severity": "info"}, format="json"
    )

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert rules_and_revisions() == before


def test_a_rule_of_another_patient_under_this_patients_url_is_a_404(
    physician_client, patient, team
):
    others_rule = RuleFactory(patient=PatientFactory(care_team=team), key="glucose_low")
    before = rules_and_revisions()

    response = physician_client.patch(
        rule_url(patient, others_rule), {"severity": "info"}, format="json"
    )

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert rules_and_revisions() == before


def test_a_patient_token_may_not_change_a_rule(patient_client, patient, glucose_rule):
    before = rules_and_revisions()

    response = patient_client.patch(
        rule_url(patient, glucose_rule), {"severity": "info"}, format="json"
    )

    assert (response.status_code, response.json()) == (403, NEEDS_STAFF)
    assert rules_and_revisions() == before
