"""`gpshare …` sub-commands over the same services the desktop app uses.

Exit codes: 0 ok, 1 error, 2 validation failure. Passwords come only from
--password-stdin or GPSHARE_PASSWORD (or a terminal prompt), never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from gpshare import __version__, cli_server
from gpshare.errors import PermissionDenied, StoreError, ValidationFailed
from gpshare.followup import EVENTS as FOLLOWUP_EVENTS
from gpshare.paths import default_vault_dir

EXIT_OK, EXIT_ERROR, EXIT_INVALID = 0, 1, 2


class CliError(Exception):
    """Stop with a message and an exit code (and the field or option at fault, if one is)."""

    def __init__(self, message: str, code: int = EXIT_ERROR, field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class Args(argparse.Namespace):
    command: str
    vault: Path
    user: str
    json: bool
    password_stdin: bool


def _fail(message: str, code: int = EXIT_ERROR, field: str = "") -> NoReturn:
    raise CliError(message, code, field)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


_stdin_lines: list[str] | None = None


def _stdin_line(index: int) -> str | None:
    global _stdin_lines
    if _stdin_lines is None:
        _stdin_lines = sys.stdin.read().splitlines() if not sys.stdin.isatty() else []
    return _stdin_lines[index] if index < len(_stdin_lines) else None


def read_password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    """The acting user's password: --password-stdin, GPSHARE_PASSWORD, or a terminal prompt."""
    if getattr(args, "password_stdin", False):
        line = _stdin_line(0)
        if not line:
            _fail("--password-stdin was given but standard input is empty.")
        return line
    env = os.environ.get("GPSHARE_PASSWORD")
    if env:
        return env
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    _fail(
        "No password given: use --password-stdin or set GPSHARE_PASSWORD (never put it on the command line)."
    )


def read_new_password(args: argparse.Namespace, fallback: str | None, who: str) -> str:
    """A new password: GPSHARE_NEW_PASSWORD, else asked twice on a terminal, else `fallback`."""
    env = os.environ.get("GPSHARE_NEW_PASSWORD")
    if env:
        return env
    if sys.stdin.isatty():
        first = getpass.getpass(f"New password for {who}: ")
        if first != getpass.getpass("Type it again: "):
            _fail("The two passwords do not match; nothing was changed.", EXIT_INVALID)
        return first
    if fallback is not None:
        return fallback
    _fail("No new password given: set GPSHARE_NEW_PASSWORD.")


MAX_TEXT_FILE_BYTES = 100_000


def clinical_text(
    args: argparse.Namespace, inline: str | None, path: str | None, option: str
) -> str | None:
    """Narrative text from `--OPTION-file FILE` or `-` (standard input), else from argv.

    Text given on the command line is visible to other local users (`ps`) and kept in shell
    history, so it still works but earns a warning.
    """
    if inline is not None:
        print(
            f"gpshare: warning: --{option} puts clinical text on the command line, where other users "
            f"of this computer can see it (ps) and shell history keeps it. Use --{option}-file FILE, "
            f"or --{option}-file - to read it from standard input.",
            file=sys.stderr,
        )
        return inline
    if path is None:
        return None
    if path == "-":
        if sys.stdin.isatty():
            return sys.stdin.read(MAX_TEXT_FILE_BYTES + 1)
        _stdin_line(0)  # reads and keeps all of standard input
        lines = _stdin_lines or []
        # With --password-stdin the first line is the password; the text follows it.
        return "\n".join(lines[1:] if getattr(args, "password_stdin", False) else lines)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TEXT_FILE_BYTES + 1)
    except OSError as exc:
        _fail(f"Cannot read the --{option}-file {path}: {exc.strerror}.", EXIT_INVALID, option)
    if len(raw) > MAX_TEXT_FILE_BYTES:
        _fail(
            f"The --{option}-file {path} is over {MAX_TEXT_FILE_BYTES // 1000} kB; "
            "it should hold only the text to add.",
            EXIT_INVALID,
            option,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"The --{option}-file {path} is not UTF-8 text.", EXIT_INVALID, option)


def _session(args: argparse.Namespace) -> Any:
    from gpshare.services import open_session

    session = open_session(Path(args.vault), args.user, read_password(args))
    for notice in session.notices:  # e.g. a practice server restored since the last unlock
        print(f"gpshare: {notice}", file=sys.stderr)
    return session


def _with_session(args: argparse.Namespace, work: Callable[[Any], int]) -> int:
    session = _session(args)
    try:
        _oversight_lines(session)
        return work(session)
    finally:
        session.close()


def _oversight_lines(session: Any) -> None:
    """Leads and admins of a version-2 vault: the break-glass banner and the last-lead notice,
    one line each on standard error (standard output stays the command's, e.g. its JSON)."""
    if session.keys is None or session.user.role not in ("lead", "admin"):
        return
    notice = session.breakglass.notice()
    if notice is not None:
        print(f"gpshare: {notice.text()}", file=sys.stderr)
    cover = session.breakglass.lead_cover()
    if cover is not None and cover.message:
        print(f"gpshare: {cover.message}", file=sys.stderr)


# ----- commands ------------------------------------------------------------------------


def _env_or_second_line(args: argparse.Namespace, variable: str, missing: str) -> str | None:
    """A second person's secret: `variable` from the environment, else the second line of
    standard input with --password-stdin (failing with `missing` when it is absent); None
    when it is to be typed at a terminal prompt."""
    env = os.environ.get(variable)
    if env:
        return env
    if args.password_stdin:
        line = _stdin_line(1)
        if line:
            return line
        _fail(missing)
    return None


def _read_lead_password(args: argparse.Namespace, new: bool = True) -> str:
    """The lead's own password at `init --lead` (`new`: typed twice on a terminal) or
    `migrate-v2 --lead` (their existing one, typed once): GPSHARE_LEAD_PASSWORD, the second
    line of standard input with --password-stdin, or a terminal prompt."""
    given = _env_or_second_line(
        args,
        "GPSHARE_LEAD_PASSWORD",
        "--lead with --password-stdin needs the lead's password on the second line.",
    )
    if given:
        return given
    if sys.stdin.isatty():
        print(f"{args.lead}, type your own password (the administrator must not see it).")
        if not new:
            return getpass.getpass(f"Password for {args.lead}: ")
        first = getpass.getpass(f"New password for {args.lead}: ")
        if first != getpass.getpass("Type it again: "):
            _fail("The two passwords do not match; nothing was created.", EXIT_INVALID)
        return first
    _fail("No password for the safeguarding lead: set GPSHARE_LEAD_PASSWORD.")


def _typed_back(name: str, secret: str, done: str = "The vault was created") -> None:
    """On a terminal, ask for `secret` typed back, so it is known to be written down."""
    if not sys.stdin.isatty():
        return
    wanted = "".join(ch for ch in secret.upper() if ch.isalnum())
    for _ in range(3):
        typed = input(f"Type the {name} back to confirm you have written it down: ")
        if "".join(ch for ch in typed.upper() if ch.isalnum()) == wanted:
            return
        print(f"That is not the {name} shown above; check what you wrote and try again.")
    _fail(
        f"The {name} was not typed back. {done} and the code above is the only "
        "copy: write it down before you close this window."
    )


def _init_v2(args: argparse.Namespace, password: str, server: Any = None) -> int:
    """A version-2 vault (`init`, with or without `--lead`), or with `server` (a
    ServerTarget) a practice on a PostgreSQL server with this folder as its first workstation
    (`server init`)."""
    from gpshare.services import LeadAtInit, create_vault_v2

    lead = (
        LeadAtInit(args.lead, args.lead_name or "", _read_lead_password(args), args.lead_gmc)
        if args.lead
        else None
    )
    created = create_vault_v2(
        Path(args.vault),
        practice_name=args.practice,
        admin_username=args.admin,
        admin_full_name=args.name or args.admin,
        admin_password=password,
        lead=lead,
        server=server,
    )
    created.session.close()
    if args.json:
        _print_json(
            {
                "vault": str(args.vault),
                "format_version": 2,
                "admin": args.admin,
                "lead": args.lead,
                "recovery_code": created.recovery_code,
                "breakglass_code": created.breakglass_code,
            }
            | (
                {"server": server.name, "enrolment_secret": created.enrolment_secret}
                if server
                else {}
            )
        )
        return EXIT_OK
    where = f"on the practice server {server.name}" if server else ""
    appointed = (
        f"with {args.lead} as safeguarding lead"
        if args.lead
        else "with no safeguarding lead yet (the break-glass ceremony appoints the first)"
    )
    print(
        f"Created vault for {args.practice} {where}{' ' if where else ''}in {args.vault}, {appointed}."
    )
    print("\nPRACTICE RECOVERY CODE — for the practice manager. It is shown only once:\n")
    print(f"    {created.recovery_code}\n")
    print("It resets passwords if everyone is locked out (gpshare recover); it opens no records.")
    _typed_back("practice recovery code", created.recovery_code)
    print("\nBREAK-GLASS CODE — for the Caldicott Guardian or a senior partner, never the practice")
    print("manager alone. Seal it in an envelope. It is shown only once:\n")
    print(f"    {created.breakglass_code}\n")
    print("It appoints a safeguarding lead when none is left; every use is recorded.")
    _typed_back("break-glass code", created.breakglass_code)
    if created.enrolment_secret:
        cli_server.print_enrolment_secret(created.enrolment_secret, Path(args.vault))
        _typed_back("enrolment secret", created.enrolment_secret)
    return EXIT_OK


def _admin_password(args: argparse.Namespace) -> str:
    """The first administrator's new password (typed twice on a terminal)."""
    return (
        read_new_password(args, None, args.admin)
        if not (args.password_stdin or os.environ.get("GPSHARE_PASSWORD"))
        else read_password(args)
    )


def cmd_init(args: argparse.Namespace) -> int:
    """A new vault: version 2 (keys that enforce roles) unless `--v1` asks for the legacy
    format. Without `--lead` the version-2 vault has no lead yet: the break-glass ceremony
    appoints the first, as after `server init` without `--lead`."""
    from gpshare.services import create_vault

    if (args.lead_name or args.lead_gmc) and not args.lead:
        _fail("--lead-name and --lead-gmc go with --lead USER.", EXIT_INVALID, "lead")
    if args.v1 and args.lead:
        _fail(
            "--lead makes a version-2 vault, which --v1 does not: leave out one of them.",
            EXIT_INVALID,
            "lead",
        )
    password = _admin_password(args)
    if not args.v1:
        return _init_v2(args, password)
    session, recovery = create_vault(
        Path(args.vault),
        practice_name=args.practice,
        admin_username=args.admin,
        admin_full_name=args.name or args.admin,
        admin_password=password,
    )
    session.close()
    if args.json:
        _print_json(
            {
                "vault": str(args.vault),
                "format_version": 1,
                "admin": args.admin,
                "recovery_code": recovery,
            }
        )
    else:
        print(f"Created a version-1 (legacy) vault for {args.practice} in {args.vault}.")
        print("\nRECOVERY CODE — print it and keep it locked away. It is shown only once:\n")
        print(f"    {recovery}\n")
        print(
            "With it the practice manager can reset any password if everyone is locked out (gpshare recover)."
        )
    return EXIT_OK


def cmd_migrate_v2(args: argparse.Namespace) -> int:
    """Upgrade a version-1 vault to version 2 in place (docs/vault-v2.md §4)."""
    from gpshare.services.migrate_v2 import LeadAtMigration, migrate_vault

    password = read_password(args)
    lead = LeadAtMigration(args.lead, _read_lead_password(args, new=False)) if args.lead else None

    def show_code(code: str) -> None:
        if args.json:
            return  # printed once, in the JSON result
        print(
            "\nBREAK-GLASS CODE — for the Caldicott Guardian or a senior partner, never the practice"
        )
        print("manager alone. Seal it in an envelope. It is shown only once:\n")
        print(f"    {code}\n")
        print("It appoints a safeguarding lead when none is left; every use is recorded.")
        _typed_back("break-glass code", code, "Nothing was changed: run the upgrade again")

    def progress(stage: str, done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

    done = migrate_vault(
        Path(args.vault), args.user, password, lead=lead, confirm_code=show_code, progress=progress
    )
    if args.json:
        _print_json(
            {
                "vault": str(args.vault),
                "format_version": 2,
                "lead": done.lead,
                "backup": str(done.backup),
                "counts": done.counts,
                "legacy_backups": done.legacy_backups,
                "breakglass_code": done.breakglass_code,
            }
        )
        return EXIT_OK
    print(f"\nUpgraded {args.vault} to vault version 2 ({done.counts['records']} records).")
    print(f"A backup taken just before is in {done.backup}.")
    if done.lead:
        print(f"{done.lead} was appointed safeguarding lead.")
    else:
        print(
            "No safeguarding lead was present: appoint one with the break-glass ceremony "
            "('gpshare breakglass --grant-lead USER') after they have signed in once."
        )
    print(
        "Each user's key is made at their next sign-in; a clinician reads their older records "
        "again once the lead has confirmed their key (gpshare keys pending / confirm)."
    )
    return EXIT_OK


def cmd_user(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        if args.user_command == "add":
            acting = read_password(args)
            password = read_new_password(args, acting, args.new_username)
            user = s.users.add_user(args.new_username, args.name, args.role, password, args.gmc)
            msg = {"username": user.username, "role": user.role, "name": user.full_name}
            _print_json(msg) if args.json else print(
                f"Added {user.full_name} ({user.username}) as {user.role_title}. At their first "
                f"sign-in they must choose their own password ('gpshare user passwd --user "
                f"{user.username}', or unlock in the app)."
            )
        elif args.user_command == "passwd":
            if args.target and args.target != s.user.username:
                temp = s.users.reset_password(args.target)
                if args.json:
                    _print_json({"username": args.target, "one_time_password": temp})
                else:
                    print(
                        f"One-time password for {args.target}: {temp}\nThey must choose a new password when they next unlock."
                    )
            else:
                new = read_new_password(args, None, s.user.username)
                s.users.change_password(read_password(args), new)
                print("Password changed.") if not args.json else _print_json({"changed": True})
        elif args.user_command == "disable":
            s.users.disable_user(args.target, force=args.force)
            print(f"Disabled {args.target}.") if not args.json else _print_json(
                {"disabled": args.target}
            )
        elif args.user_command == "import-p12":
            try:
                data = Path(args.file).read_bytes()
            except OSError as exc:
                _fail(f"Cannot read {args.file}: {exc.strerror}.")
            p12_password = os.environ.get("GPSHARE_P12_PASSWORD")
            if p12_password is None and sys.stdin.isatty():
                p12_password = getpass.getpass("Password of the .p12 file: ")
            if p12_password is None:
                _fail("Give the .p12 file's password in GPSHARE_P12_PASSWORD.")
            temp = s.users.import_pkcs12(args.target, data, p12_password)
            if args.json:
                _print_json({"username": args.target, "one_time_password": temp})
            else:
                print(
                    f"Imported the signing certificate for {args.target}. One-time password: {temp}\n"
                    "They must choose a new password when they next unlock."
                )
        elif args.user_command == "list":
            users = s.users.list_users()
            if args.json:
                _print_json(
                    [
                        {
                            "username": u.username,
                            "name": u.full_name,
                            "role": u.role,
                            "gmc": u.gmc_number,
                            "active": u.active,
                        }
                        for u in users
                    ]
                )
            else:
                for u in users:
                    print(
                        f"{u.username:20} {u.role:10} {'active' if u.active else 'disabled':9} {u.full_name}"
                    )
        return EXIT_OK

    return _with_session(args, work)


def cmd_keys(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        if args.keys_command == "show":
            own = s.directory.own_key()
            if own is None:
                _fail("Choose your own password first; your keys are made then.")
            if args.json:
                _print_json(
                    {
                        "username": own.username,
                        "key_generation": own.key_generation,
                        "fingerprint": own.fingerprint,
                        "confirmed": own.confirmed,
                    }
                )
            else:
                state = "confirmed" if own.confirmed else "waiting for a lead to confirm it"
                print(f"Your key ({state}): {own.fingerprint}")
        elif args.keys_command == "pending":
            pending = s.directory.pending()
            if args.json:
                _print_json(
                    [
                        {
                            "username": p.username,
                            "name": p.full_name,
                            "role": p.role,
                            "key_generation": p.key_generation,
                            "fingerprint": p.fingerprint,
                            "published": p.published,
                        }
                        for p in pending
                    ]
                )
            elif not pending:
                print("No keys are waiting for confirmation.")
            for p in [] if args.json else pending:
                print(f"{p.username:20} {p.role:10} {p.published:20} {p.fingerprint}")
        elif args.keys_command == "rotate":
            done = s.directory.rotate()
            if args.json:
                _print_json(
                    {
                        "clinical_generation": done.clinical.generation,
                        "lead_generation": done.lead.generation if done.lead else None,
                        "disabled": list(done.disabled),
                        "holders": list(done.holders),
                    }
                )
            else:
                lead = f" and lead key generation {done.lead.generation}" if done.lead else ""
                print(
                    f"Rotated: clinical key generation {done.clinical.generation}{lead}, held by "
                    f"{', '.join(done.holders) or 'nobody yet'} and the break-glass key."
                )
        elif args.keys_command == "logins":
            if args.revoke is not None:
                gone = s.directory.revoke_login(args.revoke)
                if args.json:
                    _print_json({"revoked": gone.id, "username": gone.username})
                else:
                    print(
                        f"Revoked remembered login {gone.id} ({gone.username} on "
                        f"{gone.workstation}); it is refused at its next unlock."
                    )
                return EXIT_OK
            logins = s.directory.remembered_logins()
            if args.json:
                _print_json(
                    [
                        {
                            "id": g.id,
                            "username": g.username,
                            "workstation": g.workstation,
                            "created": g.created,
                            "revoked": g.revoked,
                        }
                        for g in logins
                    ]
                )
            elif not logins:
                print("No remembered logins.")
            for g in [] if args.json else logins:
                state = f"revoked {g.revoked}" if g.revoked else "active"
                print(f"{g.id:4} {g.username:20} {g.workstation:24} {g.created:26} {state}")
        else:
            if not args.target or not args.fingerprint:
                _fail(
                    "Give the user and the six words they read to you: gpshare keys confirm USER "
                    '--fingerprint "six words"',
                    EXIT_INVALID,
                    "fingerprint",
                )
            done = s.directory.confirm(args.target, args.fingerprint)
            if args.json:
                _print_json({"confirmed": done.username, "key_generation": done.key_generation})
            else:
                print(
                    f"Confirmed the key of {done.full_name} ({done.username}); their next sign-in "
                    "holds the keys of their role."
                )
        return EXIT_OK

    return _with_session(args, work)


def _read_breakglass_code(args: argparse.Namespace) -> str:
    """The break-glass code, typed by its holder: GPSHARE_BREAKGLASS_CODE (scripts), the second
    line of standard input with --password-stdin, or a hidden prompt; never an argument."""
    given = _env_or_second_line(
        args,
        "GPSHARE_BREAKGLASS_CODE",
        "With --password-stdin, put the break-glass code on the second line.",
    )
    if given:
        return given
    if sys.stdin.isatty():
        print("Holder of the break-glass code: type it now (the administrator must not see it).")
        return getpass.getpass("Break-glass code: ")
    _fail(
        "No break-glass code: the holder types it at the prompt (or set GPSHARE_BREAKGLASS_CODE)."
    )


def cmd_breakglass(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        if args.breakglass_command == "ack":
            left = s.breakglass.acknowledge()
            if args.json:
                _print_json({"acknowledged": True, "still_showing": left is not None})
            elif left is None:
                print(
                    "Acknowledged. Two different users have now acknowledged it: the notice ends."
                )
            else:
                print(f"Acknowledged. {left.still_needed} more acknowledgement needed.")
            return EXIT_OK
        if args.breakglass_command == "status":
            notice = s.breakglass.notice()
            cover = s.breakglass.lead_cover()
            if args.json:
                _print_json(
                    {
                        "banner": None
                        if notice is None
                        else {
                            "event_seq": notice.event_seq,
                            "at": notice.at,
                            "actor": notice.actor,
                            "grantee": notice.grantee,
                            "reason": notice.reason,
                            "acknowledged_by": list(notice.acknowledged_by),
                        },
                        "lead_key_holders": None if cover is None else list(cover.holders),
                    }
                )
            elif notice is None and (cover is None or cover.message is None):
                print("No break-glass use waiting and at least two users hold the lead key.")
            return EXIT_OK
        if not args.grant_lead or not args.reason:
            _fail(
                "Name the user to appoint and the reason: gpshare breakglass --grant-lead USER "
                '--reason "why no lead can do this"',
                EXIT_INVALID,
                "grant_lead" if not args.grant_lead else "reason",
            )
        code = _read_breakglass_code(args)
        done = s.breakglass.ceremony(code, args.grant_lead, args.reason, args.fingerprint)
        if args.json:
            _print_json(
                {
                    "granted": done.grantee,
                    "fingerprint": done.fingerprint,
                    "clinical_generations": list(done.clinical_generations),
                    "lead_generations": list(done.lead_generations),
                    "breakglass_code": done.new_code,
                    "enrolment_secret": done.enrolment_secret,
                }
            )
            return EXIT_OK
        print(
            f"{done.grantee} is now a safeguarding lead (key words: {done.fingerprint}); their "
            "next sign-in with their password holds the lead key. Every lead and administrator "
            "will see a notice until two of them acknowledge it."
        )
        print("\nNEW BREAK-GLASS CODE — the old one no longer opens anything. Seal it in a new")
        print("envelope for the Caldicott Guardian or a senior partner. It is shown only once:\n")
        print(f"    {done.new_code}\n")
        if done.enrolment_secret:
            print("Put the practice server's ENROLMENT SECRET in the same envelope:\n")
            print(f"    {done.enrolment_secret}\n")
        _typed_back("break-glass code", done.new_code, "The ceremony was done")
        return EXIT_OK

    return _with_session(args, work)


def cmd_recover(args: argparse.Namespace) -> int:
    from gpshare.services import recover_with_code

    code = os.environ.get("GPSHARE_RECOVERY_CODE") or _stdin_line(0)
    if not code and sys.stdin.isatty():
        code = getpass.getpass("Recovery code: ")
    if not code:
        _fail("Give the recovery code on standard input or in GPSHARE_RECOVERY_CODE.")
    temp = recover_with_code(Path(args.vault), code, args.reset_user)
    if args.json:
        _print_json({"username": args.reset_user, "one_time_password": temp})
    else:
        print(f"One-time password for {args.reset_user}: {temp}")
    return EXIT_OK


def _verify_integrity(s: Any, args: argparse.Namespace) -> int:
    """`audit verify --rows`: the chain, then sealed rows against events and witnesses."""
    report = s.audit_trail.verify_integrity()
    if args.json:
        _print_json(
            {
                "ok": report.ok,
                "chain_ok": report.chain.ok,
                "broken_at": report.chain.broken_at,
                "rows": report.rows,
                "witnesses": report.witnesses,
                "findings": [
                    {"check": f.check, "table": f.table, "row": f.row, "seq": f.seq,
                     "message": f.message}
                    for f in report.findings
                ],
            }
        )  # fmt: skip
    else:
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_audit(args: argparse.Namespace) -> int:
    from gpshare.filters import AuditFilter

    def work(s: Any) -> int:
        if args.audit_command == "verify" and args.rows:
            return _verify_integrity(s, args)
        if args.audit_command == "verify":
            report = s.audit_trail.verify_audit()
            if args.json:
                _print_json(
                    {
                        "ok": report.ok,
                        "events": report.events,
                        "last_seq": report.last_seq,
                        "last_at": report.last_at,
                        "broken_at": report.broken_at,
                        "problem": report.problem,
                    }
                )
            else:
                print(report.summary())
            return EXIT_OK if report.ok else EXIT_ERROR
        events = s.audit_trail.audit_log(
            AuditFilter(actor=args.actor, action=args.action, record_id=args.record),
            limit=args.limit,
        )
        if args.json:
            _print_json([e.__dict__ for e in events])
        else:
            for e in events:
                print(
                    f"{e.seq:>7} {e.at[:19]} {e.actor:16} {e.action:22} {e.record_id or '':14} {json.dumps(e.details, ensure_ascii=False)}"
                )
        return EXIT_OK

    return _with_session(args, work)


def cmd_backup(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        path = s.backups.backup_now()
        _print_json({"backup": str(path)}) if args.json else print(f"Backup written to {path}")
        return EXIT_OK

    return _with_session(args, work)


def cmd_restore(args: argparse.Namespace) -> int:
    from gpshare.services import list_backups, restore
    from gpshare.services.backups import BreakGlassPresent, LeadPresent

    for given, flag in ((args.lead, "--lead"), (args.break_glass, "--break-glass")):
        if given and not args.undo_upgrade:
            _fail(
                f"{flag} goes with --undo-upgrade (a backup from before the upgrade).", EXIT_INVALID
            )
    if args.reason is not None and not args.break_glass:
        _fail("--reason goes with --break-glass (why the break-glass code is used).", EXIT_INVALID)
    if args.undo_upgrade and bool(args.lead) == args.break_glass:
        _fail(
            "--undo-upgrade needs either --lead LEAD (a safeguarding lead opens the backup's "
            "key) or, when no lead can, --break-glass with the holder of the break-glass code; "
            "not both.",
            EXIT_INVALID,
            "lead",
        )
    if args.break_glass and not (args.reason or "").strip():
        _fail(
            "--break-glass needs --reason TEXT: why no safeguarding lead can open the backup "
            "(it is recorded in the audit trail).",
            EXIT_INVALID,
            "reason",
        )
    snapshot = Path(args.from_) if args.from_ else None
    if snapshot is None:
        backups = list_backups(Path(args.vault))
        if not backups:
            _fail(f"There are no backups in {Path(args.vault) / 'backups'}.")
        snapshot = backups[0].path
    password = read_password(args)
    lead: LeadPresent | BreakGlassPresent | None = None
    if args.lead:
        lead = LeadPresent(args.lead, _read_lead_password(args, new=False))
    elif args.break_glass:
        lead = BreakGlassPresent(_read_breakglass_code(args), args.reason)
    if lead is not None:
        from gpshare.services.migrate_v2 import restore_pre_upgrade

        aside = restore_pre_upgrade(Path(args.vault), snapshot, args.user, password, lead)
    else:
        aside = restore(Path(args.vault), snapshot, args.user, password)
    if args.json:
        _print_json(
            {
                "restored": str(snapshot),
                "replaced_files_kept_in": str(aside),
                "format_version": 1 if lead else None,
            }
        )
        return EXIT_OK
    print(f"Restored {snapshot.name}. The replaced files are kept in {aside}.")
    if lead:
        print(
            "This vault is version 1 again, as it was before the upgrade: everyone signs in "
            "with the password they had then, and every password opens every record. Upgrade "
            f"it again now (gpshare migrate-v2 --vault {args.vault} --user {args.user}"
            f"{f' --lead {args.lead}' if args.lead else ' [--lead LEAD]'}); a new break-glass "
            "code is made then."
        )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from gpshare.demo import DEMO_USERS, create_demo_vault

    if getattr(args, "show_logins", False):  # nothing is created: just the fictional logins
        print("Demo vault logins (fictional practice, fictional data):")
        for user in DEMO_USERS:
            print(f"  {user['username']:10} {user['role']:10} password: {user['password']}")
        return EXIT_OK
    info = create_demo_vault(Path(args.vault), format_version=1 if args.v1 else 2)
    if args.json:
        _print_json(info)
    else:
        print(f"Demo vault created in {info['vault']} (fictional data only).")
        for user in info["users"]:
            print(f"  {user['username']:10} {user['role']:10} password: {user['password']}")
        if info.get("breakglass_code"):
            print(f"  Break-glass code (to practise the ceremony): {info['breakglass_code']}")
    return EXIT_OK


def _load_answers(path: str) -> tuple[str, dict[str, Any], int | None]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"Cannot read the answers file {path}: {exc.strerror}.", EXIT_ERROR, "answers")
    except UnicodeDecodeError:
        _fail(f"The answers file {path} is not UTF-8 text.", EXIT_INVALID, "answers")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(
            f"The answers file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).",
            EXIT_INVALID,
            "answers",
        )
    if not isinstance(data, dict) or not isinstance(data.get("answers"), dict):
        _fail(
            'The answers file must be a JSON object like {"form": "england-child-safeguarding", "answers": {...}}.',
            EXIT_INVALID,
            "answers",
        )
    if "form" not in data:
        _fail(
            f'The answers file {path} has no "form": say which form the answers are for, e.g. '
            '"form": "england-child-safeguarding".',
            EXIT_INVALID,
            "form",
        )
    form_id = data["form"]
    if not isinstance(form_id, str) or not form_id.strip():
        _fail(
            '"form" must be a form id string, e.g. "england-child-safeguarding".',
            EXIT_INVALID,
            "form",
        )
    version = data.get("form_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        _fail('"form_version" must be a whole number such as 2, or left out.', EXIT_INVALID)
    return form_id, data["answers"], version


def _answers_for_newest(
    form_id: str, answers: dict[str, Any], version: int | None
) -> tuple[Any, dict[str, Any], Any]:
    """(newest form, answers for it, carry result or None).

    New assessments always use the newest form version. Answers written for version 1 (said
    by "form_version": 1, or, without it, answers that fit v1 but not the newest) are carried
    to v2 exactly as a v1 draft is (gpshare.carry), then validated against v2.
    """
    from gpshare import carry, navigator
    from gpshare.forms import FormError, load_form_by_id

    try:
        newest = load_form_by_id(form_id)
    except FormError as exc:
        _fail(f"Form problem: {exc}", EXIT_INVALID, "form")
    if version is not None and version > newest.version:
        _fail(
            f"This gpshare knows form {form_id} up to version {newest.version}, not "
            f"{version}. Update gpshare, or write the answers for version {newest.version}.",
            EXIT_INVALID,
        )
    source = version
    if (
        source is None
        and newest.version == 2
        and navigator.check_answer_shapes(newest, answers)
        and isinstance(answers, dict)
    ):
        try:
            v1 = load_form_by_id(form_id, 1)
        except FormError:
            v1 = None
        if v1 is not None and not navigator.check_answer_shapes(v1, answers):
            source = 1
    if source is None or source == newest.version:
        return newest, answers, None
    if (source, newest.version) != (1, 2):
        _fail(
            f"Answers for form {form_id} version {source} cannot be carried to version "
            f"{newest.version}. Write them for version {newest.version}.",
            EXIT_INVALID,
        )
    try:
        v1 = load_form_by_id(form_id, 1)
    except FormError as exc:
        _fail(f"Form problem: {exc}", EXIT_INVALID, "form")
    if navigator.check_answer_shapes(v1, answers):
        return newest, answers, None  # not v1-shaped either: report against the newest
    carried = carry.carry_v1_to_v2(answers, v1, newest)
    return newest, carried.answers, carried


def _errors_json(errors: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append({"field": str(e.get("field", "")), "message": str(e.get("message", ""))})
        else:
            out.append({"field": e.field, "message": e.message})
    return out


def cmd_assess(args: argparse.Namespace) -> int:
    from gpshare import carry, navigator
    from gpshare.forms import load_form_by_id

    form_id, answers, version = _load_answers(args.answers)
    form, answers, carried = _answers_for_newest(form_id, answers, version)
    carried_json = None
    if carried is not None:
        carried_json = carried.audit_details() | {
            "changes": [{"field": c.field, "to": c.to} for c in carried.changes]
        }
    shape_errors = navigator.check_answer_shapes(form, answers)
    if shape_errors:
        if args.json:
            _print_json(
                {
                    "record_id": None,
                    "status": "invalid",
                    "outcome": None,
                    "errors": _errors_json(shape_errors),
                    "warnings": [],
                }
            )
        else:
            print("The answers file has problems; nothing was stored:", file=sys.stderr)
            for e in shape_errors:
                print(f"  {e.field}: {e.message}", file=sys.stderr)
        return EXIT_INVALID

    def work(s: Any) -> int:
        stored = dict(answers)
        if carried is not None:  # dropped v1 answers go into the draft's history
            stored[carry.HISTORY_KEY] = carried.history_entries(s.now_iso())
        record = s.assessments.start_assessment(form.id, stored)
        status, code, errors = "draft", EXIT_OK, []
        if args.complete:
            try:
                record, evaluation = s.assessments.complete(record.id)
                status = "completed"
            except ValidationFailed as exc:
                evaluation = s.assessments.evaluate(form, answers, exclude=record.id)
                status, code, errors = "invalid", EXIT_INVALID, exc.errors
        else:
            evaluation = s.assessments.evaluate(form, answers, exclude=record.id)
            errors = list(evaluation.errors)
        outcome = evaluation.outcome.to_dict()
        letter_path = None
        if status == "completed" and args.letter:
            if not outcome.get("letter_required"):
                print("No letter: this decision does not share information.", file=sys.stderr)
            else:
                # Signs with the key derivation of this command's unlock (one Argon2id).
                result = s.letters.generate_letter(record.id, None)
                letter_path = _save_letter(s, result, args.letter)
        result_json = {
            "record_id": record.id,
            "status": status,
            "outcome": outcome,
            "errors": _errors_json(errors),
            "warnings": [{"token": p.token, "message": p.message} for p in evaluation.prompts],
        }
        if letter_path:
            result_json["letter"] = str(letter_path)
        if carried_json is not None:
            result_json["carried"] = carried_json
        kept = None
        if args.complete and status == "invalid":
            kept = (
                f"Not completed. The answers are kept as draft {record.id}: open it in the app "
                "(My records) to finish it, or correct the answers file and run assess again "
                "(that makes a new draft)."
            )
            result_json["draft_kept"] = record.id
            result_json["message"] = kept
        if args.json:
            _print_json(result_json)
        else:
            print(f"Record {record.id}: {status}")
            if carried is not None:
                print(
                    f"  answers for form version {carried.from_version} were carried to "
                    f"version {carried.to_version}:"
                )
                for line in carry.change_lines(carried, load_form_by_id(form.id, 1)):
                    print(f"    {line}")
            if outcome.get("pathway"):
                print(
                    f"  pathway: {outcome['pathway']}; consent: {outcome.get('consent_basis')}; letter required: {outcome.get('letter_required')}"
                )
            for p in evaluation.prompts:
                print(f"  ! {p.message}")
            stream = sys.stderr if code else sys.stdout
            for e in _errors_json(errors):
                print(f"  {e['field']}: {e['message']}", file=stream)
            if kept:
                print(kept, file=sys.stderr)
            if letter_path:
                print(f"  letter: {letter_path}")
        return code

    return _with_session(args, work)


def _save_letter(s: Any, result: Any, out: str) -> Path:
    from gpshare.services import save_file

    path = Path(out)
    save_file(path, result.pdf)
    s.audit(
        "letter_saved", result.record_id, {"letter_id": result.letter_id, "sha256": result.sha256}
    )
    return path


def _catch_up_index(s: Any, args: argparse.Namespace) -> None:
    """A lead holding the lead key (version 2): bring the search index up to date (or rebuild
    it) before a list or search reads it, as the app does at sign-in. If that fails, the
    command still answers, from the summaries, and says so on standard error."""
    if s.user.role != "lead" or s.keys is None or not s.keys.holds_lead_key:
        return
    shown: list[bool] = []

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rRebuilding the search index: {done}/{total}   ", end="", file=sys.stderr)
            shown.append(True)

    try:
        s.search_index.prepare(progress)
    except StoreError as exc:
        print(
            f"gpshare: the search index could not be brought up to date ({exc}); search finds "
            "names, NHS numbers and references only this time.",
            file=sys.stderr,
        )
    finally:
        if shown:
            print("", file=sys.stderr)


def cmd_records(args: argparse.Namespace) -> int:
    from gpshare.filters import RecordFilter
    from gpshare.nhs_number import normalise, problem

    child = None
    if args.child:
        why = problem(args.child)
        if why is not None:
            _fail(f"--child must be a valid NHS number: {why}", EXIT_INVALID, "--child")
        child = normalise(args.child)

    def work(s: Any) -> int:
        _catch_up_index(s, args)
        records = s.assessments.list_records(
            RecordFilter(child_nhs=child, status=args.status, search=args.search)
        )
        if args.overdue:
            states = s.referrals.referral_states(records)
            records = [r for r in records if r.id in states and states[r.id].overdue]
        if args.json:
            _print_json([r.to_json() for r in records])
        else:
            if not records:
                print("No records.")
            for r in records:
                outcome = r.outcome or {}
                print(
                    f"{r.id}  {r.status:9} {r.created[:10]}  {r.child.display_name:30} {outcome.get('pathway') or '':15} {r.clinician}"
                )
        return EXIT_OK

    return _with_session(args, work)


def cmd_show(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        record = s.assessments.get_record(args.record)
        addenda = s.assessments.addenda(record.id)
        data = record.to_json() | {
            "form": {"id": record.form_id, "version": record.form_version},
            "answers": record.answers,
            "addenda": [
                {"author": a.author, "created": a.created, "text": a.body} for a in addenda
            ],
        }
        from gpshare.codes import suggested_codes

        codes = suggested_codes(record.outcome)
        if codes is not None:
            import contextlib

            from gpshare.clock import today
            from gpshare.codes import (
                VISIBILITY_PROMPT,
                critical_visibility_message,
                record_prompts,
                visibility_warning,
            )
            from gpshare.forms import FormError, load_form_by_id
            from gpshare.records import parse_date

            # Unknown severity (the form cannot be read) gets the critical warning: safer.
            severities = {VISIBILITY_PROMPT: "critical"}
            critical: str | None = None
            with contextlib.suppress(FormError):
                form = load_form_by_id(record.form_id, record.form_version)
                raised = record_prompts(
                    form,
                    record.answers,
                    parse_date(record.completed) or today(s.clock),
                    s.practice.rule_settings(),
                )
                severities = {t: p.severity for t, p in raised.items()}
                critical = critical_visibility_message(raised)
            data["snomed_codes"] = [c.to_json() for c in codes]
            data["snomed_codes_warning"] = visibility_warning(record.outcome, severities, critical)
        if args.json:
            _print_json(data)
        else:
            from gpshare.forms import load_form_by_id

            form = load_form_by_id(record.form_id, record.form_version)
            print(
                f"{record.id} — {record.child.display_name} — {record.status} (form {form.id} v{form.version})"
            )
            if record.outcome:
                print(
                    f"Outcome: pathway {record.outcome.get('pathway')}, consent {record.outcome.get('consent_basis')}"
                )
            for step in form.steps:
                shown = [(f, record.answers[f.id]) for f in step.fields if f.id in record.answers]
                if not shown:
                    continue
                print(f"\n== {step.title}")
                for fld, value in shown:
                    print(f"  {fld.label}: {_display(form, fld.id, value)}")
            if codes:
                print("\n== Codes to add to the GP record")
                print(f"  {data['snomed_codes_warning']}")
                for c in codes:
                    print(f"  {c.code}  {c.term}" + (f"  (for {c.for_whom})" if c.for_whom else ""))
            for a in addenda:
                print(f"\nAddendum by {a.author} at {a.created}:\n  {a.body}")
        return EXIT_OK

    return _with_session(args, work)


def _display(form: Any, field_id: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_display(form, field_id, v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, str):
        try:
            return str(form.option_label(field_id, value))
        except (KeyError, ValueError):
            return value
    return str(value)


def cmd_addendum(args: argparse.Namespace) -> int:
    text = clinical_text(args, args.text, args.text_file, "text")
    assert text is not None  # argparse requires --text or --text-file

    def work(s: Any) -> int:
        addendum = s.assessments.add_addendum(args.record, text)
        _print_json({"record_id": args.record, "addendum_id": addendum.id}) if args.json else print(
            f"Addendum added to {args.record}."
        )
        return EXIT_OK

    return _with_session(args, work)


def cmd_settings(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        if args.assignments:
            changes = {}
            for item in args.assignments:
                if "=" not in item:
                    _fail(
                        f"Settings are given as KEY=VALUE; '{item}' has no '='.",
                        EXIT_INVALID,
                        "settings",
                    )
                key, value = item.split("=", 1)
                changes[key.strip()] = value
            s.practice.update_settings(changes)
        values = s.practice.settings()
        if args.json:
            _print_json(values)
        else:
            for key, value in values.items():
                print(f"{key:28} {value}")
        return EXIT_OK

    return _with_session(args, work)


def cmd_letter(args: argparse.Namespace) -> int:
    def work(s: Any) -> int:
        result = s.letters.generate_letter(args.record, None)  # the unlock's key derivation
        path = _save_letter(s, result, args.out)
        if args.json:
            _print_json(
                {
                    "record_id": result.record_id,
                    "letter_id": result.letter_id,
                    "sha256": result.sha256,
                    "out": str(path),
                }
            )
        else:
            print(
                f"Signed letter for {result.record_id} written to {path} (SHA-256 {result.sha256[:16]}…)."
            )
        return EXIT_OK

    return _with_session(args, work)


def cmd_verify_letter(args: argparse.Namespace) -> int:
    from gpshare import signing

    try:
        pdf = Path(args.file).read_bytes()
    except OSError as exc:
        _fail(f"Cannot read {args.file}: {exc.strerror}.")
    match = None
    if args.user:

        def work(s: Any) -> int:
            nonlocal match
            result, match = s.letters.verify_letter(pdf)
            return _report_verification(args, result, match, checked_records=True)

        return _with_session(args, work)
    if not args.ca:
        _fail(
            "Say whose signatures to trust: --vault DIR --user USERNAME (also matches the letter to its record) "
            "or --ca practice-ca.pem.",
            EXIT_INVALID,
        )
    try:
        ca = Path(args.ca).read_bytes()
    except OSError as exc:
        _fail(f"Cannot read {args.ca}: {exc.strerror}.")
    try:
        signing.certificate_info(ca)
    except signing.SigningError:
        _fail(
            f"{args.ca} is not a certificate (expected a PEM file like practice-ca.pem from "
            "'gpshare ca export').",
            EXIT_INVALID,
            "ca",
        )
    return _report_verification(args, signing.verify_pdf(pdf, [ca]), None, checked_records=False)


def _report_verification(
    args: argparse.Namespace, result: Any, match: Any, *, checked_records: bool
) -> int:
    ok = bool(result.ok) and (match is not None or not checked_records)
    reason = result.reason
    if result.ok and checked_records and match is None:
        reason = "The signature is valid, but no record in this vault has a letter with exactly these bytes."
    if args.json:
        _print_json(
            {
                "ok": ok,
                "intact": result.intact,
                "valid": result.valid,
                "trusted": result.trusted,
                "signer": result.signer_name,
                "gmc": result.signer_gmc,
                "signed_at": result.signed_at.isoformat() if result.signed_at else None,
                "record_id": match.record_id if match else None,
                "reason": reason,
            }
        )
    elif ok:
        where = f"; matches record {match.record_id}" if match else ""
        print(
            f"Valid: signed by {result.signer_name} (GMC {result.signer_gmc or '—'}) at {result.signed_at}, unaltered{where}."
        )
    else:
        print(f"NOT VALID: {reason}")
    return EXIT_OK if ok else EXIT_ERROR


def cmd_ca(args: argparse.Namespace) -> int:
    from gpshare.services import save_file

    def work(s: Any) -> int:
        pem = s.practice.practice_ca_pem()
        save_file(Path(args.out), pem)
        os.chmod(args.out, 0o644)  # a public certificate: others must be able to read it
        print(f"Practice CA certificate written to {args.out}.") if not args.json else _print_json(
            {"out": args.out}
        )
        return EXIT_OK

    return _with_session(args, work)


def cmd_followup(args: argparse.Namespace) -> int:
    from datetime import datetime

    at = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            _fail(
                f"--at must be a date and time like 2026-11-25T14:05; got '{args.at}'.",
                EXIT_INVALID,
                "--at",
            )
        if at.tzinfo is None:
            from zoneinfo import ZoneInfo

            at = at.replace(tzinfo=ZoneInfo("Europe/London"))
    details = {}
    for item in args.detail or []:
        if "=" not in item:
            _fail(f"--detail takes KEY=VALUE; got '{item}'.", EXIT_INVALID, "--detail")
        key, value = item.split("=", 1)
        details[key] = value
    if args.reference is not None:
        details["reference"] = args.reference
    note = clinical_text(args, args.note, args.note_file, "note")

    def work(s: Any) -> int:
        fu = s.referrals.record_followup(
            args.record, args.event, at=at, note=note, decision=args.decision, details=details
        )
        state = s.referrals.referral_states(
            [s.assessments.get_record(args.record, audit_view=False)]
        )[args.record]
        if args.json:
            _print_json(
                {
                    "record_id": args.record,
                    "followup_id": fu.id,
                    "event": fu.event,
                    "at": fu.at,
                    "status": state.status,
                    "next_action": state.next_action,
                    "next_due": state.next_due.isoformat() if state.next_due else None,
                }
            )
        else:
            due = f" (due {state.next_due:%d %b %Y})" if state.next_due else ""
            print(
                f"Recorded '{fu.event}' for {args.record}. Now: {state.status_label}. Next: {state.next_action or '—'}{due}."
            )
        return EXIT_OK

    return _with_session(args, work)


def cmd_export(args: argparse.Namespace) -> int:
    from gpshare.filters import AuditFilter, RecordFilter

    def work(s: Any) -> int:
        if args.what == "records":
            if args.format != "csv":
                _fail(
                    "Records export as CSV (--format csv); the PDF report is for the audit log.",
                    EXIT_INVALID,
                )
            n = s.lead.export_records_csv(
                Path(args.out),
                RecordFilter(status=args.status),
                include_narratives=args.include_narratives,
            )
        else:
            if args.format != "pdf":
                _fail("The audit export is a PDF report (--format pdf).", EXIT_INVALID)
            n = s.audit_trail.export_audit_pdf(Path(args.out), AuditFilter())
        _print_json({"out": args.out, "rows": n}) if args.json else print(
            f"Exported {n} rows to {args.out}."
        )
        return EXIT_OK

    return _with_session(args, work)


# ----- parser ----------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, user: bool = True) -> None:
    p.add_argument(
        "--vault",
        type=Path,
        default=default_vault_dir(),
        help="vault folder (default: $GPSHARE_VAULT or the per-user data folder)",
    )
    if user:
        p.add_argument("--user", required=True, help="your username")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpshare", description="Child-safeguarding information sharing for GP practices."
    )
    parser.add_argument("--version", action="version", version=f"gpshare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a new vault")
    _common(p, user=False)
    p.add_argument("--practice", required=True)
    p.add_argument("--admin", required=True, help="the first administrator's username")
    p.add_argument("--name", help="the administrator's full name")
    p.add_argument(
        "--lead",
        help="the first safeguarding lead's username: appoints them at creation (they type "
        "their own password); without it the break-glass ceremony appoints the first lead",
    )
    p.add_argument("--lead-name", help="with --lead: the lead's full name")
    p.add_argument("--lead-gmc", help="with --lead: the lead's GMC number")
    p.add_argument(
        "--v1",
        action="store_true",
        help="make a legacy version-1 vault (one database key for every user; every password "
        "opens every record) instead of version 2",
    )
    p.set_defaults(func=cmd_init)

    # The practice server (issue #14): its commands live in gpshare.cli_server.
    cli_server.add_commands(
        sub,
        _common,
        init=lambda a: _init_v2(a, _admin_password(a), cli_server.target(a)),
        typed_back=_typed_back,
        with_session=_with_session,
        verify=_verify_integrity,
        password=read_password,
    )

    p = sub.add_parser(
        "keys",
        help="version-2 vault keys: show yours; lead: pending, confirm, rotate; lead or admin: "
        "logins [--revoke ID]",
    )
    p.add_argument("keys_command", choices=["show", "pending", "confirm", "rotate", "logins"])
    p.add_argument("target", nargs="?", help="confirm: the user whose key to confirm")
    _common(p)
    p.add_argument(
        "--fingerprint", help='confirm: the six words the user read out, e.g. "a b c d e f"'
    )
    p.add_argument(
        "--revoke", type=int, metavar="ID", help="logins: revoke the remembered login ID"
    )
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser(
        "breakglass",
        help="admin with the break-glass code holder: appoint a lead when none can; "
        "ack: acknowledge a use; status",
    )
    p.add_argument("breakglass_command", nargs="?", choices=["ack", "status"])
    _common(p)
    p.add_argument("--grant-lead", help="the user (with the lead role) to appoint")
    p.add_argument("--reason", help="why the ceremony is needed (recorded and shown to all leads)")
    p.add_argument(
        "--fingerprint", help="optional: the six words of the grantee's key, read out by them"
    )
    p.set_defaults(func=cmd_breakglass)

    p = sub.add_parser("user", help="users: add, passwd, disable, list")
    usub = p.add_subparsers(dest="user_command", required=True)
    q = usub.add_parser("add")
    _common(q)
    q.add_argument("new_username")
    q.add_argument("--role", required=True, choices=["clinician", "lead", "admin"])
    q.add_argument("--name", required=True)
    q.add_argument("--gmc")
    q = usub.add_parser("passwd", help="change your password, or (admin) reset another user's")
    _common(q)
    q.add_argument("target", nargs="?")
    q = usub.add_parser("disable")
    _common(q)
    q.add_argument("target")
    q.add_argument(
        "--force",
        action="store_true",
        help="disable the last safeguarding lead anyway (then only the break-glass ceremony "
        "can appoint one)",
    )
    q = usub.add_parser(
        "import-p12", help="give a user a signing key from a PKCS#12 (.p12/.pfx) file"
    )
    _common(q)
    q.add_argument("target")
    q.add_argument("--file", required=True)
    q = usub.add_parser("list")
    _common(q)
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("recover", help="reset a password with the vault's recovery code")
    _common(p, user=False)
    p.add_argument("--reset-user", required=True)
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("audit", help="verify or read the audit log")
    p.add_argument("audit_command", choices=["verify", "log"])
    _common(p)
    p.add_argument(
        "--rows",
        action="store_true",
        help="verify: also check every sealed row against the event that wrote it and every "
        "workstation witness against the chain (vault version 2)",
    )
    p.add_argument("--actor")
    p.add_argument("--action")
    p.add_argument("--record")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("backup", help="write an encrypted backup now")
    _common(p)
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", help="restore a backup (the latest unless --from)")
    _common(p)
    p.add_argument("--from", dest="from_", help="backup folder to restore")
    p.add_argument(
        "--undo-upgrade",
        action="store_true",
        help="restore a backup taken before the upgrade to version 2: puts the version-1 vault "
        "back (upgrade it again afterwards); needs --lead or --break-glass",
    )
    p.add_argument(
        "--lead",
        help="with --undo-upgrade: the safeguarding lead who opens the backup's key (their "
        "password from GPSHARE_LEAD_PASSWORD or the second line with --password-stdin)",
    )
    p.add_argument(
        "--break-glass",
        action="store_true",
        help="with --undo-upgrade, when no lead can: the holder of the break-glass code opens "
        "the backup's key (the code at a prompt, GPSHARE_BREAKGLASS_CODE or the second line "
        "with --password-stdin); needs --reason",
    )
    p.add_argument(
        "--reason", help="with --break-glass: why no lead can open it (recorded in the audit trail)"
    )
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("demo", help="create a demo vault with fictional users and records")
    p.add_argument("--vault", type=Path, default=default_vault_dir())
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--show-logins", action="store_true", help="print the demo users' logins; create nothing"
    )
    p.add_argument(
        "--v2",
        action="store_true",
        help="make a version-2 vault (keys that enforce roles): the default, kept for scripts",
    )
    p.add_argument(
        "--v1",
        action="store_true",
        help="make a version-1 vault (one database key for every user), the format before keys",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("assess", help="create an assessment from an answers JSON file")
    _common(p)
    p.add_argument("--answers", required=True)
    p.add_argument("--complete", action="store_true")
    p.add_argument("--letter", help="with --complete: write the signed letter here")
    p.set_defaults(func=cmd_assess)

    p = sub.add_parser("records", help="list records")
    _common(p)
    p.add_argument("--child", help="NHS number")
    p.add_argument("--status", choices=["draft", "completed"])
    p.add_argument("--search", help="full-text search of narratives")
    p.add_argument(
        "--overdue", action="store_true", help="only referrals with an overdue next action"
    )
    p.set_defaults(func=cmd_records)

    p = sub.add_parser("show", help="show one record")
    p.add_argument("record")
    _common(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("addendum", help="add a later fact to a completed record")
    p.add_argument("record")
    _common(p)
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument(
        "--text-file", metavar="FILE", help="the addendum text, from FILE or - (standard input)"
    )
    text.add_argument("--text", help="the addendum text (visible to other local users: avoid)")
    p.set_defaults(func=cmd_addendum)

    p = sub.add_parser("settings", help="show or (admin) change practice settings: KEY=VALUE …")
    _common(p)
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("letter", help="build and sign the referral letter of a completed record")
    p.add_argument("record")
    _common(p)
    p.add_argument("--out", required=True, help="where to write the signed PDF")
    p.set_defaults(func=cmd_letter)

    p = sub.add_parser(
        "migrate-v2",
        help="administrator: upgrade a version-1 vault to version 2 in place (backup first)",
    )
    _common(p)
    p.add_argument(
        "--lead",
        help="a safeguarding lead of this vault, present and typing their own password: the "
        "upgrade appoints them (else the break-glass ceremony does later)",
    )
    p.set_defaults(func=cmd_migrate_v2)

    p = sub.add_parser(
        "verify-letter",
        help="check a letter's signature (and, with --user, that it matches a record)",
    )
    p.add_argument("file")
    p.add_argument("--vault", type=Path, default=default_vault_dir())
    p.add_argument("--user", help="unlock the vault to match the letter to its record")
    p.add_argument("--ca", help="trust this practice CA certificate (PEM) instead of a vault")
    p.add_argument("--json", action="store_true")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=cmd_verify_letter)

    p = sub.add_parser("followup", help="record what happened after a referral")
    p.add_argument("record")
    _common(p)
    p.add_argument(
        "--event",
        required=True,
        choices=FOLLOWUP_EVENTS,
    )
    p.add_argument(
        "--reference",
        help="with --event fgm_police_reported: the police (101) reference; --at is when the "
        "report was made",
    )
    p.add_argument(
        "--decision",
        help="with --event decision: nfa, advice_signposting, early_help, s17_assessment, "
        "s47_enquiry, strategy_discussion, icpc, cp_plan, police_action, unknown",
    )
    note = p.add_mutually_exclusive_group()
    note.add_argument("--note-file", metavar="FILE", help="a note, from FILE or - (standard input)")
    note.add_argument("--note", help="a note (visible to other local users: avoid)")
    p.add_argument("--at", help="when it happened (default now), e.g. 2026-11-25T14:05")
    p.add_argument(
        "--detail", action="append", help="KEY=VALUE, e.g. method=secure_email or to=Team manager"
    )
    p.set_defaults(func=cmd_followup)

    p = sub.add_parser("export", help="lead: export records (CSV) or the audit report (PDF)")
    _common(p)
    p.add_argument("--what", required=True, choices=["records", "audit"])
    p.add_argument("--format", required=True, choices=["csv", "pdf"])
    p.add_argument("--out", required=True)
    p.add_argument("--status", choices=["draft", "completed"])
    p.add_argument(
        "--include-narratives", action="store_true", help="include free-text narratives in the CSV"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ca", help="the practice certificate authority")
    p.add_argument("ca_command", choices=["export"])
    _common(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_ca)
    return parser


def _print_error_json(message: str, errors: list[dict[str, str]]) -> None:
    """With --json, failures are also a JSON object on standard output."""
    _print_json({"ok": False, "error": message, "errors": errors})


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; map every known failure to a message and an exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_INVALID
    want_json = bool(getattr(args, "json", False))
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"gpshare: {exc}", file=sys.stderr)
        if want_json:
            _print_error_json(str(exc), [{"field": exc.field, "message": str(exc)}])
        return exc.code
    except ValidationFailed as exc:
        print(f"gpshare: {exc}", file=sys.stderr)
        for e in _errors_json(exc.errors):
            if e["field"]:
                print(f"  {e['field']}: {e['message']}", file=sys.stderr)
        if want_json:
            _print_error_json(str(exc), _errors_json(exc.errors))
        return EXIT_INVALID
    except PermissionDenied as exc:
        print(f"gpshare: {exc}", file=sys.stderr)
        if want_json:
            _print_error_json(str(exc), [])
        return EXIT_ERROR
    except StoreError as exc:
        print(f"gpshare: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("gpshare: interrupted; nothing half-written was kept.", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # last resort: a plain message, details (no patient data) to the log
        # A database error is checked here rather than in its own `except` so the CLI does not
        # load the service layer (and sqlcipher3) before a command needs it.
        from gpshare.services import DatabaseError, damaged_database

        if isinstance(exc, DatabaseError):
            print(f"gpshare: {damaged_database(exc)}", file=sys.stderr)
            return EXIT_ERROR
        from gpshare.crashlog import log_exception

        where = log_exception(exc)
        print(
            f"gpshare: an unexpected problem stopped this command ({type(exc).__name__}); nothing was "
            f"half-saved. Technical details for support are in {where}.",
            file=sys.stderr,
        )
        return EXIT_ERROR
