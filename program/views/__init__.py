"""The program's API views, one module per part (docs/api.md, "The RPM program");
program/urls.py imports each module."""
