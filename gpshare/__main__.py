"""Entry point: `gpshare` with no arguments starts the desktop app, otherwise the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the desktop app or the command line."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from gpshare.about import version_text

        print(version_text())
        return 0
    if _is_app_invocation(args):
        from gpshare.ui.app import run_app

        return run_app(args)
    from gpshare.cli import main as cli_main

    return cli_main(args)


def _is_app_invocation(args: list[str]) -> bool:
    """True for `gpshare`, `gpshare --vault DIR` and `gpshare [--vault DIR] --smoke-test`."""
    rest = list(args)
    if "--smoke-test" in rest:
        rest.remove("--smoke-test")
    if (
        rest[:1] == ["--vault"]
        and len(rest) == 2
        or len(rest) == 1
        and rest[0].startswith("--vault=")
    ):
        rest = []
    return not rest


if __name__ == "__main__":
    sys.exit(main())
