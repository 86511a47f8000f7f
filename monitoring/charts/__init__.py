"""Charts for the care team's workspace: inline SVG, rendered on the server.

Pure functions: readings in, an SVG string out — no JavaScript, no CDN, nothing to build.
Times are placed on a linear UTC axis and labelled in the patient's own time zone, so a
day that a DST change makes 23 or 25 hours long is drawn that long. The patient's own
thresholds are drawn as limit lines, one per value however many rules share it, each in its
severity's dash pattern and labelled in words ("> 180 critical", "7-day average ≥ 135
warning"); a limit on an average is drawn over that average, not over single readings. The
readings that fired an alert are ringed, found by their id. Every piece of text (titles,
labels, units) is escaped before it is written.

    line_chart(points=[(measured_at, value, reading_id), …], unit="mg/dL", zone=patient.zone,
               bands=bands_from_rules(rules, unit="mg/dL"), marks=alert.reading_ids,
               start=…, end=…, title="Blood glucose, last 14 days")
    multi_line_chart(series=[("Systolic", …), ("Diastolic", …)], …)   # one panel each

The package: bands.py (Band, bands_from_rules, limits), layout.py (sizes, scales, label
placement), time_axis.py (local-time ticks), legend.py (legend and <desc>), svg.py (the
drawing).
"""

from monitoring.charts.bands import (
    SEVERITY_COLOURS,
    SEVERITY_STROKES,
    Band,
    Limit,
    bands_from_rules,
    limits_of,
)
from monitoring.charts.svg import line_chart, multi_line_chart
from monitoring.charts.time_axis import x_ticks

__all__ = [
    "SEVERITY_COLOURS",
    "SEVERITY_STROKES",
    "Band",
    "Limit",
    "bands_from_rules",
    "limits_of",
    "line_chart",
    "multi_line_chart",
    "x_ticks",
]
