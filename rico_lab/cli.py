"""The ``rico-lab`` command: what a role needs outside a notebook.

``rico-lab token`` prints a join token for a room on any LiveKit server (``LIVEKIT_URL``,
``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``) that dispatches the rico_lab agent with a role,
the same token ``lab.join()`` makes, for a client outside Jupyter: LiveKit's agents
playground, a phone app, a colleague's browser.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from .errors import LabError
from .lab import join_token
from .roles import default_roles_dir, load_role

_ENV = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


def _token(args: argparse.Namespace) -> str:
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        raise LabError(f"rico-lab token: set {', '.join(missing)} (the LiveKit server to join)")
    if args.ttl_minutes <= 0:
        raise LabError(f"rico-lab token: --ttl-minutes must be positive, not {args.ttl_minutes}")
    role = load_role(args.role, Path(args.roles)).name  # an unknown role fails here, named
    room = args.room or f"{role}-{uuid.uuid4().hex[:8]}"
    identity = args.identity or f"user-{uuid.uuid4().hex[:6]}"
    url, key, secret = (os.environ[name] for name in _ENV)
    token = join_token(
        key, secret, room=room, identity=identity, role=role,
        ttl=timedelta(minutes=args.ttl_minutes),
    )  # fmt: skip
    if args.json:
        fields = {"url": url, "room": room, "identity": identity, "role": role, "token": token}
        return json.dumps(fields)
    return token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rico-lab", description="rico_lab outside a notebook: tokens for a role's room."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser(
        "token",
        help="print a join token that brings the rico_lab agent with a role",
        description="Print a join token for a room on $LIVEKIT_URL (key and secret from "
        "$LIVEKIT_API_KEY and $LIVEKIT_API_SECRET) that dispatches the rico_lab agent "
        "with ROLE when the user joins.",
    )
    token.add_argument("--role", default="demo", help="role name (default: demo)")
    token.add_argument(
        "--roles", default=str(default_roles_dir()), help="roles folder (default: %(default)s)"
    )
    token.add_argument("--room", help="room name (default: a new one per token)")
    token.add_argument("--identity", help="the user's identity (default: a new one)")
    token.add_argument(
        "--ttl-minutes", type=float, default=10.0, help="validity (default: %(default)s)"
    )
    token.add_argument(
        "--json", action="store_true", help="print url, room, identity, role and token as JSON"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a bad argument or setting prints what to fix and returns 2."""
    args = _parser().parse_args(argv)
    try:
        print(_token(args))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
