"""Staff endpoints for a patient's rules."""

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import TAILOR_RULES
from monitoring import examples
from monitoring.auth import (
    IsStaff,
)
from monitoring.models import (
    Rule,
)
from monitoring.patient_rules import StaleRule, add_rule, change_rule
from monitoring.rules import InvalidParameters
from monitoring.serializers import (
    RuleChangeSerializer,
    RuleCreateSerializer,
    RuleSerializer,
)
from monitoring.views.access import ERROR, require
from monitoring.views.patients import visible_patient

# --- Rules --------------------------------------------------------------------------------


def _invalid_rule(error: InvalidParameters) -> ValidationError:
    errors = error.errors
    if set(errors) == {"kind"}:
        return ValidationError(errors)
    return ValidationError({"parameters": errors})


class PatientRuleListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's rules, with protocol defaults and their sources",
        responses={200: RuleSerializer(many=True), 404: ERROR},
        examples=examples.RULES,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        rules = patient.rules.select_related("protocol").order_by("metric", "key")
        return Response(RuleSerializer(rules, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Add a rule for the patient (physicians)",
        request=RuleCreateSerializer,
        responses={201: RuleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.RULE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, TAILOR_RULES, team_id=patient.care_team_id)
        body = RuleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            with transaction.atomic():
                rule = add_rule(
                    patient=patient,
                    user=request.user,
                    group=data.pop("group", data["key"]),
                    **data,
                )
        except InvalidParameters as error:
            raise _invalid_rule(error) from error
        except IntegrityError as error:
            raise ValidationError(
                {"key": ["The patient already has a rule with this key."]}
            ) from error
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class PatientRuleChangeApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Tailor one of the patient's rules: a new version (physicians)",
        request=RuleChangeSerializer,
        responses={200: RuleSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        examples=examples.RULE_CHANGE,
    )
    def patch(self, request, patient_id: int, rule_id: int):
        patient = visible_patient(request, patient_id)
        rule = get_object_or_404(Rule, pk=rule_id, patient=patient)
        require(request, TAILOR_RULES, team_id=patient.care_team_id)
        body = RuleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        expected_version = changes.pop("version", None)
        try:
            rule = change_rule(
                rule=rule, user=request.user, expected_version=expected_version, **changes
            )
        except InvalidParameters as error:
            raise _invalid_rule(error) from error
        except StaleRule as error:
            version = error.current_version
            reason = f"The rule is at version {version} now; reload it and make the change again."
            return Response(
                {"detail": "The rule changed since that version.", "errors": {"version": [reason]}},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(RuleSerializer(rule).data)
