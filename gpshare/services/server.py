"""A practice server's administration (issue #14, DESIGN §10.3), for its administrator:
backup with pg_dump, restore as an epoch (the loss recorded in the chain, never a silent
rollback) and workstation enrolment (session.server). Only on a server folder: an embedded
vault has `session.backups` and `gpshare restore`."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from gpshare.errors import KeyNotHeld, ServiceError, StoreError
from gpshare.filters import AuditFilter
from gpshare.services import _integrity, practice_ca
from gpshare.services._base import Service
from gpshare.store import anchor, enrolment
from gpshare.store.files import atomic_write
from gpshare.store.port import ReadTx, WrappedKey
from gpshare.store.postgres import tls

# What a workstation's pg_hba.conf line looks like (DESIGN §10.2: TLS client certificates).
HBA_LINE = "hostssl {db} +{group} 0.0.0.0/0 cert"

# The workstation CA (gpshare.store.postgres.tls) lives in the server's settings (MACed rows):
# its certificate, and its key sealed as the practice CA's is, wrapped for administrators.
_CA_CERT, _CA_COMMIT, _CA_KEY = (
    "workstation_ca_cert",
    "workstation_ca_commitment",
    "workstation_ca_key",
)
WS_CA_NOT_HELD = (
    "Only a practice administrator whose key a safeguarding lead has confirmed can issue "
    "workstation certificates: ask the lead to confirm your key, or ask the administrator who "
    "enrolled the first workstation to sign in once so the workstation CA is shared with you."
)


def stored_workstation_ca(tx: ReadTx) -> WrappedKey | None:
    """The workstation CA's certificate and sealed key from the settings, or None."""
    values = tx.get_settings()
    if not all(values.get(k) for k in (_CA_CERT, _CA_COMMIT, _CA_KEY)):
        return None
    return WrappedKey(
        values[_CA_CERT].encode(),
        base64.b64decode(values[_CA_COMMIT]),
        base64.b64decode(values[_CA_KEY]),
    )


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

    def workstation_ca_pem(self) -> bytes:
        """Admin: the workstation CA's certificate (for the server's `ssl_ca_file`), made on
        first use (a `workstation_ca_created` event) with its key wrapped for the acting
        administrator and every other administrator whose key a lead has confirmed."""
        self._require("enrol_workstation")
        self._server()
        return self._workstation_ca()[1]

    def _workstation_ca(self, *, open_key: bool = False) -> tuple[bytes | None, bytes]:
        """(key PEM when `open_key`, certificate PEM) of the workstation CA, creating it."""
        session = self._session
        keys = session.keys
        if keys is None or keys.user_keys is None:
            raise KeyNotHeld(WS_CA_NOT_HELD)
        with session._read() as tx:
            stored = stored_workstation_ca(tx)
            if stored is not None:
                if not open_key:
                    return None, stored.cert_pem
                try:
                    kind = practice_ca.WORKSTATION_CA
                    return practice_ca.open_ca(tx, keys, stored, kind), stored.cert_pem
                except KeyNotHeld as exc:
                    raise KeyNotHeld(WS_CA_NOT_HELD) from exc
            admins = [keys.own_recipient(), *practice_ca.pending_shares(tx, keys)]
        key_pem, cert_pem = tls.create_workstation_ca(
            session.vault.practice_name, session.clock.now()
        )
        now = session.now_iso()
        commit, sealed, wraps = practice_ca.seal_ca(
            keys.vault_id, key_pem, admins, now, practice_ca.WORKSTATION_CA
        )

        def work(tx: Any) -> None:
            tx.put_settings(
                {
                    _CA_CERT: cert_pem.decode(),
                    _CA_COMMIT: base64.b64encode(commit).decode(),
                    _CA_KEY: base64.b64encode(sealed).decode(),
                }
            )
            tx.add_object_wraps(wraps)

        session._write("workstation_ca_created", work, details={"for": [a.id for a in admins]})
        return key_pem, cert_pem

    def enrol(
        self,
        workstation: str,
        *,
        group_role: str,
        revoke: bool = False,
        dsn: str | None = None,
        out: Path | None = None,
        csr: Path | None = None,
    ) -> dict[str, str]:
        """Admin: give a workstation its own LOGIN role in `group_role` (or, with revoke,
        retire it); returns the role and the pg_hba.conf line the server needs. Enrolment
        also issues its TLS client certificate (common name = the role) from the workstation
        CA into that folder: client.crt, the CA's certificate and, unless `csr` (a request
        made on the workstation with its own key) is given, a new client.key (0600). The
        certificate's serial is in the `workstation_enrolled` event; a revoke names the
        serials it retires. Audited."""
        from gpshare.store.postgres import integrity
        from gpshare.store.postgres.header import server_name

        self._require("enrol_workstation")
        vault = self._server()
        if out is None and not revoke:
            raise ServiceError(
                "Give a folder for the workstation's certificate (--out FOLDER): enrolment "
                "issues client.crt there, and client.key unless a request (--csr) is given."
            )
        target = dsn or vault.dsn
        try:
            role = integrity.workstation_role(workstation)
        except ValueError as exc:
            raise StoreError(str(exc)) from exc
        issued: tls.Issued | None = None
        files: dict[str, bytes] = {}
        if out is not None and not revoke:
            # Everything that can be refused is checked before the role exists.
            folder = Path(out)
            if csr is not None:
                public = tls.read_csr(_read(Path(csr), "certificate request (--csr)"), role)
            else:
                key, files[tls.CLIENT_KEY] = tls.new_key()
                public = key.public_key()
            secret = vault.check_enrolment_secret()
            if secret is not None:
                # Beside the certificate: the workstation needs it before any password works.
                files[enrolment.FILE_NAME] = (enrolment.format_secret(secret) + "\n").encode()
            ca_key, ca_cert = self._workstation_ca(open_key=True)
            assert ca_key is not None
            issued = tls.issue_client_cert(ca_key, ca_cert, role, public, self._session.clock.now())
            files |= {tls.CLIENT_CERT: issued.cert_pem, tls.WORKSTATION_CA_FILE: ca_cert}
            taken = [name for name in files if (folder / name).exists()]
            if taken:
                raise StoreError(
                    f"{folder} already holds {', '.join(taken)}: give an empty folder (--out) "
                    "for this workstation's certificate."
                )
        try:
            integrity.enrol_on(target, workstation, group_role, revoke_it=revoke)
        except ValueError as exc:
            raise StoreError(str(exc)) from exc
        details: dict[str, Any] = {"workstation": workstation, "role": role}
        if issued is not None:
            details["serial"] = issued.serial
            _write_files(Path(out or "."), files)
        if revoke:
            details["serials"] = self._serials(role)
        action = "workstation_revoked" if revoke else "workstation_enrolled"
        self._session.audit(action, None, details)
        db = _dbname(target)
        result = {
            "role": role,
            "server": server_name(target),
            "hba": HBA_LINE.format(db=db, group=group_role),
        }
        if issued is not None:
            result |= {"serial": issued.serial, "out": str(out)}
            if enrolment.FILE_NAME in files:
                result["enrolment_secret"] = str(Path(str(out)) / enrolment.FILE_NAME)
        if revoke:
            result["serials"] = ", ".join(details["serials"])
        return result

    def adopt_enrolment_secret(self) -> str:
        """Admin: give a practice server made before enrolment secrets one (DESIGN §10.3):
        a new secret, every shared key slot sealed under it in one header save (a
        `header_saved` event) and an `enrolment_secret_adopted` event; kept on this computer.
        Returns the secret, grouped, to print for the break-glass envelope and to give to the
        other workstations. Users' bundles and password slots are re-sealed with it at each
        user's next sign-in."""
        self._require("adopt_enrolment_secret")
        vault = self._server()
        if vault.kdf_mix is not None:
            raise ServiceError(
                "This practice server already has an enrolment secret. To give it to a "
                "workstation, enrol the workstation (gpshare server enrol) or type it there from "
                "the break-glass envelope."
            )
        session = self._session
        secret = enrolment.new_secret()
        before = json.loads(json.dumps(vault.header))
        with session._write_lock:
            enrolment.keep(vault.folder, vault.vault_id, secret)
            try:
                sealed = vault.adopt_enrolment_secret(session.db_key, secret)
                vault.save(session.db_key)
            except BaseException:
                vault.header, vault.enrolment_secret = before, None
                enrolment.forget(vault.folder, vault.vault_id)
                raise
        session.audit("enrolment_secret_adopted", None, {"slots_sealed": sealed})
        return enrolment.format_secret(secret)

    def enrolment_secret_text(self) -> str | None:
        """Admin: the practice's enrolment secret, grouped (for a new break-glass envelope),
        or None when the practice has none."""
        self._require("adopt_enrolment_secret")
        secret = self._session.vault.check_enrolment_secret()
        return enrolment.format_secret(secret) if secret is not None else None

    def _serials(self, role: str) -> list[str]:
        """The serials of every certificate issued to `role` (from the enrolment events)."""
        flt = AuditFilter(action="workstation_enrolled")
        with self._session._read() as tx:
            events = tx.audit_events(flt, None, 0)
        return [
            str(e.details["serial"])
            for e in events
            if e.details.get("role") == role and e.details.get("serial")
        ]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"Cannot read the {what} {path}: {exc.strerror}.") from exc


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write a workstation's certificate files (private ones 0600, the folder 0700)."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, data in files.items():
            atomic_write(folder / name, data)
            private = name in (tls.CLIENT_KEY, enrolment.FILE_NAME)
            os.chmod(folder / name, 0o600 if private else 0o644)
    except OSError as exc:
        raise StoreError(
            f"Cannot write the certificate files to {folder}: {exc.strerror}."
        ) from exc


def _dbname(dsn: str) -> str:
    for part in dsn.split():
        key, _, value = part.partition("=")
        if key == "dbname":
            return value
    return "all"


def request_certificate(folder: Path, workstation: str, out: Path) -> str:
    """On the workstation, before it joins: make its TLS key in `folder` (client.key, 0600;
    it never leaves this computer) and write a certificate request for its database role to
    `out`, for the administrator's `gpshare server enrol --csr`. Returns the role."""
    from gpshare.store.postgres import integrity
    from gpshare.store.vault import HEADER_NAME

    try:
        role = integrity.workstation_role(workstation)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    folder, out = Path(folder), Path(out)
    for taken in (folder / HEADER_NAME, folder / tls.CLIENT_KEY, out):
        if taken.exists():
            raise StoreError(
                f"{taken} already exists: give an empty workstation folder (--vault) and a new "
                "file name for the request (--out)."
            )
    key, key_pem = tls.new_key()
    _write_files(folder, {tls.CLIENT_KEY: key_pem})
    try:
        atomic_write(out, tls.make_csr(role, key))
    except OSError as exc:
        (folder / tls.CLIENT_KEY).unlink(missing_ok=True)
        raise StoreError(f"Cannot write the request {out}: {exc.strerror}.") from exc
    return role
