"""Charts for the care team's workspace: inline SVG, rendered on the server.

Pure functions: readings in, an SVG string out — no JavaScript, no CDN, nothing to build.
Times are placed on a linear UTC axis and labelled in the patient's own time zone, so a
day that a DST change makes 23 or 25 hours long is drawn that long. The patient's own
thresholds are drawn as bands coloured by severity and the readings that fired an alert are
marked. Every piece of text (titles, labels, units) is escaped before it is written.

    line_chart(points=…, unit="mg/dL", zone=patient.zone, bands=[Band(None, 54, "critical",
               "Level 2 hypoglycaemia: < 54 mg/dL")], marks=[reading.measured_at], start=…,
               end=…, title="Blood glucose, last 14 days")
    multi_line_chart(series=[("Systolic", …), ("Diastolic", …)], …)   # blood pressure

The package: bands.py (Band, bands_from_rules), layout.py (sizes and scales), time_axis.py
(local-time ticks), legend.py (legend and <desc>), svg.py (the drawing).
"""

from monitoring.charts.bands import SEVERITY_COLOURS, Band, bands_from_rules
from monitoring.charts.svg import line_chart, multi_line_chart
from monitoring.charts.time_axis import x_ticks

__all__ = [
    "SEVERITY_COLOURS",
    "Band",
    "bands_from_rules",
    "line_chart",
    "multi_line_chart",
    "x_ticks",
]
