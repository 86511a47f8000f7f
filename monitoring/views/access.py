"""Staff login and logout, the error shape, and who may reach which patient."""

from django.conf import settings
from django.contrib.auth import authenticate
from django_otp import match_token, user_has_device
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import teams
from alerts.teams import can
from monitoring import examples
from monitoring.auth import (
    IsStaff,
    claim_login_attempt,
    issue_staff_token,
    login_succeeded,
    revoke_staff_token,
)
from monitoring.serializers import (
    StaffLoginSerializer,
    TokenIssuedSerializer,
)

# The error body of a 4xx, declared once in config.api (the component the OpenAPI document's
# postprocessing hook adds).
ERROR = OpenApiResponse(
    {"$ref": "#/components/schemas/Error"},
    description="What was wrong; `errors` maps fields to reasons where fields were wrong.",
)


# Who may do what is alerts.teams' table (ROLE_PERMISSIONS), asked through can(); these are
# the API's answers to a caller whose role does not grant the capability. Another team's
# patient is a 404 before this is asked (visible_patient).
REFUSALS = {
    teams.ENROL_PATIENTS: "Only the team's coordinators may enrol patients.",
    teams.ISSUE_APP_TOKENS: "Only the patient's coordinators may issue app tokens.",
    teams.REVOKE_APP_TOKENS: "Only the patient's coordinators may revoke app tokens.",
    teams.REGISTER_DEVICES: "Only the patient's coordinators may register devices.",
    teams.REVOKE_DEVICES: "Only the patient's coordinators may revoke devices.",
    teams.TAILOR_RULES: "Only the patient's physicians may change rules.",
    teams.ADD_SCHEDULES: (
        "Only the patient's physicians and coordinators may add measurement schedules."
    ),
    teams.CHANGE_SCHEDULES: (
        "Only the patient's physicians and coordinators may change measurement schedules."
    ),
    teams.DELETE_SCHEDULES: (
        "Only the patient's physicians and coordinators may delete measurement schedules."
    ),
    teams.ADD_MEDICATION_PLANS: "Only the patient's physicians may add medication plans.",
    teams.CHANGE_MEDICATION_PLANS: "Only the patient's physicians may change medication plans.",
    teams.DELETE_MEDICATION_PLANS: "Only the patient's physicians may delete medication plans.",
    teams.TRIAGE_ALERTS: "Only the patient's nurses and physicians triage alerts.",
    teams.CREATE_CARE_TEAMS: "Only clinic administrators may create care teams.",
    teams.MANAGE_EPISODES: "Only the patient's coordinators may manage RPM episodes.",
    teams.LOG_TIME: "Only members of the patient's care team may log care time.",
    teams.APPROVE_TIME: (
        "Only the episode's billing practitioner or a physician of the team may approve time."
    ),
    teams.REVIEW_PATIENTS: "Only members of the patient's care team may sign off a review.",
    teams.WRITE_NOTES: "Only members of the patient's care team may write notes.",
    teams.VIEW_BILLING: "Only members of the patient's care team may see its billing.",
    teams.EXPORT_BILLING: "Only the team's coordinators may export the billing ledger.",
}


def require(request, capability: str, *, team_id: int | None) -> None:
    """403 with the capability's refusal unless the caller may (alerts.teams.can)."""
    if not can(request.user, capability, team_id=team_id):
        raise PermissionDenied(REFUSALS[capability])


class LoginLockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins. Wait {minutes} minutes and try again."

    def __init__(self):
        minutes = int(settings.VIGIL_LOGIN_LOCKOUT.total_seconds() // 60)
        super().__init__(detail=self.default_detail.format(minutes=minutes))


def check_second_factor(user, otp_token: str | None) -> None:
    """The API asks for the same second factor as the admin: a user with an authenticator
    always gives its code; with VIGIL_REQUIRE_2FA, a user without one cannot get a token."""
    has_device = user_has_device(user, confirmed=True)
    if not has_device and not settings.VIGIL_REQUIRE_2FA:
        return
    if not has_device:
        raise ValidationError(
            {
                "otp_token": [
                    "Two-factor authentication is required: set up an authenticator "
                    "in the admin first."
                ]
            }
        )
    if not otp_token:
        raise ValidationError({"otp_token": ["The authenticator code is required."]})
    if match_token(user, otp_token) is None:
        raise ValidationError({"otp_token": ["The authenticator code is wrong or was used."]})


class StaffTokenCreateRevokeApi(APIView):
    """POST logs in (no credential; failed logins counted by monitoring.auth's store),
    DELETE logs out (the staff token that calls is revoked)."""

    def get_authenticators(self):
        if self._logging_in():
            return []  # a stale Authorization header must not stand in the way of a login
        return super().get_authenticators()

    def get_permissions(self):
        return [] if self._logging_in() else [IsStaff()]

    def _logging_in(self) -> bool:
        # The request is the HttpRequest here (View.setup), or None while drf-spectacular
        # builds its mock one.
        return getattr(getattr(self, "request", None), "method", None) == "POST"

    @extend_schema(
        tags=["auth"],
        summary="Exchange a staff username and password for a staff token",
        description=(
            "Failed logins are counted per username and address, per username and per "
            "address; past a limit the answer is 429 without the password being checked, "
            "until the lockout ends."
        ),
        request=StaffLoginSerializer,
        responses={201: TokenIssuedSerializer, 400: ERROR, 429: ERROR},
        examples=examples.STAFF_LOGIN,
    )
    def post(self, request):
        login = StaffLoginSerializer(data=request.data)
        login.is_valid(raise_exception=True)
        credentials = dict(login.validated_data)
        otp_token = credentials.pop("otp_token", None)
        username = credentials["username"]
        if not claim_login_attempt(request=request, username=username):
            raise LoginLockedOut()
        # The attempt counts as a failure unless it ends in a token.
        user = authenticate(request, **credentials)
        if user is None or not user.is_staff:
            raise ValidationError(
                {"non_field_errors": ["Invalid username or password, or not a staff account."]}
            )
        check_second_factor(user, otp_token)
        login_succeeded(request=request, username=username)
        token, plaintext = issue_staff_token(user=user)
        return Response(
            {"token": plaintext, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        tags=["auth"],
        summary="Log out: revoke the staff token this request carries",
        description="The token stops working at once; the user's other tokens are untouched.",
        request=None,
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request):
        revoke_staff_token(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)
