"""A practice server's administration (issue #14, DESIGN §10.3), for its administrator:
backup with pg_dump, restore as an epoch (the loss recorded in the chain, never a silent
rollback) and workstation enrolment (session.server). Only on a server folder: an embedded
vault has `session.backups` and `gpshare restore`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpshare.errors import ServiceError, StoreError
from gpshare.services import _integrity
from gpshare.services._base import Service
from gpshare.store import anchor

# What a workstation's pg_hba.conf line looks like (DESIGN §10.2: TLS client certificates).
HBA_LINE = "hostssl {db} +{group} 0.0.0.0/0 cert"


class ServerService(Service):
    """Backup, restore and enrolment on the practice server this folder points at."""

    def _server(self) -> Any:
        vault = self._session.vault
        if vault.engine != "postgres":
            raise ServiceError(
                "This vault is on this computer, not on a practice server: use "
                "'gpshare backup' and 'gpshare restore' (Admin › Backups) instead."
            )
        return vault

    def backup(self, out: Path, *, dsn: str | None = None, bindir: Path | None = None) -> Path:
        """Admin: back the server up to `out` (pg_dump: ciphertext and MACed rows only); the
        backup holds its own `server_backup_created` event. Refuses to overwrite a file."""
        self._require("backup")
        vault = self._server()
        out = Path(out)
        if out.exists():
            raise StoreError(f"{out} already exists: choose a new file name for the backup.")
        self._session.audit("server_backup_created", None, {"file": out.name})
        try:
            from gpshare.store.postgres import integrity

            integrity.dump(dsn or vault.dsn, out, bindir)
            os.chmod(out, 0o600)
        except StoreError as exc:
            self._session.audit("backup_failed", None, {"reason": exc.__class__.__name__})
            raise
        return out

    def restore(
        self, source: Path, *, dsn: str | None = None, bindir: Path | None = None
    ) -> dict[str, Any]:
        """Admin: replace the server's database with a backup made by `backup`, then record
        the restore as an epoch (`backup_restored`: old and restored heads, events lost) and
        save the restored header above every generation a workstation has seen. Returns the
        event's details. A file that is not such a backup is refused before anything changes."""
        from gpshare.store.postgres import integrity

        self._require("restore")
        vault = self._server()
        source = Path(source)
        integrity.check_dump(source, bindir)
        store = self._session.store
        with store.read() as tx:
            old, old_epoch = tx.audit_head(), _integrity.restore_epoch(tx.get_settings())
        above = vault.newest_generation()
        integrity.restore_dump(dsn or vault.dsn, source, bindir)
        actor = self._session.user.username
        try:
            with self._session._write_lock:
                details = _integrity.record_restore(store, actor, old, old_epoch)
                vault.adopt_restored(self._session.db_key, above)
        except StoreError as exc:
            # The old rows are back but the epoch is not recorded: without it every
            # workstation that saw newer events raises the rollback alarm, so say what to do.
            raise StoreError(
                f"The server's database was restored from {source.name}, but recording the "
                f"restore failed ({exc}). Run the same 'gpshare server restore' again before "
                "anyone signs in; until then workstations will show the rollback alarm."
            ) from exc
        # This computer has now seen the restored chain: its next unlock raises no notice.
        seen = _integrity.seen_now(store)
        vault.set_audit_head(self._session.db_key, seen.seq, seen.hash)
        anchor.write(vault.vault_id, self._session.db_key, seen.seq, seen.hash, seen.restores)
        return details

    def enrol(
        self, workstation: str, *, group_role: str, revoke: bool = False, dsn: str | None = None
    ) -> dict[str, str]:
        """Admin: give a workstation its own LOGIN role in `group_role` (or, with revoke,
        retire it); returns the role and the pg_hba.conf line the server needs. Audited."""
        from gpshare.store.postgres import integrity
        from gpshare.store.postgres.header import server_name

        self._require("enrol_workstation")
        vault = self._server()
        target = dsn or vault.dsn
        try:
            role = integrity.enrol_on(target, workstation, group_role, revoke_it=revoke)
        except ValueError as exc:
            raise StoreError(str(exc)) from exc
        action = "workstation_revoked" if revoke else "workstation_enrolled"
        self._session.audit(action, None, {"workstation": workstation, "role": role})
        db = _dbname(target)
        return {
            "role": role,
            "server": server_name(target),
            "hba": HBA_LINE.format(db=db, group=group_role),
        }


def _dbname(dsn: str) -> str:
    for part in dsn.split():
        key, _, value = part.partition("=")
        if key == "dbname":
            return value
    return "all"
