"""Interoperability: data in and out the way the field already speaks (FHIR R4, Nightscout).

Every reading that enters here is stored by monitoring.ingest.record_readings, the one ingest
path; this app maps the interfaces' shapes to and from Vigil's.
"""
