"""The program's admin: its pages and the parts it adds to the patient and alert pages."""

from program.admin import panel

__all__ = ["panel"]
