"""config/statements.py: a compiled query returns what the ORM returns, prepared once per
connection where that is allowed, logged with its values like any other statement."""

from __future__ import annotations

import datetime

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert
from config.statements import CompiledQuery, hot_cursor, prepares_statements, sent_together
from monitoring.models import Rule
from tests.factories import AlertFactory, RuleFactory
from tests.wire import round_trips


def field_values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


rules_with_team = CompiledQuery(
    lambda patient_id, metrics: (
        Rule.objects.filter(patient_id=patient_id, metric__in=metrics)
        .select_related("patient__care_team")
        .order_by("id")
    ),
    params=lambda patient_id, metrics: [*metrics, patient_id],
    shape=lambda patient_id, metrics: len(metrics),
)

alert_values = CompiledQuery(
    lambda patient_id: (
        Alert.objects.filter(patient_id=patient_id)
        .order_by("id")
        .values_list("dedupe_key", "severity", "first_triggered_at")
    ),
    params=lambda patient_id: [patient_id],
)


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.django_db
def test_a_compiled_query_builds_what_the_orm_builds(
    patient,
):
    # given: three rules of the patient, two of them on glucose
    RuleFactory(patient=patient, key="low", metric="glucose")
    RuleFactory(patient=patient, key="high", metric="glucose")
    RuleFactory(patient=patient, key="weight", metric="weight")
    expected = list(
        Rule.objects.filter(patient=patient, metric__in=["glucose"])
        .select_related("patient__care_team")
        .order_by("id")
    )

    # when
    with CaptureQueriesContext(connection) as queries:
        found = rules_with_team(patient.pk, ["glucose"])
        teams = [rule.patient.care_team for rule in found]

    # then: one statement; every field of every object as the ORM loads it
    assert len(queries) == 1
    assert [field_values(rule) for rule in found] == [field_values(rule) for rule in expected]
    assert [field_values(rule.patient) for rule in found] == [
        field_values(rule.patient) for rule in expected
    ]
    assert [field_values(team) for team in teams] == [
        field_values(rule.patient.care_team) for rule in expected
    ]
    assert all(rule._state.adding is False and rule._state.db == "default" for rule in found)


@pytest.mark.postgres  # compiled there; SQLite runs the ORM's queryset
@pytest.mark.django_db
def test_the_rows_of_one_patient_share_the_patient_and_team_objects(patient):
    RuleFactory(patient=patient, key="low", metric="glucose")
    RuleFactory(patient=patient, key="high", metric="glucose")

    found = rules_with_team(patient.pk, ["glucose"])

    assert [rule.key for rule in found] == ["low", "high"]
    assert found[0].patient is found[1].patient
    assert found[0].patient.care_team is found[1].patient.care_team


@pytest.mark.django_db
def test_a_compiled_query_of_another_shape_is_compiled_on_its_own(patient):
    RuleFactory(patient=patient, key="low", metric="glucose")
    RuleFactory(patient=patient, key="weight", metric="weight")

    assert [rule.key for rule in rules_with_team(patient.pk, ["glucose"])] == ["low"]
    assert [rule.key for rule in rules_with_team(patient.pk, ["glucose", "weight"])] == [
        "low",
        "weight",
    ]
    assert rules_with_team(patient.pk, ["spo2"]) == []


rules_of_patients = CompiledQuery(
    lambda patient_ids: Rule.objects.filter(patient_id__any=patient_ids).order_by("id"),
    params=lambda patient_ids: [patient_ids],
)


@pytest.mark.postgres  # an array parameter
@pytest.mark.django_db
def test_one_compiled_statement_with_an_array_serves_any_number_of_patients():
    rules = [RuleFactory() for _ in range(3)]
    ids = [rule.patient_id for rule in rules]

    for chosen in ([ids[0]], ids[:2], ids, [*ids, -1]):
        assert rules_of_patients(chosen) == list(
            Rule.objects.filter(patient_id__in=chosen).order_by("id")
        )
    assert len(rules_of_patients._compiled) == 1


@pytest.mark.django_db
def test_a_compiled_values_list_returns_the_orm_tuples_with_utc_datetimes(patient):
    AlertFactory(patient=patient, dedupe_key="glucose_low")
    AlertFactory(patient=patient, dedupe_key="glucose_high")

    found = alert_values(patient.pk)

    assert found == list(
        Alert.objects.filter(patient=patient)
        .order_by("id")
        .values_list("dedupe_key", "severity", "first_triggered_at")
    )
    assert [key for key, _, _ in found] == ["glucose_low", "glucose_high"]
    assert all(at.tzinfo is datetime.UTC for _, _, at in found)


@pytest.mark.postgres
@pytest.mark.django_db
def test_parameters_that_are_not_the_orms_fail_on_the_first_call(patient):
    # given: a query whose parameters are listed in the wrong order
    wrong = CompiledQuery(
        lambda patient_id, metrics: Rule.objects.filter(patient_id=patient_id, metric__in=metrics),
        params=lambda patient_id, metrics: [patient_id, *metrics],
    )

    # when / then: refused before anything runs
    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(AssertionError, match="compiled parameters"),
    ):
        wrong(patient.pk, ["glucose"])
    assert len(queries) == 0


@pytest.mark.postgres
@pytest.mark.direct_database  # the pooler run sets DATABASE_POOLER: nothing is prepared there
@pytest.mark.django_db
def test_on_postgresql_without_a_pooler_the_statement_is_prepared_once_per_connection(patient):
    RuleFactory(patient=patient, key="low", metric="glucose")
    assert prepares_statements()

    rules_with_team(patient.pk, ["glucose"])
    rules_with_team(patient.pk, ["glucose"])

    statements = [s for s in prepared_statements() if '"monitoring_rule"' in s]
    assert len(statements) == 1
    assert "$1" in statements[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_behind_a_transaction_pooler_nothing_is_prepared(patient, settings):
    # given: PgBouncer in transaction mode, where a prepared statement would be lost
    settings.DATABASE_POOLER = "transaction"
    RuleFactory(patient=patient, key="low", metric="glucose")
    assert not prepares_statements()

    # when
    found = rules_with_team(patient.pk, ["glucose", "weight", "spo2"])

    # then: the same rows, through Django's own cursor, nothing prepared
    assert [rule.key for rule in found] == ["low"]
    assert not [s for s in prepared_statements() if '"monitoring_rule"' in s]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_prepared_statement_is_logged_with_its_values(patient):
    with CaptureQueriesContext(connection) as queries, hot_cursor() as cursor:
        cursor.execute("SELECT %s::bigint + %s::bigint", [patient.pk, 1])
        assert cursor.fetchone() == (patient.pk + 1,)

    assert queries[0]["sql"] == f"SELECT {patient.pk}::bigint + 1::bigint"


# --- Sent together --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.direct_database  # the pooler run sets DATABASE_POOLER: each statement at once
@pytest.mark.django_db
def test_queries_sent_together_go_in_one_round_trip_and_are_read_after_the_block(patient):
    RuleFactory(patient=patient, key="low", metric="glucose")
    AlertFactory(patient=patient, dedupe_key="glucose_low")

    with round_trips() as trips, sent_together():
        rules = rules_with_team.send(patient.pk, ["glucose"])
        alerts = alert_values.send(patient.pk)
        with pytest.raises(RuntimeError, match="after its sent_together"):
            rules.rows()

    assert [trip.executes() for trip in trips] == [2]
    assert [field_values(rule) for rule in rules.rows()] == [
        field_values(rule) for rule in Rule.objects.filter(patient=patient).order_by("id")
    ]
    assert rules.rows()[0].patient.care_team == patient.care_team
    assert [key for key, _, _ in alerts.rows()] == ["glucose_low"]


@pytest.mark.postgres
@pytest.mark.direct_database
@pytest.mark.django_db
def test_a_query_read_at_once_inside_the_block_sends_what_was_queued_before_it(patient):
    RuleFactory(patient=patient, key="low", metric="glucose")

    with round_trips() as trips, sent_together():
        rules = rules_with_team.send(patient.pk, ["glucose"])
        found_now = alert_values(patient.pk)

    assert found_now == []
    assert [rule.key for rule in rules.rows()] == ["low"]
    assert sum(trip.executes() for trip in trips) == 2


@pytest.mark.postgres
@pytest.mark.direct_database
@pytest.mark.django_db
def test_an_error_in_a_block_is_raised_as_djangos_when_the_block_ends(patient):
    with transaction.atomic():  # a savepoint: the failed statement aborts only it
        with pytest.raises(DataError), sent_together():
            with hot_cursor() as cursor:
                cursor.execute("SELECT 1 / %s::integer", [0])
            after = alert_values.send(patient.pk)
            reached_the_end = True
        transaction.set_rollback(True)

    assert reached_the_end
    with pytest.raises(RuntimeError):
        after.rows()


@pytest.mark.postgres
@pytest.mark.django_db
def test_behind_a_transaction_pooler_a_sent_query_runs_at_once(patient, settings):
    settings.DATABASE_POOLER = "transaction"
    RuleFactory(patient=patient, key="low", metric="glucose")

    with sent_together():
        rules = rules_with_team.send(patient.pk, ["glucose"])
        assert [rule.key for rule in rules.rows()] == ["low"]
