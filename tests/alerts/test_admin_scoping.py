"""Team scoping of every admin page of patient data (alerts/admin_scoping.py).

For each admin that shows patient data, the nurse of `team` works next to one object of
`other_team`'s patient: she sees none of it in the list, a search, a filter or an
autocomplete; its change, history and delete URLs are a 404 exactly like a missing
object's; a form or an action naming it does nothing. A superuser sees both.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.admin_scoping import TeamScopedAdmin, team_path_for
from alerts.models import Alert, AlertEvent, AlertStatus, CareTeam, Notification, Silence
from monitoring.auth import register_device
from monitoring.models import (
    AuditEvent,
    Device,
    MeasurementSchedule,
    MedicationPlan,
    Nudge,
    Patient,
    Reading,
    Rule,
    Slot,
)
from program.models import Episode, TimeEntry
from tests.factories import (
    AlertFactory,
    CareTeamFactory,
    MeasurementScheduleFactory,
    MedicationPlanFactory,
    MembershipFactory,
    NudgeFactory,
    PatientFactory,
    ReadingFactory,
    RuleFactory,
    SlotFactory,
    UserFactory,
)
from tests.program.factories import EpisodeFactory, TimeEntryFactory


def _silence(patient):
    now = timezone.now()
    return Silence.objects.create(
        patient=patient,
        starts_at=now,
        ends_at=now + timedelta(days=1),
        author=UserFactory(),
        reason="Scale broken; new one posted",
    )


def _notification(patient):
    alert = AlertFactory(patient=patient)
    event = AlertEvent.objects.create(alert=alert, kind="raised", at=timezone.now())
    return Notification.objects.create(
        alert=alert, event=event, channel="email", target=f"team-{patient.pk}@clinic.test"
    )


# One object of each admin of patient data, belonging to `patient`.
BUILDERS = {
    Patient: lambda patient: patient,
    Device: lambda patient: register_device(
        patient=patient, kind="scale", model="Body+", serial=f"SC-{patient.pk}"
    )[0],
    Reading: lambda patient: ReadingFactory(patient=patient),
    Rule: lambda patient: RuleFactory(patient=patient),
    MeasurementSchedule: lambda patient: MeasurementScheduleFactory(patient=patient),
    MedicationPlan: lambda patient: MedicationPlanFactory(patient=patient),
    Slot: lambda patient: SlotFactory(schedule=MeasurementScheduleFactory(patient=patient)),
    Nudge: lambda patient: NudgeFactory(patient=patient),
    Alert: lambda patient: AlertFactory(patient=patient),
    Silence: _silence,
    Notification: _notification,
    # program (issue 13)
    Episode: lambda patient: EpisodeFactory(patient=patient),
    TimeEntry: lambda patient: TimeEntryFactory(patient=patient),
}
MODELS = list(BUILDERS)
IDS = [model.__name__ for model in MODELS]
# Scoped by their own rules: a care team's page (CareTeam.visible_to), and the audit log,
# which only superusers see.
OWN_SCOPING = {CareTeam, AuditEvent}


def admin_of(model) -> TeamScopedAdmin:
    return admin.site.get_model_admin(model)


# The admins that search by the patient's MRN.
SEARCHABLE = [
    model
    for model in MODELS
    if any("external_id" in field for field in admin.site.get_model_admin(model).search_fields)
]
SEARCHABLE_IDS = [model.__name__ for model in SEARCHABLE]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def shown(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.fixture
def as_nurse(nurse) -> Client:
    client = Client()
    client.force_login(nurse)
    return client


@pytest.fixture
def as_root(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def pair(request, patient, other_patient):
    """(mine, theirs): one object of the parametrized model in each team."""
    build = BUILDERS[request.param]
    return build(patient), build(other_patient)


# --- Every admin of patient data is covered -----------------------------------------------


def test_every_admin_of_patient_data_is_team_scoped():
    unscoped = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if team_path_for(model) is not None
        and model not in OWN_SCOPING
        and not isinstance(model_admin, TeamScopedAdmin)
    ]

    assert unscoped == []


def test_every_team_scoped_admin_is_tested_here():
    scoped = {m for m, a in admin.site._registry.items() if isinstance(a, TeamScopedAdmin)}

    assert scoped == set(BUILDERS)


# --- Lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", MODELS, ids=IDS, indirect=True)
def test_a_nurse_lists_only_her_teams_objects(as_nurse, pair):
    mine, _theirs = pair

    response = as_nurse.get(url(type(mine), "changelist"))

    assert response.status_code == 200
    assert shown(response) == {mine.pk}


@pytest.mark.parametrize("pair", MODELS, ids=IDS, indirect=True)
def test_a_superuser_lists_every_teams_objects(as_root, pair):
    mine, theirs = pair

    response = as_root.get(url(type(mine), "changelist"))

    assert shown(response) == {mine.pk, theirs.pk}


@pytest.mark.parametrize("pair", MODELS, ids=IDS, indirect=True)
def test_the_nurses_list_page_names_nothing_of_the_other_team(
    as_nurse, nurse, pair, other_team, other_patient
):
    # given: a second team of hers with its own object, so that list filters have more than
    # one value of hers and are shown (a filter on a relation offers only her teams' values)
    second = MembershipFactory(team=CareTeamFactory(name="Hypertension clinic"), user=nurse).team
    BUILDERS[type(pair[0])](PatientFactory(care_team=second))

    response = as_nurse.get(url(type(pair[0]), "changelist"))

    page = response.content.decode()
    assert other_team.name not in page
    assert other_patient.external_id not in page
    assert other_patient.name not in page


@pytest.mark.parametrize("pair", SEARCHABLE, ids=SEARCHABLE_IDS, indirect=True)
def test_a_search_for_the_other_teams_patient_finds_nothing(as_nurse, as_root, pair):
    mine, theirs = pair
    model = type(mine)
    term = {"q": Patient.objects.get(pk=admin_of(model).patient_id_of(theirs)).external_id}

    assert shown(as_nurse.get(url(model, "changelist"), term)) == set()
    assert shown(as_root.get(url(model, "changelist"), term)) == {theirs.pk}


def test_the_patient_lists_care_team_filter_offers_only_the_nurses_teams(
    as_nurse, nurse, team, other_team, patient, other_patient
):
    # given: a second team of hers, so the filter has a choice to offer (Django hides a
    # filter with one value)
    second = MembershipFactory(team=CareTeamFactory(name="Hypertension clinic"), user=nurse).team
    PatientFactory(care_team=second)

    response = as_nurse.get(url(Patient, "changelist"))

    changelist = response.context["cl"]
    [care_team_filter] = [f for f in changelist.filter_specs if f.title == "care team"]
    offered = [choice["display"] for choice in care_team_filter.choices(changelist)]
    assert sorted(offered) == sorted(["All", team.name, second.name])


def test_a_filter_naming_the_other_team_shows_nothing(as_nurse, other_team, other_patient):
    response = as_nurse.get(url(Patient, "changelist"), {"care_team__id__exact": other_team.pk})

    assert shown(response) == set()


# --- Object URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("pair", MODELS, ids=IDS, indirect=True)
@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_the_other_teams_object_urls_are_a_404_like_a_missing_object(as_nurse, pair, view):
    mine, theirs = pair
    model = type(mine)

    theirs_response = as_nurse.get(url(model, view, theirs.pk))
    missing_response = as_nurse.get(url(model, view, 987654321))

    assert theirs_response.status_code == 404
    assert missing_response.status_code == 404
    assert theirs_response.content == missing_response.content.replace(
        b"987654321", b"%d" % theirs.pk
    )


@pytest.mark.parametrize("pair", MODELS, ids=IDS, indirect=True)
def test_the_nurse_opens_her_teams_object_and_a_superuser_any(as_nurse, as_root, pair):
    mine, theirs = pair
    model = type(mine)

    assert as_nurse.get(url(model, "change", mine.pk)).status_code == 200
    assert as_root.get(url(model, "change", theirs.pk)).status_code == 200


# --- Autocomplete and form choices ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "field", "build"),
    [
        (Silence, "patient", BUILDERS[Patient]),
        (Silence, "rule", BUILDERS[Rule]),
        (Notification, "alert", BUILDERS[Alert]),
    ],
    ids=["silence.patient", "silence.rule", "notification.alert"],
)
def test_autocomplete_offers_only_the_nurses_teams_objects(
    as_nurse, as_root, patient, other_patient, source, field, build
):
    mine, theirs = build(patient), build(other_patient)
    query = {
        "app_label": source._meta.app_label,
        "model_name": source._meta.model_name,
        "field_name": field,
        "term": "",
    }

    nurse_sees = [
        row["id"] for row in as_nurse.get("/admin/autocomplete/", query).json()["results"]
    ]
    root_sees = [row["id"] for row in as_root.get("/admin/autocomplete/", query).json()["results"]]

    assert nurse_sees == [str(mine.pk)]
    assert sorted(root_sees) == sorted([str(mine.pk), str(theirs.pk)])


def test_a_silence_for_the_other_teams_patient_is_refused_and_not_saved(as_nurse, other_patient):
    now = timezone.now()

    response = as_nurse.post(
        url(Silence, "add"),
        {
            "patient": other_patient.pk,
            "starts_at_0": now.date().isoformat(),
            "starts_at_1": "08:00:00",
            "ends_at_0": (now + timedelta(days=1)).date().isoformat(),
            "ends_at_1": "08:00:00",
            "reason": "Not my patient",
        },
    )

    assert response.status_code == 200
    assert "patient" in response.context["adminform"].form.errors
    assert Silence.objects.count() == 0


# The label Django's raw id widget writes after its lookup link (foreign_key_raw_id.html).
RAW_ID_LABEL = re.compile(r'class="related-lookup"[^>]*></a>\s*<strong>(?:<a [^>]*>)?([^<]*)<')


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        pytest.param(Silence, ["patient", "rule"], id="silence"),
        pytest.param(MeasurementSchedule, ["patient"], id="schedule"),
        pytest.param(MedicationPlan, ["patient"], id="plan"),
    ],
)
def test_an_add_form_shows_no_label_for_another_teams_raw_id(
    physician, patient, other_patient, model, fields
):
    # given: the add form opened with ids in its URL (?patient=4&rule=25), as the
    # related-object links do; the physician may add each of these in her team
    client = Client()
    client.force_login(physician)
    rules = {"mine": RuleFactory(patient=patient), "theirs": RuleFactory(patient=other_patient)}
    ids = {
        "mine": {"patient": patient.pk, "rule": rules["mine"].pk},
        "theirs": {"patient": other_patient.pk, "rule": rules["theirs"].pk},
        "missing": {"patient": 999999, "rule": 999999},
    }

    # when
    labels = {}
    for whose, values in ids.items():
        query = "&".join(f"{field}={values[field]}" for field in fields)
        response = client.get(f"{url(model, 'add')}?{query}")
        assert response.status_code == 200, whose
        labels[whose] = RAW_ID_LABEL.findall(response.content.decode())

    # then: the other team's ids look exactly like ids of nothing
    expected = {"patient": f"patient {patient.pk}", "rule": str(rules["mine"])}
    assert labels["mine"] == [expected[field] for field in fields]
    assert labels["theirs"] == labels["missing"] == []


def test_the_nurses_foreign_key_choices_are_her_teams(nurse, patient, other_patient, rf):
    request = rf.get("/admin/alerts/silence/add/")
    request.user = nurse
    form = admin_of(Silence).get_form(request)()

    assert list(form.fields["patient"].queryset) == [patient]


# --- Actions -------------------------------------------------------------------------------


def test_an_action_on_both_teams_alerts_touches_only_the_nurses(
    as_nurse, nurse, patient, other_patient
):
    mine, theirs = AlertFactory(patient=patient), AlertFactory(patient=other_patient)

    as_nurse.post(
        url(Alert, "changelist"),
        {"action": "acknowledge", "_selected_action": [mine.pk, theirs.pk]},
    )

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, mine.acknowledged_by) == (AlertStatus.ACKNOWLEDGED, nurse)
    assert (theirs.status, theirs.acknowledged_by) == (AlertStatus.OPEN, None)
    assert not AlertEvent.objects.filter(alert=theirs).exists()


def test_an_action_on_only_the_other_teams_alert_does_nothing(as_nurse, other_patient):
    theirs = AlertFactory(patient=other_patient)

    as_nurse.post(
        url(Alert, "changelist"), {"action": "acknowledge", "_selected_action": [theirs.pk]}
    )

    theirs.refresh_from_db()
    assert theirs.status == AlertStatus.OPEN
    assert not AlertEvent.objects.filter(alert=theirs).exists()
    assert not AuditEvent.objects.filter(patient=other_patient).exists()
