"""Staff endpoints for measurement schedules and medication plans."""

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.teams import (
    ADD_MEDICATION_PLANS,
    ADD_SCHEDULES,
    CHANGE_MEDICATION_PLANS,
    CHANGE_SCHEDULES,
    DELETE_MEDICATION_PLANS,
    DELETE_SCHEDULES,
)
from monitoring import examples
from monitoring.auth import (
    IsStaff,
)
from monitoring.models import (
    MeasurementSchedule,
    MedicationPlan,
)
from monitoring.schedules import add_measurement_schedule, add_medication_plan, change_schedule
from monitoring.serializers import (
    MedicationPlanChangeSerializer,
    MedicationPlanCreateSerializer,
    MedicationPlanSerializer,
    ScheduleChangeSerializer,
    ScheduleCreateSerializer,
    ScheduleSerializer,
)
from monitoring.views.access import ERROR, require
from monitoring.views.patients import visible_patient

# --- Schedules and medication plans ---------------------------------------------------------
# Every member of the patient's team reads them; the roles that change them are in
# alerts.teams.ROLE_PERMISSIONS (physicians: both; coordinators: measurement schedules).


class PatientScheduleListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's measurement schedules, in the patient's local time",
        responses={200: ScheduleSerializer(many=True), 404: ERROR},
        examples=examples.SCHEDULES,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        schedules = patient.measurement_schedules.select_related("protocol").order_by(
            "metric", "key"
        )
        return Response(ScheduleSerializer(schedules, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Add a measurement schedule for the patient",
        request=ScheduleCreateSerializer,
        responses={201: ScheduleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.SCHEDULE_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, ADD_SCHEDULES, team_id=patient.care_team_id)
        body = ScheduleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                schedule = add_measurement_schedule(patient=patient, **body.validated_data)
        except IntegrityError as error:
            raise ValidationError(
                {"key": ["The patient already has a schedule with this key."]}
            ) from error
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class PatientScheduleChangeDeleteApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Change a measurement schedule's times, days, window or active flag",
        description="Slots already opened keep their times; the next one follows the change.",
        request=ScheduleChangeSerializer,
        responses={200: ScheduleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.SCHEDULE_CHANGE,
    )
    def patch(self, request, patient_id: int, schedule_id: int):
        patient = visible_patient(request, patient_id)
        schedule = get_object_or_404(MeasurementSchedule, pk=schedule_id, patient=patient)
        require(request, CHANGE_SCHEDULES, team_id=patient.care_team_id)
        body = ScheduleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = change_schedule(owner=schedule, **body.validated_data)
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(
        tags=["staff"],
        summary="Delete a measurement schedule and its slots (readings stay)",
        description="To pause reminders and keep the slot history, PATCH `active: false`.",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int, schedule_id: int):
        patient = visible_patient(request, patient_id)
        schedule = get_object_or_404(MeasurementSchedule, pk=schedule_id, patient=patient)
        require(request, DELETE_SCHEDULES, team_id=patient.care_team_id)
        schedule.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PatientMedicationPlanListCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="The patient's medication plans, in the patient's local time",
        responses={200: MedicationPlanSerializer(many=True), 404: ERROR},
        examples=examples.MEDICATIONS,
    )
    def get(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        plans = patient.medication_plans.order_by("medication")
        return Response(MedicationPlanSerializer(plans, many=True).data)

    @extend_schema(
        tags=["staff"],
        summary="Add a medication plan for the patient",
        request=MedicationPlanCreateSerializer,
        responses={201: MedicationPlanSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.MEDICATION_CREATE,
    )
    def post(self, request, patient_id: int):
        patient = visible_patient(request, patient_id)
        require(request, ADD_MEDICATION_PLANS, team_id=patient.care_team_id)
        body = MedicationPlanCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                plan = add_medication_plan(patient=patient, **body.validated_data)
        except IntegrityError as error:
            raise ValidationError(
                {"medication": ["The patient already has a plan for this medication."]}
            ) from error
        return Response(MedicationPlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class PatientMedicationPlanChangeDeleteApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        tags=["staff"],
        summary="Change a medication plan's name, dose times, days, window, critical or active",
        description="Slots already opened keep their times; the next one follows the change.",
        request=MedicationPlanChangeSerializer,
        responses={200: MedicationPlanSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=examples.MEDICATION_CHANGE,
    )
    def patch(self, request, patient_id: int, plan_id: int):
        patient = visible_patient(request, patient_id)
        plan = get_object_or_404(MedicationPlan, pk=plan_id, patient=patient)
        require(request, CHANGE_MEDICATION_PLANS, team_id=patient.care_team_id)
        body = MedicationPlanChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        plan = change_schedule(owner=plan, **body.validated_data)
        return Response(MedicationPlanSerializer(plan).data)

    @extend_schema(
        tags=["staff"],
        summary="Delete a medication plan and its slots (dose readings stay)",
        description="To pause reminders and keep the slot history, PATCH `active: false`.",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request, patient_id: int, plan_id: int):
        patient = visible_patient(request, patient_id)
        plan = get_object_or_404(MedicationPlan, pk=plan_id, patient=patient)
        require(request, DELETE_MEDICATION_PLANS, team_id=patient.care_team_id)
        plan.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
