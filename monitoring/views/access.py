"""Staff login, the error shape, and who may reach which patient."""

from django.conf import settings
from django.contrib.auth import authenticate
from django_otp import match_token, user_has_device
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, throttling
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import examples
from monitoring.auth import (
    issue_staff_token,
)
from monitoring.serializers import (
    StaffLoginSerializer,
    TokenIssuedSerializer,
)

ERROR = OpenApiResponse(
    inline_serializer(
        "Error",
        {
            "detail": serializers.CharField(),
            "errors": serializers.DictField(
                required=False, help_text="Per field (or per parameter), the reasons."
            ),
        },
    ),
    description="What was wrong; `errors` maps fields to reasons where fields were wrong.",
)


class LoginIpThrottle(throttling.SimpleRateThrottle):
    scope = "login_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(throttling.SimpleRateThrottle):
    """Slows password guessing against one account from many addresses."""

    scope = "login_username"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if isinstance(request.data, dict) else None
        if not isinstance(username, str) or not username:
            return None
        return self.cache_format % {"scope": self.scope, "ident": username.lower()[:150]}


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


class StaffTokenCreateApi(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = [LoginIpThrottle, LoginUsernameThrottle]

    @extend_schema(
        tags=["auth"],
        summary="Exchange a staff username and password for a staff token",
        request=StaffLoginSerializer,
        responses={201: TokenIssuedSerializer, 400: ERROR, 429: ERROR},
        examples=examples.STAFF_LOGIN,
    )
    def post(self, request):
        login = StaffLoginSerializer(data=request.data)
        login.is_valid(raise_exception=True)
        credentials = dict(login.validated_data)
        otp_token = credentials.pop("otp_token", None)
        user = authenticate(request, **credentials)
        if user is None or not user.is_staff:
            raise ValidationError(
                {"non_field_errors": ["Invalid username or password, or not a staff account."]}
            )
        check_second_factor(user, otp_token)
        token, plaintext = issue_staff_token(user=user)
        return Response(
            {"token": plaintext, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED
        )
