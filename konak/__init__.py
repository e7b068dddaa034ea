"""Konak: an offline-first voice platform for fleets of small devices."""

__version__ = "0.1.0"
