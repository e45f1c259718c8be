"""Entry point: `gpshare` with no arguments starts the desktop app, otherwise the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the desktop app or the command line."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("--smoke-test",) or (args[0] == "--vault" and len(args) == 2):
        from gpshare.ui.app import run_app

        return run_app(args)
    from gpshare.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
