"""The embedded store: one SQLite file holding alerts, ingested events and rule runs.

SQLite because its write-ahead log survives a killed process without losing a
committed row, and because other processes (``vigil alerts``) can read the file
while ``vigil serve`` writes it.
"""
