"""Nightscout API v1 for uploaders and followers, one base URL per patient.

What is matched, and where it comes from in Nightscout's own server (nightscout/
cgm-remote-monitor at 7e0e77f88, v15.0.7): credentials (lib/authorization/index.js,
lib/server/enclave.js), entries in and out (lib/api/entries/index.js, lib/server/entries.js,
lib/server/query.js), status and verifyauth (lib/api/status.js, lib/api/verifyauth.js),
treatments and device status (lib/server/treatments.js, lib/server/devicestatus.js).
"""
