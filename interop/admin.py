"""The admin for interop's models: uploaders are issued and revoked through the API
(`POST/DELETE /api/v1/patients/{id}/nightscout`); their display on the patient's admin page
belongs to the patient admin (monitoring/admin)."""
