"""`gpshare server …`: a practice on a PostgreSQL server (issue #14, DESIGN §10.2–10.3).

`server init` creates the practice on an empty database (schema, the least-privilege
workstation role) with this folder as its first workstation; `server join` makes another
folder a workstation of the same server; `server migrate` moves an embedded version-2 vault
onto an empty database instead (gpshare/services/move_to_server.py). Every other command then works unchanged with
`--vault DIR`: the folder's vault.json names the server and holds no keys.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpshare.errors import ServiceError

EXIT_OK = 0

Handler = Callable[[argparse.Namespace], int]


def target(args: argparse.Namespace) -> Any:
    """The ServerTarget `server init` creates the practice on."""
    from gpshare.services.vaults import ServerTarget

    return ServerTarget(args.dsn, args.role)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def print_enrolment_secret(secret: str, folder: Path) -> None:
    """The enrolment secret as `server init` and `server migrate` show it (once)."""
    print("\nENROLMENT SECRET — put it in the break-glass envelope too. It is shown only once:\n")
    print(f"    {secret}\n")
    print(
        f"This computer keeps it (the OS keystore, or {folder}/enrolment.secret). No password "
        "works on a computer without it, and a copy of the server is useless without it. "
        "'gpshare server enrol' gives it to each workstation with its certificate."
    )


def _given_secret(args: argparse.Namespace) -> bytes | None:
    """The enrolment secret from --enrolment-secret FILE or, with --type-enrolment-secret,
    typed (hidden on a terminal; one line on standard input otherwise)."""
    import getpass
    import sys

    from gpshare.services.vaults import parse_enrolment_secret, read_enrolment_secret_file

    if args.enrolment_secret and args.type_enrolment_secret:
        raise ServiceError(
            "Give the enrolment secret once: either --enrolment-secret FILE or "
            "--type-enrolment-secret."
        )
    if args.enrolment_secret:
        return read_enrolment_secret_file(Path(args.enrolment_secret))
    if not args.type_enrolment_secret:
        return None
    if sys.stdin.isatty():
        typed = getpass.getpass("Enrolment secret (from the break-glass envelope): ")
    else:
        typed = sys.stdin.readline()
    return parse_enrolment_secret(typed, "The enrolment secret you typed")


def _secret_options(q: Any) -> None:
    q.add_argument(
        "--enrolment-secret",
        metavar="FILE",
        help="the enrolment.secret file 'server enrol' wrote (must be readable only by you)",
    )
    q.add_argument(
        "--type-enrolment-secret",
        action="store_true",
        help="type the enrolment secret from the break-glass envelope instead (asked for)",
    )


def cmd_join(args: argparse.Namespace) -> int:
    """Make --vault another workstation folder of the practice on --dsn."""
    import sys

    from gpshare.services.vaults import (
        ServerTarget,
        join_server,
        needs_enrolment_secret,
        server_dsn_warning,
    )

    practice = join_server(
        Path(args.vault),
        args.dsn,
        client_cert=_path(args.client_cert),
        client_key=_path(args.client_key),
        server_ca=_path(args.server_ca),
        enrolment_secret=_given_secret(args),
    )
    name = ServerTarget(args.dsn).name
    # Checked on the DSN as given: --server-ca adds sslrootcert but not the sslmode.
    warning = server_dsn_warning(args.dsn)
    if warning:
        print(warning, file=sys.stderr)
    if needs_enrolment_secret(Path(args.vault)):
        print(
            "Warning: this computer was not given the practice's enrolment secret, so nobody "
            "can sign in here yet. Give it with 'gpshare server enrolment-secret --vault "
            f"{args.vault} --enrolment-secret FILE' (the file from 'server enrol') or "
            "'--type-enrolment-secret' (from the break-glass envelope).",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({"vault": str(args.vault), "practice": practice, "server": name}))
        return EXIT_OK
    print(
        f"This computer's folder {args.vault} is now a workstation of {practice} on the "
        f"practice server {name}. Each user signs in with their own username and password "
        f"(for example 'gpshare records --vault {args.vault} --user USERNAME')."
    )
    return EXIT_OK


_DSN_HELP = (
    "the server as a libpq connection string without a password, e.g. 'host=SERVER "
    "dbname=gpshare user=ROLE sslmode=verify-full sslrootcert=CA.pem' (the password comes "
    "from PGPASSWORD, ~/.pgpass or a service file)"
)


WithSession = Callable[[argparse.Namespace, Callable[[Any], int]], int]


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    print(json.dumps(data) if args.json else text)
    return EXIT_OK


def _bindir(args: argparse.Namespace) -> Path | None:
    return Path(args.pg_bin) if args.pg_bin else None


def cmd_backup(args: argparse.Namespace, with_session: WithSession) -> int:
    """`server backup`: pg_dump the practice server to --out (ciphertext only)."""

    def work(s: Any) -> int:
        out = s.server.backup(Path(args.out), dsn=args.dsn, bindir=_bindir(args))
        return _emit(
            args,
            {"backup": str(out)},
            f"The practice server was backed up to {out}. It holds only ciphertext and MACed "
            "rows; keep it with the practice's other backups.",
        )

    return with_session(args, work)


def cmd_restore(args: argparse.Namespace, with_session: WithSession) -> int:
    """`server restore`: replace the server's database with a backup, recorded as an epoch."""

    def work(s: Any) -> int:
        d = s.server.restore(Path(args.source), dsn=args.dsn, bindir=_bindir(args))
        return _emit(
            args,
            d,
            f"The practice server was restored from {args.source}: its audit log went back "
            f"from event {d['old_head']['seq']} to event {d['restored_head']['seq']} "
            f"({d['events_lost']} events lost), recorded as restore {d['epoch']}. Each "
            "workstation is told of the loss once at its next sign-in.",
        )

    return with_session(args, work)


def cmd_enrol(args: argparse.Namespace, with_session: WithSession) -> int:
    """`server enrol`: a workstation's own database role and TLS client certificate (or
    --revoke it)."""

    def work(s: Any) -> int:
        d = s.server.enrol(
            args.workstation,
            group_role=args.role,
            revoke=args.revoke,
            dsn=args.dsn,
            out=_path(args.out),
            csr=_path(args.csr),
        )
        if args.revoke:
            serials = f" (certificate serials {d['serials']})" if d.get("serials") else ""
            text = (
                f"Workstation {args.workstation} (role {d['role']}) can no longer sign in to "
                f"{d['server']}{serials}: its role lost LOGIN, which is what stops its "
                "certificate. The role is kept so the audit trail still names it."
            )
        else:
            carry = "client.crt" if args.csr else "client.crt and client.key (keep it secret)"
            if d.get("enrolment_secret"):
                carry += ", and enrolment.secret (keep it secret too)"
            text = (
                f"Workstation {args.workstation} is enrolled as the database role {d['role']} on "
                f"{d['server']}, with a TLS client certificate (serial {d['serial']}) in "
                f"{d['out']}. Add this line to the server's pg_hba.conf (if it is not there "
                f"yet), set ssl_ca_file to {d['out']}/workstation-ca.crt and reload "
                f"PostgreSQL:\n  {d['hba']}\nCarry {carry} to the workstation and run there: "
                f"gpshare server join --dsn 'host=SERVER dbname=… sslmode=verify-full' "
                f"--server-ca SERVER-CA.crt --client-cert client.crt"
                + ("" if args.csr else " --client-key client.key")
                + (" --enrolment-secret enrolment.secret" if d.get("enrolment_secret") else "")
                + " --vault FOLDER"
            )
        return _emit(args, d, text)

    return with_session(args, work)


def cmd_enrolment_secret(
    args: argparse.Namespace, with_session: WithSession, typed_back: Callable[..., None]
) -> int:
    """`server enrolment-secret`: with --enrolment-secret FILE or --type-enrolment-secret,
    give this workstation the practice's secret; otherwise (administrator, --user) give a
    server made before enrolment secrets one."""
    from gpshare.services.vaults import give_enrolment_secret

    given = _given_secret(args)
    if given is not None:
        where = give_enrolment_secret(Path(args.vault), given)
        return _emit(
            args,
            {"kept": where},
            f"The enrolment secret matches the practice server's and is kept in {where}. Users "
            "can now sign in on this computer.",
        )
    if not args.user:
        raise ServiceError(
            "Give this computer the secret (--enrolment-secret FILE or --type-enrolment-secret), "
            "or, as an administrator (--user ADMIN), give the practice server one (or --show "
            "it again for a new break-glass envelope)."
        )

    def show(s: Any) -> int:
        secret = s.server.enrolment_secret_text()
        if secret is None:
            raise ServiceError(
                "This practice has no enrolment secret: give the server one with 'gpshare "
                "server enrolment-secret --vault DIR --user ADMIN'."
            )
        return _emit(args, {"enrolment_secret": secret}, secret)

    if args.show:
        return with_session(args, show)

    def work(s: Any) -> int:
        secret = s.server.adopt_enrolment_secret()
        if args.json:
            return _emit(args, {"enrolment_secret": secret}, "")
        print(
            "The practice server now has an enrolment secret: every key slot is sealed under "
            "it, and each user's keys are re-sealed with it at their next sign-in."
        )
        print_enrolment_secret(secret, Path(args.vault))
        print(
            "Every other workstation needs it before anyone can sign in there: enrol it again "
            "(gpshare server enrol) or type it there (gpshare server enrolment-secret --vault "
            "DIR --type-enrolment-secret). Put it in the break-glass envelope."
        )
        typed_back("enrolment secret", secret, "The secret was made")
        return EXIT_OK

    return with_session(args, work)


def cmd_migrate(
    args: argparse.Namespace,
    password: Callable[[argparse.Namespace], str],
    typed_back: Callable[..., None],
) -> int:
    """`server migrate`: move the embedded vault --from-vault onto the empty database --dsn and
    make --vault a workstation folder of it."""
    import sys

    from gpshare.services.move_to_server import move_to_server

    def progress(stage: str, done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

    moved = move_to_server(
        Path(args.source),
        args.dsn,
        Path(args.vault),
        args.user,
        password(args),
        workstation_role=args.role,
        progress=progress,
    )
    data = {
        "vault": str(moved.folder),
        "server": moved.server,
        "practice": moved.practice,
        "counts": moved.counts,
        "source_head": {"seq": moved.source_head[0], "hash": moved.source_head[1]},
        "head": {"seq": moved.head[0], "hash": moved.head[1]},
        "enrolment_secret": moved.enrolment_secret,
    }
    if not args.json:
        print_enrolment_secret(moved.enrolment_secret, moved.folder)
        typed_back("enrolment secret", moved.enrolment_secret, "The move was done")
    return _emit(
        args,
        data,
        f"{moved.practice} was moved onto the practice server {moved.server}: "
        f"{moved.counts['records']} records, {moved.counts['letters']} letters and "
        f"{moved.counts['audit']} audit events, checked row for row. {moved.folder} is now "
        f"this computer's workstation folder: each user signs in there with their usual "
        f"username and password (for example 'gpshare records --vault {moved.folder} --user "
        f"USERNAME'); other computers join with 'gpshare server join'.\n"
        f"The old vault in {args.source} was not changed. Stop using it: work saved there "
        "does not reach the server. Keep it unchanged until the server has been backed up "
        "('gpshare server backup') and that backup checked, then archive or securely delete "
        "it as the practice's records policy says.",
    )


def cmd_ca_cert(args: argparse.Namespace, with_session: WithSession) -> int:
    """`server ca-cert`: the workstation CA's certificate, for the server's ssl_ca_file."""
    out = Path(args.out)

    def work(s: Any) -> int:
        pem = s.server.workstation_ca_pem()
        if out.exists():
            raise ServiceError(f"{out} already exists: choose a new file name (--out).")
        out.write_bytes(pem)
        return _emit(
            args,
            {"ca_cert": str(out)},
            f"The workstation CA's certificate is in {out}. Point the server's ssl_ca_file at "
            "it and reload PostgreSQL: only workstations enrolled with 'gpshare server enrol' "
            "can then present a client certificate it accepts.",
        )

    return with_session(args, work)


def cmd_request_cert(args: argparse.Namespace) -> int:
    """`server request-cert`: the workstation's own TLS key and a request for its certificate."""
    from gpshare.services.server import request_certificate

    role = request_certificate(Path(args.vault), args.workstation, Path(args.out))
    return _emit(
        args,
        {"role": role, "request": str(args.out)},
        f"This computer's TLS key is in {args.vault} (it never leaves this computer). Give "
        f"{args.out} to the practice administrator, who runs 'gpshare server enrol "
        f"--workstation {args.workstation} --csr {Path(args.out).name} --out FOLDER'; then join "
        "with the client.crt they give back (--client-cert).",
    )


def _admin_options(q: Any, common: Callable[..., None], dsn_help: str) -> None:
    common(q)
    q.add_argument("--dsn", help=dsn_help)
    q.add_argument("--pg-bin", help="the folder holding pg_dump/pg_restore (default: PATH)")


def add_commands(
    sub: Any,
    common: Callable[..., None],
    *,
    init: Handler,
    typed_back: Callable[..., None],
    with_session: WithSession,
    verify: Callable[[Any, argparse.Namespace], int],
    password: Callable[[argparse.Namespace], str] | None = None,
) -> None:
    """Add `server init|join|request-cert|backup|restore|verify|enrol|ca-cert|migrate` to the
    top-level sub-parsers
    (`common` adds --vault/--user/--json/--password-stdin; `init` runs the v2 init on a
    ServerTarget; `with_session` runs a command in a signed-in session; `verify` is
    `audit verify --rows`; `password` reads the acting user's password, for `migrate`)."""
    p = sub.add_parser(
        "server",
        help="a practice server (PostgreSQL): init, join, backup, restore, verify, enrol, migrate",
    )
    ssub = p.add_subparsers(dest="server_command", required=True)
    q = ssub.add_parser("init", help="create the practice on an empty PostgreSQL database")
    common(q, user=False)
    q.add_argument("--dsn", required=True, help=_DSN_HELP)
    q.add_argument("--practice", required=True)
    q.add_argument("--admin", required=True, help="the first administrator's username")
    q.add_argument("--name", help="the administrator's full name")
    q.add_argument("--lead", help="the first safeguarding lead (types their own password)")
    q.add_argument("--lead-name", help="with --lead: the lead's full name")
    q.add_argument("--lead-gmc", help="with --lead: the lead's GMC number")
    q.add_argument(
        "--role",
        default="gpshare_workstation",
        help="the database role workstations act as (created NOLOGIN if missing; grant it to "
        "each workstation's login role)",
    )
    q.set_defaults(func=init)
    q = ssub.add_parser("join", help="make this folder a workstation of a practice server")
    common(q, user=False)
    q.add_argument("--dsn", required=True, help=_DSN_HELP)
    q.add_argument(
        "--client-cert", help="this workstation's client.crt from 'server enrol' (copied in)"
    )
    q.add_argument(
        "--client-key",
        help="its client.key from 'server enrol' (not needed after 'server request-cert')",
    )
    q.add_argument("--server-ca", help="the CA certificate the server's own certificate is from")
    _secret_options(q)
    q.set_defaults(func=cmd_join)
    q = ssub.add_parser(
        "request-cert",
        help="make this workstation's TLS key here and a certificate request for 'server enrol'",
    )
    common(q, user=False)
    q.add_argument("--workstation", required=True, help="its name, as the administrator enrols it")
    q.add_argument("--out", required=True, help="the request file to write (.csr)")
    q.set_defaults(func=cmd_request_cert)
    owner = (
        "a connection string for a role that owns the tables (default: this folder's server "
        "connection); no password in it: libpq's PGPASSWORD, ~/.pgpass or a service file"
    )
    q = ssub.add_parser("backup", help="administrator: back the practice server up (pg_dump)")
    _admin_options(q, common, owner)
    q.add_argument("--out", required=True, help="the backup file to write (must not exist)")
    q.set_defaults(func=lambda a: cmd_backup(a, with_session))
    q = ssub.add_parser("restore", help="administrator: restore the practice server from a backup")
    _admin_options(q, common, owner)
    q.add_argument("--from", dest="source", required=True, help="a 'server backup' file")
    q.set_defaults(func=lambda a: cmd_restore(a, with_session))
    q = ssub.add_parser(
        "verify", help="lead or administrator: the chain, every sealed row and every witness"
    )
    common(q)
    q.set_defaults(func=lambda a: with_session(a, lambda s: verify(s, a)))
    q = ssub.add_parser(
        "enrol", help="administrator: a workstation's own database role (or --revoke it)"
    )
    _admin_options(q, common, "a connection string for a role allowed to create roles")
    q.add_argument("--workstation", required=True, help="its name: letters, digits, _")
    q.add_argument("--revoke", action="store_true", help="retire the workstation's role")
    q.add_argument(
        "--out", help="the folder for its certificate: client.crt, client.key, workstation-ca.crt"
    )
    q.add_argument("--csr", help="a request from 'server request-cert' (no key is made here)")
    q.add_argument(
        "--role",
        default="gpshare_workstation",
        help="the workstation group role given at 'server init' (default gpshare_workstation)",
    )
    q.set_defaults(func=lambda a: cmd_enrol(a, with_session))
    q = ssub.add_parser(
        "ca-cert", help="administrator: the workstation CA certificate for ssl_ca_file"
    )
    common(q)
    q.add_argument("--out", required=True, help="the file to write (must not exist)")
    q.set_defaults(func=lambda a: cmd_ca_cert(a, with_session))
    q = ssub.add_parser(
        "enrolment-secret",
        help="give this workstation the practice's enrolment secret, or (administrator, "
        "--user) give a practice server made without one its secret",
    )
    common(q, user=False)
    q.add_argument("--user", help="an administrator's username (to give the server a secret)")
    q.add_argument(
        "--show",
        action="store_true",
        help="administrator: print the practice's secret again (for a new break-glass envelope)",
    )
    _secret_options(q)
    q.set_defaults(func=lambda a: cmd_enrolment_secret(a, with_session, typed_back))
    if password is not None:
        read = password
        q = ssub.add_parser(
            "migrate",
            help="administrator: move an embedded version-2 vault onto an empty PostgreSQL "
            "database (--vault is the new workstation folder)",
        )
        common(q)
        q.add_argument(
            "--from-vault", dest="source", required=True, help="the embedded vault's folder"
        )
        q.add_argument("--dsn", required=True, help=_DSN_HELP)
        q.add_argument(
            "--role",
            default="gpshare_workstation",
            help="the database role workstations act as (created NOLOGIN if missing)",
        )
        q.set_defaults(func=lambda a: cmd_migrate(a, read, typed_back))
