"""The remote-monitoring program (issue 13): episodes, the care team's time, reviews and notes,
the panel, and the RPM billing ledger under the 2026 code set.

Modules: codes.py (the billing reference, monitoring/rpm_billing.yaml), periods.py (device
periods, days with data, the 16-day reach), episodes.py, care_time.py (time entries and
timers), reviews.py (sign-offs, notes, calls), panel.py, ledger.py, outreach.py (keeping
patients above the line).
"""
