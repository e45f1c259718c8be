"""The vault header on a practice server (DESIGN §10.3, issue #14).

On an embedded vault the header (key slots, the break-glass slot, disabled users, the KDF
defaults, its MAC) is the folder's vault.json. On a practice server it lives in the database,
so every workstation unlocks with the same slots: `vault_header` holds one row per keyed save
(a generation counter), the body MACed under HKDF(practice, "header-mac") exactly as vault.json
is, and the same transaction appends a `header_saved` audit event naming the generation and
the body's SHA-256, so a header is valid only if its hash is in the chain. Failed-unlock
counters and reports (written before anyone holds a key, outside vault.json's MAC too) live in
`vault_unlock_reports`.

A workstation's folder keeps only a pointer, its vault.json: the server's DSN (never a
password: libpq's PGPASSWORD, ~/.pgpass or a service file supply it), the practice's vault id
and name, and what it pins: the SHA-256 of the first header generation and the highest
generation it has seen (an older one on the server is refused as a rollback).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gpshare.clock import Clock
from gpshare.errors import (
    DatabaseError,
    EnrolmentSecretError,
    NotAVaultError,
    RollbackError,
    ServerUnreachableError,
    StoreError,
    TamperedError,
)
from gpshare.store import enrolment
from gpshare.store.audit import GENESIS
from gpshare.store.crypto import KdfParams
from gpshare.store.files import atomic_write
from gpshare.store.keys.binding import PracticeKey
from gpshare.store.port import AuditEntry, AuditHead
from gpshare.store.postgres import audit as pg_audit
from gpshare.store.postgres import tls
from gpshare.store.practice_keys import PracticeKeys
from gpshare.store.vault import (
    FORMAT,
    HEADER_NAME,
    PRACTICE_KEY_FORMAT,
    NewVault,
    Vault,
    id_check,
)

ENGINE = "postgres"
HEADER_SAVED = "header_saved"
# The fields of the header kept outside its MAC and its table row (see the module docstring).
_REPORTS = ("failed_unlocks", "pending_failures")


def server_name(dsn: str) -> str:
    """The server as a person can name it (host, port, database; never a password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(an unreadable server address)"
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{host}{port}/{parts.get('dbname') or parts.get('user') or '(default database)'}"


def check_dsn(dsn: str) -> None:
    """Refuse a DSN that cannot be kept in a workstation's vault.json (a password, or text
    libpq cannot read), with what to do instead."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise StoreError(
            f"The server address (--dsn) is not a libpq connection string ({exc}). Write it as "
            "'host=SERVER dbname=gpshare user=ROLE sslmode=verify-full sslrootcert=CA.pem'."
        ) from exc
    if parts.get("password"):
        raise StoreError(
            "The server address (--dsn) contains a password, which would be stored in vault.json "
            "in plain text. Remove it and let libpq supply it (PGPASSWORD, ~/.pgpass or a "
            "service file)."
        )


def resolve_dsn(dsn: str, folder: Path) -> str:
    """`dsn` with the TLS files it names relative to a workstation folder (client.crt …)
    made absolute, so the folder can move with its files; other DSNs are returned as given."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return dsn  # connect() names the fault
    relative = {
        k: str(Path(folder).absolute() / str(v))
        for k, v in parts.items()
        if k in ("sslcert", "sslkey", "sslrootcert", "sslcrl")
        and v
        and not Path(str(v)).is_absolute()
    }
    return make_conninfo(dsn, **relative) if relative else dsn


def dsn_warning(dsn: str) -> str | None:
    """What is unsafe about how `dsn` reaches the server, or None: a workstation should
    check the server's certificate and host name (sslmode=verify-full), else a machine that
    answers at the server's address could collect what it sends. A unix-socket DSN (the
    server on this computer) needs no TLS."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return None  # check_dsn refuses it
    hosts = [h for h in str(parts.get("host") or "").split(",") if h]
    if not parts.get("hostaddr") and all(h.startswith("/") for h in hosts):
        return None
    where = ", ".join(hosts) or str(parts.get("hostaddr"))
    mode = str(parts.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer")
    if mode == "verify-full":
        return None
    if mode == "verify-ca":
        return (
            f"Warning: the server address uses sslmode=verify-ca, which checks that the server's "
            f"certificate comes from a trusted CA but not that it was issued for {where}: another "
            "server with a certificate from the same CA could pose as the practice server. Use "
            "sslmode=verify-full."
        )
    return (
        f"Warning: the server address does not verify the server (sslmode={mode}): this "
        f"computer would connect to whatever machine answers at {where}"
        + (", possibly without encryption" if mode in ("disable", "allow", "prefer") else "")
        + ", and send it the practice's encrypted records and users' sign-in attempts. Join "
        "again with sslmode=verify-full and the server's CA certificate (--server-ca FILE, or "
        "sslrootcert=FILE in --dsn)."
    )


# libpq's wording when the server is up but refuses the role (revoked, unknown, wrong password,
# no pg_hba line for this computer).
_REFUSALS = (
    "not permitted to log in",
    "authentication failed",
    "no pg_hba.conf entry",
)


# The server's TLS alerts when it does not accept this computer's client certificate (from
# another CA, expired, none given where pg_hba.conf says `cert`).
_CERT_REFUSALS = (
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert certificate required",
    "requires a valid client certificate",
)
# libpq's wording when the server's own certificate does not verify (sslmode=verify-…).
_SERVER_NOT_PROVEN = ("does not match host name", "certificate verify failed")


# What gpshare adds to a workstation's DSN so that no step waits on a dead network for longer
# than a practice LAN needs (a few milliseconds a round trip): libpq gives up connecting after
# `connect_timeout` s, drops a connection whose sent data stays unacknowledged for
# `tcp_user_timeout` ms (a server switched off, a cable pulled: without it TCP retransmits for
# many minutes), and probes an idle one with keepalives (a reply that never comes). A value the
# administrator wrote in the DSN (or PGCONNECT_TIMEOUT) wins; libpq ignores the TCP ones on a
# unix socket.
LAN_OPTIONS = {
    "connect_timeout": "4",
    "tcp_user_timeout": "4000",
    "keepalives": "1",
    "keepalives_idle": "2",
    "keepalives_interval": "1",
    "keepalives_count": "2",
}
_OPTION_ENV = {"connect_timeout": "PGCONNECT_TIMEOUT"}


def with_lan_options(dsn: str) -> str:
    """`dsn` with each of LAN_OPTIONS it (or libpq's environment) does not set already."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return dsn  # connect() names the fault
    added = {
        k: v
        for k, v in LAN_OPTIONS.items()
        if k not in parts and not os.environ.get(_OPTION_ENV.get(k, ""), "")
    }
    return make_conninfo(dsn, **added) if added else dsn


def timed_out(exc: BaseException) -> bool:
    """True when `exc` says the server did not answer in time (a dropped network, a host that
    is off), as opposed to a server that answered "no" at once."""
    text = str(exc).lower()
    return isinstance(exc, psycopg.errors.ConnectionTimeout) or any(
        sign in text for sign in ("timed out", "timeout expired")
    )


def connect(dsn: str) -> psycopg.Connection:
    """A connection to the practice server, or ServerUnreachableError naming it."""
    try:
        return psycopg.connect(with_lan_options(dsn), autocommit=False)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if any(sign in reason for sign in _SERVER_NOT_PROVEN):
            raise ServerUnreachableError(
                f"The server at {server_name(dsn)} did not prove it is the practice server "
                f"({reason}), so this computer sent it nothing. Check the server address and "
                "the server's CA certificate (sslrootcert) with the practice administrator; do "
                "not lower sslmode to get past this."
            ) from exc
        if any(sign in reason for sign in _CERT_REFUSALS):
            raise ServerUnreachableError(
                f"The practice server {server_name(dsn)} refused this computer's sign-in: it "
                f"does not accept this computer's TLS client certificate ({reason}). Ask the "
                "practice administrator to enrol this workstation (gpshare server enrol) and "
                "join with the certificate it gives; nothing has been changed."
            ) from exc
        if any(sign in reason for sign in _REFUSALS) or (
            'role "' in reason and "does not exist" in reason
        ):
            # The server answered and said no: telling the user to check the network would
            # send them the wrong way (a retired workstation, a revoked role, a bad password).
            raise ServerUnreachableError(
                f"The practice server {server_name(dsn)} refused this computer's sign-in "
                f"({reason}). This workstation may have been retired or its database role "
                "revoked: ask the practice administrator to enrol it again (gpshare server "
                "enrol); nothing has been changed."
            ) from exc
        raise ServerUnreachableError(
            f"Cannot reach the practice server {server_name(dsn)} ({reason}). Check that this "
            "computer is on the practice network and that the server is running, then try "
            "again; nothing has been changed. If it persists, tell the practice administrator."
        ) from exc


def _local(slot: Any) -> bool:
    """A remembered-login slot: its secret is in one computer's keyring, so it stays in that
    workstation's folder (vault.json), never in the practice's shared header."""
    return isinstance(slot, dict) and slot.get("type") == "os-keyring"


def _shared(header: dict[str, Any]) -> dict[str, Any]:
    """The header as the server keeps it: without this computer's remembered logins."""
    slots = header.get("slots")
    if not isinstance(slots, list):
        return dict(header)
    return {**header, "slots": [s for s in slots if not _local(s)]}


def _canonical(header: dict[str, Any]) -> str:
    body = {k: v for k, v in _shared(header).items() if k not in _REPORTS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _local_mac(keys: bytes, slots: list[dict[str, Any]]) -> str:
    """The MAC of a workstation's remembered-login slots, under the header-MAC key."""
    mac_key = keys.header_mac if isinstance(keys, PracticeKeys) else b""
    canonical = json.dumps(slots, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(mac_key, b"local-slots:" + canonical, hashlib.sha256).hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _newest(conn: psycopg.Connection, name: str) -> tuple[int, dict[str, Any], str]:
    """(generation, header, sha256) of the newest header on the server, checked against its
    hash and the chain's `header_saved` event."""
    try:
        row = conn.execute(
            "SELECT generation, body, sha256 FROM vault_header ORDER BY generation DESC LIMIT 1"
        ).fetchone()
    except psycopg.errors.UndefinedTable as exc:
        raise NotAVaultError(
            f"The database {name} is not a gpshare practice server (it has no header table). "
            "Check the address, or create the practice with 'gpshare server init'."
        ) from exc
    if row is None:
        raise NotAVaultError(
            f"The database {name} holds no gpshare practice yet (its header is empty): "
            "'gpshare server init' did not finish. Ask the practice administrator."
        )
    generation, body, stored = int(row[0]), str(row[1]), str(row[2])
    chained = conn.execute(
        "SELECT 1 FROM audit WHERE action = %s AND details::jsonb ->> 'sha256' = %s "
        "AND (details::jsonb ->> 'generation')::bigint = %s",
        (HEADER_SAVED, _sha(body), generation),
    ).fetchone()
    if _sha(body) != stored or chained is None:
        raise TamperedError(
            f"The practice header on {name} (generation {generation}) is not the one its audit "
            "log records: it was edited on the server. Do not use the server: tell the practice "
            "administrator."
        )
    header = json.loads(body)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise NotAVaultError(f"The header on {name} is not a gpshare practice header.")
    return generation, header, stored


class ServerVault(Vault):
    """A workstation folder whose header lives on a practice server (see the module)."""

    engine = ENGINE

    def __init__(
        self, folder: Path, header: dict[str, Any], pointer: dict[str, Any] | None = None
    ) -> None:
        super().__init__(folder, header)
        self.pointer: dict[str, Any] = dict(pointer or {})
        self._digest = ""
        self._generation = 0
        self._head = AuditHead(0, GENESIS)

    @property
    def dsn(self) -> str:
        """The server's libpq connection string (no password), its TLS files resolved
        against this folder."""
        return resolve_dsn(str(self.pointer["dsn"]), self.folder)

    @property
    def server_name(self) -> str:
        """The server as a person can name it."""
        return server_name(self.dsn)

    @property
    def generation(self) -> int:
        """The header generation this workstation holds."""
        return self._generation

    # ----- the pointer (the workstation's vault.json) --------------------------------------

    @classmethod
    def from_pointer(cls, folder: Path, pointer: dict[str, Any]) -> ServerVault:
        """Open a workstation folder: read its pointer's server and load the header there."""
        if not isinstance(pointer.get("dsn"), str):
            raise TamperedError(
                f"{folder}/{HEADER_NAME} names no practice server: it was damaged or edited. "
                "Join the server again ('gpshare server join --dsn DSN --vault DIR')."
            )
        vault = cls(Path(folder), {}, pointer)
        vault.reload()
        return vault

    def _write_pointer(self) -> None:
        data = json.dumps(self.pointer, indent=2, sort_keys=True).encode("utf-8")
        atomic_write(self.header_path, data)

    @staticmethod
    def pointer_for(dsn: str, header: dict[str, Any], genesis: str) -> dict[str, Any]:
        """A workstation's vault.json for this server and practice header."""
        return {
            "format": FORMAT,
            "format_version": PRACTICE_KEY_FORMAT,
            "engine": ENGINE,
            "dsn": dsn,
            "vault_id": header["vault_id"],
            "id_check": id_check(str(header["vault_id"])),
            "practice_name": header.get("practice_name", ""),
            "genesis_sha256": genesis,
            "header_generation": 0,
        }

    # ----- loading and saving the header ----------------------------------------------------

    def reload(self) -> None:
        """Load the newest header (and the unlock reports) from the server, checking it is the
        practice this folder joined and no older than a header it has seen."""
        name = self.server_name
        with connect(self.dsn) as conn:
            generation, header, _sha256 = _newest(conn, name)
            first = conn.execute("SELECT body FROM vault_header WHERE generation = 1").fetchone()
            reports = conn.execute("SELECT body FROM vault_unlock_reports").fetchone()
            head = pg_audit.head(conn)
        if header.get("vault_id") != self.pointer.get("vault_id"):
            raise TamperedError(
                f"The practice server {name} holds a different practice "
                f"('{header.get('practice_name', '')}') from the one this workstation joined "
                f"('{self.pointer.get('practice_name', '')}'). Nothing has been changed. Check "
                f"the server address in {self.header_path}."
            )
        genesis = self.pointer.get("genesis_sha256")
        if genesis and (first is None or _sha(str(first[0])) != genesis):
            raise TamperedError(
                f"The first header of the practice on {name} is not the one this workstation "
                "pinned when it joined: the practice was replaced on the server. Do not use it: "
                "tell the practice administrator."
            )
        seen = int(self.pointer.get("header_generation") or 0)
        if generation < seen:
            raise RollbackError(
                f"The practice server {name} holds header generation {generation}, but this "
                f"workstation has seen generation {seen}: the server was rolled back. Nothing "
                "has been changed. Tell the practice administrator."
            )
        extra = json.loads(str(reports[0])) if reports else {}
        header = {**_shared(header), **{k: extra[k] for k in _REPORTS if k in extra}}
        local = self.pointer.get("keyring_slots")
        if isinstance(local, list):
            header["slots"] = [*header.get("slots", []), *(s for s in local if _local(s))]
        self.header = header
        self._digest = _sha256
        self._generation = generation
        self._head = head
        if generation > seen:
            self.pointer["header_generation"] = generation
            self._write_pointer()

    def save(self, db_key: bytes) -> None:
        """Seal the header and append it as the next generation, with its `header_saved`
        event (one transaction); refused when another workstation saved one meanwhile."""
        body, digest = self._sealed_body(db_key)
        if digest == self._digest:
            # Only this computer's remembered logins changed: nothing new for the server.
            self._write_pointer()
            return
        before = (self._generation, self._digest, self._head, dict(self.pointer))
        try:
            with connect(self.dsn) as conn, conn.transaction():
                self.save_in(conn, db_key, body, digest)
        except BaseException as exc:
            # Not saved: this workstation still holds the generation it had.
            self._generation, self._digest, self._head, self.pointer = before
            if isinstance(exc, psycopg.errors.UniqueViolation):
                raise StoreError(
                    "The practice's key slots were changed on another workstation at the same "
                    "moment, so this change was not saved. Try again."
                ) from exc
            if isinstance(exc, psycopg.Error):
                raise DatabaseError(
                    f"the practice server {self.server_name} refused the header: {exc}"
                ) from exc
            raise
        self._write_pointer()

    def _sealed_body(self, db_key: bytes) -> tuple[str, str]:
        """Seal the header; (the body the server keeps, its SHA-256). This computer's
        remembered-login slots go to its pointer, MACed on their own."""
        if not isinstance(db_key, PracticeKeys):
            raise StoreError("A practice server's header is saved with the practice key only.")
        self.seal(db_key)
        local = [s for s in self.slots() if _local(s)]
        self.pointer["keyring_slots"] = local
        self.pointer["keyring_mac"] = _local_mac(db_key, local)
        body = _canonical(self.header)
        return body, _sha(body)

    def save_in(
        self, conn: psycopg.Connection, db_key: bytes, body: str = "", digest: str = ""
    ) -> AuditHead:
        """Append the sealed header as the next generation with its `header_saved` event
        inside the caller's transaction (`gpshare server migrate` writes the first one in
        the transaction that fills the server); the pointer is written by the caller."""
        if not body:
            body, digest = self._sealed_body(db_key)
        assert isinstance(db_key, PracticeKeys)  # _sealed_body refused any other key
        generation = self._generation + 1
        entry = AuditEntry(
            "workstation", HEADER_SAVED, None, {"generation": generation, "sha256": digest}
        )
        conn.execute(
            "INSERT INTO vault_header (generation, body, sha256, created) "
            "VALUES (%s, %s, %s, now()::text)",
            (generation, body, digest),
        )
        head = pg_audit.append(conn, db_key.audit, entry)
        self._write_reports(conn)
        self._generation = generation
        self._digest = digest
        self._head = head
        if generation == 1:
            self.pointer["genesis_sha256"] = digest
        self.pointer["header_generation"] = generation
        return head

    def adopt_restored(self, db_key: bytes, above: int) -> None:
        """After the server was restored from a backup: load the restored header (older than
        the generation this workstation pinned), check its MAC, and save it again as a
        generation above `above` (the newest any workstation saw before the restore), so
        every workstation accepts it and the header matches the restored rows."""
        self.pointer["header_generation"] = 0
        self.reload()
        self.verify_mac(db_key)
        self._generation = max(self._generation, above)
        self._digest = ""  # saved again even though its body is unchanged
        self.save(db_key)

    def newest_generation(self) -> int:
        """The newest header generation the server holds now."""
        with connect(self.dsn) as conn:
            row = conn.execute("SELECT max(generation) FROM vault_header").fetchone()
        return int(row[0] or 0) if row else 0

    def _mac(self, db_key: bytes) -> str:
        """The header MAC over what the server keeps (remembered logins have their own)."""
        full = self.header
        self.header = _shared(full)
        try:
            return super()._mac(db_key)
        finally:
            self.header = full

    def verify_mac(self, db_key: bytes) -> None:
        """The shared header's MAC; this computer's remembered-login slots are forgotten when
        their own MAC fails."""
        super().verify_mac(db_key)
        local = [s for s in self.slots() if _local(s)]
        stored = str(self.pointer.get("keyring_mac", ""))
        if local and not hmac.compare_digest(stored, _local_mac(db_key, local)):
            # Edited outside gpshare: forget them (a typed password still unlocks).
            self.header["slots"] = [s for s in self.slots() if not _local(s)]
            self.pointer.pop("keyring_slots", None)
            self._write_pointer()

    def _write_reports(self, conn: psycopg.Connection) -> None:
        reports = json.dumps({k: self.header.get(k) for k in _REPORTS}, sort_keys=True)
        conn.execute(
            "INSERT INTO vault_unlock_reports (one, body) VALUES (true, %s) "
            "ON CONFLICT (one) DO UPDATE SET body = excluded.body",
            (reports,),
        )

    def _write(self) -> None:
        """Keyless: store only the failed-unlock counters and reports (outside the MAC)."""
        with connect(self.dsn) as conn, conn.transaction():
            self._write_reports(conn)

    def confirm_unlock(self, username: str, clock: Clock) -> None:
        """Clear the reports and the user's counter on the server too (a server header is
        not re-saved after every event, as vault.json is)."""
        super().confirm_unlock(username, clock)
        self._write()

    # ----- what vault.json mirrors and a server keeps itself --------------------------------

    def audit_head(self) -> tuple[int, str]:
        """The chain head as this workstation last saw it (loaded, or after its own writes):
        the server's own head row is the chain's; rollback is caught by this computer's
        anchor (gpshare.store.anchor) and the pinned header generation."""
        return self._head.seq, self._head.digest

    def set_audit_head(self, db_key: bytes, seq: int, hash_hex: str) -> None:
        """Remember the head in memory: appends from every workstation would contend on a
        header row rewritten after each event."""
        self._head = AuditHead(seq, hash_hex)

    def set_integrity_checked(self, db_key: bytes, when: Any) -> None:
        """Nothing to record: a server has no page MACs to check daily."""


def prepare_database(dsn: str, workstation_role: str) -> None:
    """Create the schema in an empty database (refusing any other, naming what is there), and
    the workstation role (NOLOGIN, granted least privilege) when it does not exist."""
    name = server_name(dsn)
    with connect(dsn) as conn:
        try:
            with conn.transaction():
                prepare_in(conn, name, workstation_role)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Creating the practice's tables on {name} failed ({exc}); nothing was kept. The "
                "role in --dsn must own the database (and may create roles, or the workstation "
                "role must exist already)."
            ) from exc
        conn.commit()


def prepare_in(conn: psycopg.Connection, name: str, workstation_role: str) -> bool:
    """`prepare_database` inside the caller's transaction (so a failure later in it leaves the
    database as empty as it was): StoreError unless the database has no tables; creates the
    workstation role when missing (returns whether it did), the schema and its grants."""
    from gpshare.store.postgres.engine import create_schema

    tables = [
        str(r[0])
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
    ]
    if tables:
        shown = ", ".join(tables[:5]) + (" …" if len(tables) > 5 else "")
        raise StoreError(
            f"The database {name} is not empty ({len(tables)} tables: {shown}), so nothing "
            "was changed. The practice needs a new, empty database (createdb -O OWNER "
            "gpshare); to add this computer to an existing practice use 'gpshare server join'."
        )
    exists = conn.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", (workstation_role,)
    ).fetchone()
    if exists is None:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(workstation_role)))
    create_schema(conn, workstation_role)
    conn.execute(
        sql.SQL("GRANT SELECT, INSERT ON vault_header TO {}").format(
            sql.Identifier(workstation_role)
        )
    )
    return exists is None


def create_server_vault(
    folder: Path,
    dsn: str,
    *,
    practice_name: str,
    admin_username: str,
    admin_password: str,
    clock: Clock,
    kdf: KdfParams | None = None,
) -> NewVault:
    """The practice's first header on the server (as Vault.create_v2 makes vault.json: the
    admin's and the recovery slot, a break-glass slot) and the workstation folder's pointer.
    A new enrolment secret is mixed into every slot; the header keeps only its check value,
    and this workstation keeps the secret (gpshare/store/enrolment.py)."""
    vault, params = ServerVault._new(folder, practice_name, clock, kdf, PRACTICE_KEY_FORMAT)
    assert isinstance(vault, ServerVault)
    vault.pointer = ServerVault.pointer_for(dsn, vault.header, "")
    secret = _first_secret(vault)
    keys = PracticeKeys(PracticeKey.generate(), vault.vault_id)
    user_secret, recovery = vault._first_slots(keys, admin_username, admin_password, params)
    breakglass = vault._add_breakglass_slot(params)
    vault.save(keys)
    if secret is not None:
        enrolment.keep(folder, vault.vault_id, secret)
    return NewVault(vault, keys, user_secret, recovery, breakglass, secret)


def _first_secret(vault: ServerVault) -> bytes | None:
    """A new practice's enrolment secret, in its header (`kdf_mix`, the check value) before
    any slot is made, so every slot is mixed. (Tests replace it to make a server as versions
    before the enrolment secret did, to adopt one later.)"""
    secret = enrolment.new_secret()
    vault.header["kdf_mix"] = enrolment.KDF_MIX
    vault.header["enrolment_secret_check"] = enrolment.check_value(secret, vault.vault_id)
    vault.enrolment_secret = secret
    return secret


def join_server(
    folder: Path,
    dsn: str,
    files: Mapping[str, Path] | None = None,
    secret: bytes | None = None,
) -> ServerVault:
    """Make `folder` a workstation of the practice on the server at `dsn`: check it holds a
    gpshare practice whose header is in its chain, and pin its vault id and first header.
    `files` maps libpq's sslcert/sslkey/sslrootcert to files to copy into the folder (as
    client.crt, client.key 0600, server-ca.crt), which the folder's DSN then names relative to
    the folder; a client.key already there (made by `server request-cert`) is used as is.
    `secret`, the practice's enrolment secret, is checked against the header (a wrong one is
    refused, nothing kept) and kept on this workstation (gpshare.store.enrolment.keep)."""
    folder = Path(folder)
    if (folder / HEADER_NAME).exists():
        raise StoreError(
            f"{folder} already holds a vault ({HEADER_NAME}); choose an empty folder for this "
            "workstation."
        )
    name = server_name(dsn)
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StoreError(f"Cannot create the folder {folder}: {exc.strerror}.") from exc
    copied: list[Path] = []
    try:
        dsn = _place_tls_files(folder, dsn, dict(files or {}), copied)
        with connect(resolve_dsn(dsn, folder)) as conn:
            _generation, header, _digest = _newest(conn, name)
            first = conn.execute("SELECT body FROM vault_header WHERE generation = 1").fetchone()
        if header.get("format_version") != PRACTICE_KEY_FORMAT or first is None:
            raise NotAVaultError(f"The practice on {name} is not a vault of version 2.")
        if secret is not None and header.get("kdf_mix") is None:
            raise StoreError(
                f"The practice on {name} uses no enrolment secret: leave out the secret, or "
                "check that this is the practice's server."
            )
        if secret is not None and not enrolment.matches(
            secret, str(header["vault_id"]), header.get("enrolment_secret_check")
        ):
            raise EnrolmentSecretError(enrolment.MISMATCH, "mismatch")
    except BaseException:
        for path in copied:  # leave the folder as it was given
            path.unlink(missing_ok=True)
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    vault = ServerVault(folder, header, ServerVault.pointer_for(dsn, header, _sha(str(first[0]))))
    vault._write_pointer()
    if secret is not None:
        enrolment.keep(folder, vault.vault_id, secret)
        vault.enrolment_secret = secret
    vault.reload()
    return vault


def _place_tls_files(folder: Path, dsn: str, files: dict[str, Path], copied: list[Path]) -> str:
    """Copy the given TLS files into `folder` (recording each in `copied`) and return `dsn`
    naming them relative to it; the client certificate's common name becomes the DSN's user
    when it names none, and is refused when it names another role."""
    if "sslcert" in files and "sslkey" not in files and (folder / tls.CLIENT_KEY).is_file():
        files["sslkey"] = folder / tls.CLIENT_KEY  # made here by request-cert
    if ("sslcert" in files) != ("sslkey" in files):
        raise StoreError(
            "Give the client certificate and its key together (--client-cert and --client-key), "
            "or make the key on this computer first with 'gpshare server request-cert'."
        )
    data: dict[str, bytes] = {}
    for option, source in files.items():
        try:
            data[option] = Path(source).read_bytes()
        except OSError as exc:
            raise StoreError(f"Cannot read {source}: {exc.strerror}.") from exc
    options: dict[str, str] = {}
    if "sslcert" in data:
        tls.check_pair(data["sslcert"], data["sslkey"])
        role, _serial = tls.describe(data["sslcert"])
        user = conninfo_to_dict(dsn).get("user")
        if user and user != role:
            raise StoreError(
                f"The client certificate is for the database role {role}, but the server "
                f"address (--dsn) says user={user}. Use user={role}, or leave user= out."
            )
        options["user"] = role
    for option, raw in data.items():
        target = folder / tls.FOLDER_FILES[option]
        if Path(files[option]).resolve() != target.resolve():
            atomic_write(target, raw)
            copied.append(target)
        os.chmod(target, 0o600 if option == "sslkey" else 0o644)
        options[option] = tls.FOLDER_FILES[option]
    return make_conninfo(dsn, **options) if options else dsn
