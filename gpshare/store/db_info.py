"""Facts about the bundled SQLCipher library, for `gpshare --version` and support reports."""

from __future__ import annotations

import sqlcipher3


def sqlcipher_version() -> str:
    """E.g. "4.19.0 community (SQLite 3.53.4)", read from an in-memory connection (no key)."""
    conn = sqlcipher3.connect(":memory:")
    try:
        row = conn.execute("PRAGMA cipher_version").fetchone()
        sqlite = conn.execute("SELECT sqlite_version()").fetchone()
    finally:
        conn.close()
    cipher = str(row[0]) if row and row[0] else "unknown (not SQLCipher?)"
    return f"{cipher} (SQLite {sqlite[0]})" if sqlite else cipher
