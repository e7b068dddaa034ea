"""Konak's local files: one way to open a SQLite database and migrate its schema."""
