"""`access-reporter web` and `access-reporter hash-password`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from reporter.config import load_file
from reporter.errors import UsageError

from .passwords import hash_password

DEFAULT_CONFIG = Path("config/reporter.yaml")


def add_parsers(sub: Any) -> None:
    web = sub.add_parser("web", help="serve the evidence web page for auditors (read-only)")
    web.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    web.add_argument("--host", help="address to listen on (default evidence.web.host)")
    web.add_argument("--port", type=int, help="TCP port (default evidence.web.port)")
    sub.add_parser(
        "hash-password",
        help="print a password hash for evidence.web.users (reads the password from the "
        "terminal, or one line from standard input)",
    )


def run_web_command(args: argparse.Namespace) -> int:
    from .app import run_web  # Starlette and uvicorn load only for the page itself

    settings = load_file(args.config, os.environ)
    web = settings.evidence.web
    port = web.port if args.port is None else args.port
    if not 0 <= port < 65536:
        raise UsageError(f"--port {port}: not a TCP port (0 = any free one)")
    run_web(settings, args.host or web.host, port)
    return 0


def hash_password_command(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise UsageError("password too short: use at least 12 characters")
    print(hash_password(password), file=stdout)
    return 0
