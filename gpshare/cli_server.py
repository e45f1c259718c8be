"""`gpshare server …`: a practice on a PostgreSQL server (issue #14, DESIGN §10.2–10.3).

`server init` creates the practice on an empty database (schema, the least-privilege
workstation role) with this folder as its first workstation; `server join` makes another
folder a workstation of the same server. Every other command then works unchanged with
`--vault DIR`: the folder's vault.json names the server and holds no keys.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK = 0

Handler = Callable[[argparse.Namespace], int]


def target(args: argparse.Namespace) -> Any:
    """The ServerTarget `server init` creates the practice on."""
    from gpshare.services.vaults import ServerTarget

    return ServerTarget(args.dsn, args.role)


def cmd_join(args: argparse.Namespace) -> int:
    """Make --vault another workstation folder of the practice on --dsn."""
    from gpshare.services.vaults import ServerTarget, join_server

    practice = join_server(Path(args.vault), args.dsn)
    name = ServerTarget(args.dsn).name
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


def add_commands(sub: Any, common: Callable[..., None], *, init: Handler) -> None:
    """Add `server init` and `server join` to the top-level sub-parsers (`common` adds
    --vault/--json/--password-stdin; `init` runs the v2 init on a ServerTarget)."""
    p = sub.add_parser("server", help="a practice server (PostgreSQL): init, join")
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
    q.set_defaults(func=cmd_join)
