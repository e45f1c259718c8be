"""A throwaway PostgreSQL cluster from Debian's `postgresql` package, for the tests and bench.

`initdb` refuses to run as root (and CI runs as root), so as root the server runs as the
`postgres` system user the package creates; otherwise as the current user. The cluster lives
in a fresh temp dir, listens only on a unix socket in that dir (no TCP port to collide on)
and trusts local connections: it holds nothing but test data and is deleted when stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_LIB = Path("/usr/lib/postgresql")
INSTALL_HINT = (
    "PostgreSQL's server binaries were not found under /usr/lib/postgresql/<version>/bin. "
    "The tests need a real PostgreSQL: run `bash scripts/run-tests.sh`, which installs "
    "Debian's `postgresql` package, or `apt-get install postgresql`."
)


def server_bin() -> Path:
    """The newest installed server's bin folder, or RuntimeError saying how to install one."""
    found = sorted(
        (p for p in PG_LIB.glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found[-1]


@dataclass
class Cluster:
    """A running cluster: connect with `dsn(dbname)` as its superuser."""

    root: Path
    bin: Path
    user: str
    _names: Iterator[int]
    port: int = 5432  # also names the unix socket; a TLS cluster listens on 127.0.0.1:port too

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        """A libpq connection string for `dbname` over the cluster's unix socket."""
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={user or self.user}"

    def tcp_dsn(self, dbname: str, **options: str) -> str:
        """A TLS cluster's address over TCP as a workstation would write it: host name
        `localhost` (the name in the server's certificate) at 127.0.0.1, and `options`."""
        extra = "".join(f" {k}={v}" for k, v in options.items())
        return f"host=localhost hostaddr=127.0.0.1 port={self.port} dbname={dbname}{extra}"

    def _server_file(self, name: str, data: bytes, mode: int = 0o644) -> Path:
        """Write a file the server reads (owned by its user when we are root)."""
        path = self.root / name
        path.write_bytes(data)
        os.chmod(path, mode)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def trust_workstations(self, hba_line: str, ca_pem: bytes) -> None:
        """What a practice's server administrator does after `gpshare server enrol`: the
        workstation CA as `ssl_ca_file` and pg_hba.conf = local trust (the tests' superuser)
        plus `hba_line` (the one enrol prints), then a reload."""
        import psycopg

        ca = self._server_file("workstation-ca.crt", ca_pem)
        hba = f"local all all trust\n{hba_line}\n".encode()
        self._server_file("data/pg_hba.conf", hba, 0o600)
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET ssl_ca_file = '{ca}'")
        # A restart rather than a reload: a reload is asynchronous, and the next connection
        # must see the new files.
        self._pg_ctl("restart")

    def _pg_ctl(self, action: str) -> None:
        subprocess.run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-l",
                str(self.root / "server.log"),
                "-w",
                action,
            ],  # fmt: skip
            check=True,
            capture_output=True,
            cwd=self.root,
            **_runner(self.user),  # type: ignore[arg-type]
        )

    def new_database(self) -> str:
        """Create an empty database for one test; returns its name."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def stop(self) -> None:
        """Stop the server (pg_ctl stop -m fast): every workstation loses it at once."""
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
            check=True, capture_output=True, cwd=self.root, **_runner(self.user),  # type: ignore[arg-type]
        )  # fmt: skip

    def start(self) -> None:
        """Start it again as `cluster` first did (pg_ctl start)."""
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-l",
             str(self.root / "server.log"), "-o", _options(self.root, self.port), "-w", "start"],
            check=True, capture_output=True, cwd=self.root, **_runner(self.user),  # type: ignore[arg-type]
        )  # fmt: skip

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _options(root: Path, port: int) -> str:
    """The server's settings: a unix socket in `root`/sock (and, for a TLS cluster — one with
    server.crt in `root` — 127.0.0.1:`port` with ssl on); no fsync (throwaway data)."""
    sock = root / "sock"
    cert, key = root / "server.crt", root / "server.key"
    listen = "127.0.0.1" if cert.exists() else "''"
    opts = (
        f"-c listen_addresses={listen} -c unix_socket_directories='{sock}' -c port={port}"
        " -c fsync=off -c max_connections=60"
    )
    if cert.exists():
        opts += f" -c ssl=on -c ssl_cert_file='{cert}' -c ssl_key_file='{key}'"
    return opts


def _runner(user: str) -> dict[str, object]:
    """subprocess arguments that run a command as `user` (as root) or as we are."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (the TLS cluster's)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cluster(
    keep_in: Path | None = None, tls: tuple[bytes, bytes] | None = None
) -> Iterator[Cluster]:
    """Start a cluster in a temp dir; stop it and delete the dir on exit (also on failure).
    With `keep_in` (the benchmarks' `--reuse`), the cluster lives in that folder: made there
    the first time, started again from it afterwards, and only stopped on exit. With `tls`
    (the server's certificate and key PEM), it also listens on 127.0.0.1 at a free port with
    ssl = on; Cluster.trust_workstations then sets its client CA and pg_hba.conf."""
    bindir = server_bin()
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError as exc:
            raise RuntimeError(
                "running as root, the tests start PostgreSQL as the `postgres` system user, "
                "which Debian's `postgresql` package creates; it is missing: " + INSTALL_HINT
            ) from exc
    else:
        user = pwd.getpwuid(os.geteuid()).pw_name
    if keep_in is None:
        root = Path(tempfile.mkdtemp(prefix="gpshare-pg-"))
    else:
        root = keep_in.resolve()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    as_user = _runner(user)
    data, sock, log = root / "data", root / "sock", root / "server.log"
    fresh = not (data / "PG_VERSION").exists()
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # the server's user must own its folder (mkdtemp made it 0700)
        entry = pwd.getpwnam(user)
        for path in (root, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    pg_ctl = str(bindir / "pg_ctl")
    port = 5432 if tls is None else _free_port()
    started = False
    try:
        try:
            if fresh:
                subprocess.run(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        user,
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--no-locale",
                        "--no-sync",
                    ],
                    check=True,
                    capture_output=True,
                    cwd=root,
                    **as_user,  # type: ignore[arg-type]
                )
            if tls is not None:
                tmp = Cluster(root, bindir, user, iter(()), port)
                tmp._server_file("server.crt", tls[0])
                tmp._server_file("server.key", tls[1], 0o600)
            subprocess.run(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    _options(root, port),
                    "-w",
                    "start",
                ],
                check=True,
                capture_output=True,
                cwd=root,
                **as_user,  # type: ignore[arg-type]
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace")
            if log.exists():
                detail += log.read_text(errors="replace")
            raise RuntimeError(f"could not start the test PostgreSQL: {detail.strip()}") from exc
        started = True
        yield Cluster(root, bindir, user, itertools.count(1), port)
    finally:
        if started:
            # A kept cluster shuts down cleanly (fsync is off: an immediate stop could lose it).
            mode = "immediate" if keep_in is None else "fast"
            subprocess.run(
                [pg_ctl, "-D", str(data), "-m", mode, "-w", "stop"],
                capture_output=True,
                cwd=root,
                **as_user,  # type: ignore[arg-type]
            )
        if keep_in is None:
            shutil.rmtree(root, ignore_errors=True)


def _workstation_role(cl: Cluster, dbname: str) -> str:
    """Create the workstation role of `dbname` (LOGIN, no superuser); its name."""
    import psycopg

    role = f"ws_{dbname}"
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
    return role


def add_audit_schema(cl: Cluster, dbname: str) -> str:
    """Create the audit chain's tables in `dbname` and a workstation role (LOGIN, no
    superuser) granted what gpshare.store.postgres.audit grants; returns the role's name."""
    import psycopg

    from gpshare.store.postgres import audit as pg_audit

    role = _workstation_role(cl, dbname)
    with psycopg.connect(cl.dsn(dbname)) as conn:
        pg_audit.create_schema(conn, role)
    return role


def append_many(
    dsn: str, key: bytes, worker: int, count: int, lock_head: bool = True
) -> list[float]:
    """One workstation process: `count` appends, each its own transaction on its own
    connection; returns each append's latency in seconds. With lock_head=False it times a
    bare INSERT of the same row shape instead (the benchmark's baseline; no chain)."""
    import time

    import psycopg

    from gpshare.store.port import AuditEntry
    from gpshare.store.postgres import audit as pg_audit

    times: list[float] = []
    with psycopg.connect(dsn) as conn:
        for i in range(count):
            entry = AuditEntry(f"ws{worker}", "draft_saved", f"rec-{worker}-{i}", {"n": i})
            start = time.perf_counter()
            if lock_head:
                pg_audit.append(conn, key, entry)
            else:
                conn.execute(
                    "INSERT INTO audit_bare (actor, action, record_id, details, prev_hash, hash)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (entry.actor, entry.action, entry.record_id, '{"n":0}', "0" * 64, "0" * 64),
                )
            conn.commit()
            times.append(time.perf_counter() - start)
    return times


def add_store_schema(cl: Cluster, dbname: str) -> str:
    """Create the practice server's tables (gpshare.store.postgres.engine.create_schema, the
    audit chain's included) in `dbname` and its workstation role (LOGIN, no superuser);
    returns the role's name."""
    import psycopg

    from gpshare.store.postgres import engine as pg_engine

    role = _workstation_role(cl, dbname)
    with psycopg.connect(cl.dsn(dbname)) as conn:
        pg_engine.create_schema(conn, role)
    return role


def drop_store_database(cl: Cluster, dbname: str, role: str) -> None:
    """Drop a database made with add_store_schema, then its workstation role (whose grants
    live in that database)."""
    import psycopg

    cl.drop_database(dbname)
    with psycopg.connect(cl.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def pg_dump(cl: Cluster, dsn: str) -> bytes:
    """What `pg_dump` of the database at `dsn` writes (as the cluster's superuser)."""
    return subprocess.run(
        [str(cl.bin / "pg_dump"), "-d", dsn],
        check=True,
        capture_output=True,
        cwd=cl.root,
        **_runner(cl.user),  # type: ignore[arg-type]
    ).stdout


def dump_holds(dump: bytes, marker: str) -> bool:
    """Whether a dump holds `marker` as text or as hex (how bytea columns are dumped)."""
    raw = marker.encode()
    return raw in dump or raw.hex().encode() in dump or marker.casefold().encode() in dump.lower()


def server_tls(host: str = "localhost") -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key) PEM for a TLS test cluster: a test CA
    of its own (not the workstation CA) and a server certificate naming only `host`, so
    sslmode=verify-full checks the host name too."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
              signer: ec.EllipticCurvePrivateKey) -> x509.Certificate:  # fmt: skip
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        if issuer is None:
            builder = builder.add_extension(x509.BasicConstraints(True, None), critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("gpshare test server CA", ca_key, None, ca_key)
    cert = build(host, key, ca.subject, ca_key)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
