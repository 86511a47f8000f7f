"""The monitoring admin: importing the modules registers their admins.

Every admin of patient data is a TeamScopedAdmin: care-team members see their teams'
patients only, and a guessed URL for another team's object is a 404.
"""

from monitoring.admin import nudges, patients, records, schedules, users
from monitoring.admin.nudges import NudgeVariantForm
from monitoring.admin.patients import describe_parameters

__all__ = [
    "NudgeVariantForm",
    "describe_parameters",
    "nudges",
    "patients",
    "records",
    "schedules",
    "users",
]
