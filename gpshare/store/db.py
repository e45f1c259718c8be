"""Transitional: removed when the services use the port (issue #12).

The old path of gpshare.store.sqlcipher.db. The module object itself is that module (see the
last line), so code and tests that patch `gpshare.store.db.X` patch what the engine calls.
"""

from __future__ import annotations

import sys

from gpshare.store.sqlcipher import db as _impl
from gpshare.store.sqlcipher.db import LATEST_SCHEMA_VERSION as LATEST_SCHEMA_VERSION
from gpshare.store.sqlcipher.db import Connection as Connection
from gpshare.store.sqlcipher.db import DatabaseError as DatabaseError
from gpshare.store.sqlcipher.db import IntegrityError as IntegrityError
from gpshare.store.sqlcipher.db import apply_migrations as apply_migrations
from gpshare.store.sqlcipher.db import checkpoint as checkpoint
from gpshare.store.sqlcipher.db import configure_process as configure_process
from gpshare.store.sqlcipher.db import integrity_problems as integrity_problems
from gpshare.store.sqlcipher.db import migration_files as migration_files
from gpshare.store.sqlcipher.db import open_database as open_database
from gpshare.store.sqlcipher.db import page_problems as page_problems
from gpshare.store.sqlcipher.db import pending_migrations as pending_migrations
from gpshare.store.sqlcipher.db import schema_version as schema_version
from gpshare.store.sqlcipher.db import sqlite3_split as sqlite3_split
from gpshare.store.sqlcipher.db import transaction as transaction

sys.modules[__name__] = _impl
