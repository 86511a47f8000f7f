"""The program's admin: its pages and the parts it adds to the patient and alert pages;
importing the modules registers their admins.

Every admin of patient data is a TeamScopedAdmin (alerts/admin_scoping.py): care-team members
see their teams' patients only, and a guessed URL for another team's object is a 404.
"""

from program.admin import episodes, panel, time_entries

__all__ = ["episodes", "panel", "time_entries"]
