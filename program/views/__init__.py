"""The program's API views (docs/api.md, "The RPM program"), one module per part."""
