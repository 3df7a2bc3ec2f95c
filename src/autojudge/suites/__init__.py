"""Prompt suites: loading, checking and filtering them (load), one entry's fields and
where it sits in its file (entries), and importers for public suites (importers).
"""
