"""The PostgreSQL engine for the practice server (issue #14; groundwork: the audit chain).

Only this package imports psycopg (an import-linter contract says so).
"""
