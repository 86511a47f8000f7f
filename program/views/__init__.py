"""The program's API views, one module per part of docs/api.md "The RPM program"."""
