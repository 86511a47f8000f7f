"""The program's admin: importing the modules registers their pages."""

from program.admin import panel

__all__ = ["panel"]
