"""The session context: one unlocked vault for one acting user (DESIGN §5).

`Session` holds what every use case shares: the vault, the acting user, the clock, the
store (gpshare.store.port: the services' only way to the database) and the database key, and
the one access check (`_require`, from the table in gpshare/access.py). The use cases
themselves live in the service objects it creates: ``session.users``, ``session.practice``,
``session.assessments``, ``session.letters``, ``session.referrals``, ``session.lead``,
``session.audit_trail`` and ``session.backups``.
Every method takes the acting user from the session, checks the role, does its work in one
transaction and appends the audit event in that same transaction.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from gpshare import access
from gpshare.clock import Clock
from gpshare.errors import (
    NotFound,
    PasswordChangeRequired,
    PermissionDenied,
    ServiceError,
    ValidationFailed,
)
from gpshare.records import Record, User
from gpshare.services import _sealed_records, search_index
from gpshare.services._base import Service
from gpshare.services.assessments import AssessmentsService
from gpshare.services.audit import AuditTrailService
from gpshare.services.backups import BackupsService
from gpshare.services.breakglass import BreakglassService
from gpshare.services.followups import ReferralsService
from gpshare.services.keyring import SessionKeys
from gpshare.services.keys import KeysService
from gpshare.services.lead import LeadService
from gpshare.services.letters import LettersService
from gpshare.services.offline import OfflineDraftsService
from gpshare.services.search_index import IndexProgress, SearchIndexService
from gpshare.services.server import ServerService
from gpshare.services.settings import PracticeService
from gpshare.services.users import UsersService
from gpshare.services.views import ViewsService
from gpshare.store import anchor
from gpshare.store.errors import StoreError, WrongPasswordError
from gpshare.store.port import AuditEntry, ReadTx, RecordRow, Replica, Store, WriteTx
from gpshare.store.vault import Vault

T = TypeVar("T")


class Session:
    """An unlocked vault for one acting user. Close it (or lock) to drop the key."""

    # attribute -> service class; tests/test_access.py checks every public method of each.
    SERVICES: Mapping[str, type[Service]] = {
        "users": UsersService,
        "practice": PracticeService,
        "assessments": AssessmentsService,
        "letters": LettersService,
        "referrals": ReferralsService,
        "lead": LeadService,
        "audit_trail": AuditTrailService,
        "backups": BackupsService,
        "server": ServerService,
        "views": ViewsService,
        "directory": KeysService,
        "breakglass": BreakglassService,
        "search_index": SearchIndexService,
        "offline": OfflineDraftsService,
    }
    users: UsersService
    practice: PracticeService
    assessments: AssessmentsService
    letters: LettersService
    referrals: ReferralsService
    lead: LeadService
    audit_trail: AuditTrailService
    backups: BackupsService
    server: ServerService
    views: ViewsService
    directory: KeysService
    breakglass: BreakglassService
    search_index: SearchIndexService
    offline: OfflineDraftsService

    def __init__(
        self,
        vault: Vault,
        store: Store,
        user: User,
        db_key: bytes,
        user_secret: bytes,
        clock: Clock,
    ) -> None:
        self.vault = vault
        self._store: Store | None = store
        self.user = user
        self._db_key: bytes | None = db_key
        self._user_secret: bytes | None = user_secret
        self.clock = clock
        # Shared with worker sessions: one audited write at a time in this process, so the
        # chain head mirrored into vault.json only ever moves forward.
        self._write_lock = threading.RLock()
        self._owns_vault_lock = True
        self._workers: weakref.WeakSet[Session] = weakref.WeakSet()
        # True when this session was unlocked with the user's password (open_session): the
        # secret derived then may sign a letter in the same command (generate_letter(…, None)).
        self._password_unlocked = False
        # Vault version 2: the session's key ring (gpshare/services/keyring.py); None on a
        # format-1 vault. Dropped at close.
        self.keys: SessionKeys | None = None
        # Vault version 2: the version each record was last opened or saved at by this session,
        # the base of its next sealed save (a save over someone else's is refused).
        self._record_versions: dict[str, int] = {}
        # Vault version 2: each own draft's M row and answers commitment as last opened or saved
        # (what saving it to the offline cache needs without the server), and whether the
        # practice server was found unreachable (saves go to the cache until a flush succeeds;
        # gpshare/services/_offline_drafts.py). Shared with worker sessions.
        self._draft_rows: dict[str, tuple[RecordRow, bytes]] = {}
        self._server_offline = threading.Event()
        # A draft whose creation's COMMIT was cut off (SaveOutcomeUnknown): the next start
        # looks for it on the server before making another (gpshare/services/offline.py).
        self._uncertain_start: str | None = None
        # Vault version 2: this session's handle on the lead's search replica and the key it was
        # opened with (gpshare/services/search_index.py; one handle per thread), the rebuild
        # progress shared with worker sessions, and a clinician's in-memory search words
        # (record id -> words per column) with the audit seq they were read at. Dropped at close.
        self._replica: Replica | None = None
        self._replica_key: bytes | None = None
        self._index_progress = IndexProgress()
        self._own_index: dict[str, tuple[list[str], list[str]]] = {}
        self._own_index_seq = 0
        # What the user is told once at unlock (a practice server restored from a backup
        # since this computer last connected: when, by whom, how much was lost).
        self.notices: list[str] = []
        for name, service in self.SERVICES.items():
            setattr(self, name, service(self))

    @property
    def store(self) -> Store:
        """The open store (gpshare.store.port); the services' only way to the database."""
        if self._store is None:
            raise ServiceError("The vault is locked. Unlock it again to continue.")
        return self._store

    def _read(self) -> AbstractContextManager[ReadTx]:
        """A read snapshot of the store for a `with` block (no service calls inside it)."""
        return self.store.read()

    @property
    def db_key(self) -> bytes:
        if self._db_key is None:
            raise ServiceError("The vault is locked. Unlock it again to continue.")
        return self._db_key

    @property
    def is_open(self) -> bool:
        return self._store is not None

    def now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")

    def close(self) -> None:
        """Drop the key and the connection (lock or quit); stops any worker sessions' queries."""
        for worker in list(self._workers):
            worker.interrupt()
        self.checkpoint()
        if self._store is not None and self._db_key is not None:
            # Raise this computer's rollback anchor to the newest head seen (best effort).
            with contextlib.suppress(StoreError):
                with self._store.read() as tx:
                    head = tx.audit_head()
                number = self.vault.restore_number()
                anchor.write(
                    self.vault.vault_id,
                    self._db_key,
                    head.seq,
                    head.digest,
                    number,
                    self.vault.generation,
                )
        search_index.close(self)
        if self._store is not None:
            with contextlib.suppress(StoreError):
                self._store.close()
        self._store = None
        self._db_key = None
        self._user_secret = None
        if self.keys is not None and self._owns_vault_lock:
            # A worker shares its parent's ring: only the session that owns it drops it.
            self.keys.drop()
        if self._owns_vault_lock:
            self.vault.lock.release()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, without waiting for anyone.

        Called when the user is idle and at close, never in the save path (automatic
        checkpoints are off in the engine).
        """
        if self._store is not None:
            with contextlib.suppress(StoreError):
                self._store.checkpoint()

    def worker_session(self) -> Session:
        """The same user and key on a connection of its own, for one worker thread.

        SQLCipher connections are not shared between threads. Close it when the work ends
        (that closes only its connection); closing this session interrupts it.
        """
        worker = Session(self.vault, self.store.worker(), self.user, self.db_key, b"", self.clock)
        worker._write_lock = self._write_lock
        worker.keys = self.keys
        worker._record_versions = self._record_versions  # one editor: the same bases
        worker._draft_rows = self._draft_rows
        worker._server_offline = self._server_offline
        worker._index_progress = self._index_progress  # a rebuild's progress, seen by both
        worker._owns_vault_lock = False
        self._workers.add(worker)
        return worker

    def unreachable_since(self) -> datetime | None:
        """When this session (or one of its workers) found the practice server unreachable,
        until a step or a background retry reaches it again; None while it answers, on an
        embedded vault, and once locked. Reads no database (the window asks every second)."""
        store = self._store
        return store.unreachable_since() if store is not None else None

    def interrupt(self) -> None:
        """Abort the query running on this session's connection (from any thread)."""
        store = self._store
        if store is not None:
            store.interrupt()

    def _write(
        self,
        action: str,
        work: Callable[[WriteTx], T],
        record_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> T:
        """Run `work` and append its audit event in one transaction; mirror the chain head."""
        store = self.store
        entry = AuditEntry(actor or self.user.username, action, record_id, dict(details or {}))
        with self._write_lock:
            # The store appends `entry` in the same transaction as `work` (both or neither).
            with store.write(entry) as tx:
                result = work(tx)
            head = store.last_head
            self.vault.set_audit_head(self.db_key, head.seq, head.digest)
        return result

    def _write_unaudited(self, work: Callable[[WriteTx], T]) -> T:
        """Run `work` in one transaction with no audit event: only for an autosave coalesced
        into the draft's last audited save (assessments.save_draft)."""
        store = self.store
        with self._write_lock, store.maintenance() as tx:
            return work(tx)

    def audit(
        self, action: str, record_id: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        """Append a standalone audit event (views, prints, exports…)."""
        self._require("audit_event", record_id=record_id)
        self._write(action, lambda _tx: None, record_id, details)

    def _require(self, action: str, *, record_id: str | None = None) -> None:
        """Allow `action` for the acting user as gpshare.access says, else audit and refuse.

        A user who still has a one-time password may only change it (or lock).
        """
        allowed = access.POLICY.get(action)
        if allowed is None:
            # Fail closed: a new service method whose action is not in the table yet.
            raise self._deny(
                action,
                record_id,
                f"Not permitted: '{action}' has no rule in the access table (gpshare/access.py).",
            )
        if self.user.must_change_password and action not in access.WHILE_PASSWORD_CHANGE_PENDING:
            self._write(
                "permission_denied",
                lambda _tx: None,
                record_id,
                {"attempted": action, "role": self.user.role, "reason": "must_change_password"},
            )
            raise PasswordChangeRequired(
                "You are still using a one-time password: choose your own password before doing "
                f"anything else (run 'gpshare user passwd --user {self.user.username}', or unlock "
                "in the app, which asks for it)."
            )
        if self.user.role not in allowed:
            raise self._deny(
                action,
                record_id,
                f"Not permitted for your role ({self.user.role_title.lower()}): {action.replace('_', ' ')}. "
                "Ask a colleague with the right role.",
            )

    def _deny(self, action: str, record_id: str | None, why: str) -> PermissionDenied:
        # _write, not audit(): audit() itself is checked by _require.
        self._write(
            "permission_denied",
            lambda _tx: None,
            record_id,
            {"attempted": action, "role": self.user.role},
        )
        return PermissionDenied(why)

    def _readable(self, record_id: str, action: str) -> Record:
        """The record if the acting user may read it (its clinician, or a lead), else audit and
        refuse; every service checks record ownership through here."""
        if self.keys is not None:
            return _sealed_records.readable(self, record_id, action)[0]
        with self._read() as tx:
            record = tx.get_record(record_id)
        if record is None:
            raise NotFound(
                f"No record called {record_id}. Check the reference (it looks like SG-XXXX-XXXX)."
            )
        if self.user.role == "lead" or record.clinician == self.user.username:
            return record
        raise self._deny(
            action, record_id, "Not permitted for your role: you can only open your own records."
        )

    def _own_draft(self, record_id: str, action: str) -> Record:
        """The acting user's own draft, else audit and refuse (or say it is completed)."""
        if self.keys is not None:
            return _sealed_records.own_draft(self, record_id, action)[0]
        with self._read() as tx:
            record = tx.get_record(record_id)
        if record is None:
            raise NotFound(f"No record {record_id}.")
        if record.clinician != self.user.username:
            raise self._deny(
                action, record_id, "Not permitted: you can only change your own drafts."
            )
        if not record.is_draft:
            raise ValidationFailed(
                f"Record {record_id} is completed and cannot be changed; add an addendum instead.",
                [],
            )
        return record

    def lock(self, reason: str = "manual") -> None:
        """Audit the lock, then drop the key and the connection."""
        if self.is_open:
            with contextlib.suppress(StoreError):
                self.audit("lock", None, {"reason": reason})
        self.close()

    def _unlock_secret(self) -> bytes:
        """The user secret derived from the password this session was unlocked with."""
        if not self._password_unlocked or not self._user_secret:
            raise ServiceError("Type your password to sign the letter.")
        return self._user_secret

    def _verify_password(self, password: str) -> bytes:

        slot = self.vault.password_slot(self.user.username)
        opened = self.vault._open_slot(slot, password.encode("utf-8")) if slot else None
        if opened is None:
            self.audit("password_check_failed", None, {"username": self.user.username})
            raise WrongPasswordError(
                "That is not your current password. Type it again (check Caps Lock)."
            )
        return opened[1]
