"""GET / POST /api/v1/care-teams: staff see their own teams; clinic administrators build them."""

import pytest
from django.contrib.auth.models import Permission

from alerts.models import CareTeam, CareTeamMembership
from tests.factories import CareTeamFactory, UserFactory

URL = "/api/v1/care-teams"
ADMINS_ONLY = {"detail": "Only clinic administrators may create care teams."}


@pytest.fixture
def administrator(db):
    """A staff user who is not a superuser but holds the add-care-team permission."""
    user = UserFactory(username="clinic.admin")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="alerts", codename="add_careteam")
    )
    return user


@pytest.fixture
def admin_client(administrator, staff_client):
    return staff_client(administrator)


def new_team(**overrides) -> dict:
    return {
        "name": "COPD clinic",
        "members": [
            {"username": "nurse", "role": "nurse", "escalation_level": 1},
            {"username": "physician", "role": "physician", "escalation_level": 2},
        ],
    } | overrides


def errors(response) -> dict:
    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid input."
    return response.json()["errors"]


def counts() -> tuple[int, int]:
    return CareTeam.objects.count(), CareTeamMembership.objects.count()


# --- GET ----------------------------------------------------------------------------------


def test_staff_see_only_their_own_teams_with_members(nurse_client, physician, outsider):
    response = nurse_client.get(URL)

    assert response.status_code == 200
    team = CareTeam.objects.get(name="Heart failure clinic")
    assert response.json() == [
        {
            "id": team.pk,
            "name": "Heart failure clinic",
            "members": [
                {"username": "nurse", "role": "nurse", "escalation_level": 1},
                {"username": "physician", "role": "physician", "escalation_level": 2},
            ],
        }
    ]


def test_staff_in_no_team_see_no_teams(staff_client, nurse, outsider):
    response = staff_client(UserFactory(username="loner")).get(URL)

    assert response.status_code == 200
    assert response.json() == []


def test_a_superuser_sees_every_team_by_name(superuser, staff_client, nurse, outsider):
    CareTeamFactory(name="Anticoagulation clinic")

    response = staff_client(superuser).get(URL)

    assert response.status_code == 200
    assert [(t["name"], len(t["members"])) for t in response.json()] == [
        ("Anticoagulation clinic", 0),
        ("Diabetes clinic", 1),
        ("Heart failure clinic", 1),
    ]


# --- POST: who may ------------------------------------------------------------------------


def test_an_ordinary_nurse_may_not_create_a_team(nurse_client, physician):
    before = counts()

    response = nurse_client.post(URL, new_team(), format="json")

    assert response.status_code == 403
    assert response.json() == ADMINS_ONLY
    assert counts() == before
    assert not CareTeam.objects.filter(name="COPD clinic").exists()


def test_a_nurse_may_not_create_a_team_even_with_an_invalid_body(nurse_client):
    # The permission is checked first: a non-administrator learns nothing about usernames.
    response = nurse_client.post(URL, new_team(members=[{"username": "ghost"}]), format="json")

    assert response.status_code == 403
    assert response.json() == ADMINS_ONLY


def test_a_superuser_creates_a_team_with_its_members(superuser, staff_client, nurse, physician):
    # when
    response = staff_client(superuser).post(URL, new_team(), format="json")

    # then
    assert response.status_code == 201
    team = CareTeam.objects.get(name="COPD clinic")
    assert response.json() == {
        "id": team.pk,
        "name": "COPD clinic",
        "members": [
            {"username": "nurse", "role": "nurse", "escalation_level": 1},
            {"username": "physician", "role": "physician", "escalation_level": 2},
        ],
    }
    assert list(team.memberships.values_list("user__username", "role", "escalation_level")) == [
        ("nurse", "nurse", 1),
        ("physician", "physician", 2),
    ]


def test_a_holder_of_the_add_care_team_permission_creates_a_team(admin_client, nurse, physician):
    response = admin_client.post(URL, new_team(), format="json")

    assert response.status_code == 201
    assert CareTeam.objects.filter(name="COPD clinic").count() == 1


def test_the_new_team_appears_for_its_members(admin_client, nurse, nurse_client, physician):
    admin_client.post(URL, new_team(), format="json")

    names = [team["name"] for team in nurse_client.get(URL).json()]

    assert names == ["COPD clinic", "Heart failure clinic"]


def test_a_team_may_start_without_members(admin_client):
    response = admin_client.post(URL, {"name": "Night shift"}, format="json")

    assert response.status_code == 201
    assert response.json()["members"] == []
    assert CareTeam.objects.get(name="Night shift").memberships.count() == 0


def test_escalation_level_defaults_to_one(admin_client, nurse):
    response = admin_client.post(
        URL, {"name": "Ward", "members": [{"username": "nurse", "role": "nurse"}]}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["members"] == [
        {"username": "nurse", "role": "nurse", "escalation_level": 1}
    ]


# --- POST: what is refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    ["ghost", "receptionist", "retired"],
    ids=["unknown", "non-staff", "inactive"],
)
def test_a_member_who_is_not_an_active_staff_account_is_refused(
    admin_client, nurse, physician, username
):
    # given
    UserFactory(username="receptionist", is_staff=False)
    UserFactory(username="retired", is_active=False)
    members = [
        {"username": "nurse", "role": "nurse"},
        {"username": username, "role": "coordinator"},
    ]
    before = counts()

    # when
    response = admin_client.post(URL, new_team(members=members), format="json")

    # then: the reason sits on the item and field at fault; nothing is created
    assert errors(response) == {
        "members": {"1": {"username": [f"No active staff account is named '{username}'."]}}
    }
    assert counts() == before


def test_a_member_listed_twice_is_refused(admin_client, nurse):
    members = [{"username": "nurse", "role": "nurse"}, {"username": "nurse", "role": "physician"}]
    before = counts()

    response = admin_client.post(URL, new_team(members=members), format="json")

    assert errors(response) == {"members": ["Each member may be listed once."]}
    assert counts() == before


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        pytest.param(
            {"username": "nurse", "role": "janitor"},
            {"role": ['"janitor" is not a valid choice.']},
            id="bad-role",
        ),
        pytest.param(
            {"username": "nurse"}, {"role": ["This field is required."]}, id="missing-role"
        ),
        pytest.param(
            {"username": "nurse", "role": "nurse", "escalation_level": 0},
            {"escalation_level": ["Ensure this value is greater than or equal to 1."]},
            id="level-zero",
        ),
        pytest.param(
            {"username": "nurse", "role": "nurse", "escalation_level": "top"},
            {"escalation_level": ["A valid integer is required."]},
            id="level-not-a-number",
        ),
    ],
)
def test_an_invalid_member_is_refused_per_field(admin_client, nurse, member, reason):
    before = counts()

    response = admin_client.post(URL, new_team(members=[member]), format="json")

    assert errors(response) == {"members": {"0": reason}}
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({}, {"name": ["This field is required."]}, id="no-name"),
        pytest.param({"name": ""}, {"name": ["This field may not be blank."]}, id="blank-name"),
        pytest.param(
            {"name": "N" * 121},
            {"name": ["Ensure this field has no more than 120 characters."]},
            id="long-name",
        ),
        pytest.param(
            {"name": "Ward", "members": {"username": "nurse"}},
            {"members": {"non_field_errors": ['Expected a list of items but got type "dict".']}},
            id="members-not-a-list",
        ),
    ],
)
def test_an_invalid_team_is_refused_per_field(admin_client, body, reason):
    before = counts()

    response = admin_client.post(URL, body, format="json")

    assert errors(response) == reason
    assert counts() == before


def test_a_duplicate_team_name_is_refused_and_the_existing_team_kept(
    admin_client, team, nurse, physician
):
    before = counts()

    response = admin_client.post(
        URL, new_team(name="Heart failure clinic", members=[]), format="json"
    )

    assert errors(response) == {"name": ["A care team with this name exists."]}
    assert counts() == before
    assert list(team.memberships.values_list("user__username", flat=True)) == [
        "nurse",
        "physician",
    ]
