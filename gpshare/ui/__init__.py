"""Qt widgets only: they talk to gpshare.services, never to SQL.

Importing this package first applies the PySide6 6.12 / CPython 3.11 reference-count
workaround (see qt_refcount_guard), so every entry point that uses Qt is covered.
"""

from gpshare.ui import qt_refcount_guard

qt_refcount_guard.install()
