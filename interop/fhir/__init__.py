"""FHIR R4 at /fhir: Observations to and from Vigil readings, Patients, Bundles, search.

Everything that enters goes through monitoring.ingest.record_readings (channel FHIR): this
package only maps FHIR resources to native reading items and stored readings back to FHIR.
"""
