"""The API views, one module per part of the API; urls.py and other apps import from here."""

from monitoring.views.access import (
    ERROR,
    REFUSALS,
    LoginLockedOut,
    StaffTokenCreateRevokeApi,
    check_second_factor,
    require,
)
from monitoring.views.nudges import (
    DeleteBodyAutoSchema,
    NudgeCursorPagination,
    NudgeListApi,
    NudgeOpenedApi,
    PushTokenApi,
)
from monitoring.views.patients import (
    PREFERENCE_FIELDS,
    AppTokenCreateApi,
    AppTokenRevokeApi,
    DeviceCreateApi,
    DeviceRevokeApi,
    PatientDetailApi,
    PatientListCreateApi,
    PatientReadingListApi,
    visible_patient,
)
from monitoring.views.readings import (
    READING_FILTERS,
    MeApi,
    ReadingListCreateApi,
    filter_readings,
    paginated_readings,
)
from monitoring.views.rules import (
    PatientRuleChangeApi,
    PatientRuleListCreateApi,
)
from monitoring.views.schedules import (
    PatientMedicationPlanChangeDeleteApi,
    PatientMedicationPlanListCreateApi,
    PatientScheduleChangeDeleteApi,
    PatientScheduleListCreateApi,
)

__all__ = [
    "ERROR",
    "PREFERENCE_FIELDS",
    "READING_FILTERS",
    "REFUSALS",
    "AppTokenCreateApi",
    "AppTokenRevokeApi",
    "DeleteBodyAutoSchema",
    "DeviceCreateApi",
    "DeviceRevokeApi",
    "LoginLockedOut",
    "MeApi",
    "NudgeCursorPagination",
    "NudgeListApi",
    "NudgeOpenedApi",
    "PatientDetailApi",
    "PatientListCreateApi",
    "PatientMedicationPlanChangeDeleteApi",
    "PatientMedicationPlanListCreateApi",
    "PatientReadingListApi",
    "PatientRuleChangeApi",
    "PatientRuleListCreateApi",
    "PatientScheduleChangeDeleteApi",
    "PatientScheduleListCreateApi",
    "PushTokenApi",
    "ReadingListCreateApi",
    "StaffTokenCreateRevokeApi",
    "check_second_factor",
    "filter_readings",
    "paginated_readings",
    "require",
    "visible_patient",
]
