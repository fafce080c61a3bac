"""The ``rico-lab`` command: what a role needs outside a notebook.

``rico-lab worker`` serves the roles as a standalone LiveKit agent worker (see
:mod:`rico_lab.service`) until SIGTERM or Ctrl-C, which drain it; ``rico-lab serve-client``
serves the voice client as a web page (:mod:`rico_lab.web_client`).

``rico-lab token`` prints a join token for a room on any LiveKit server (``LIVEKIT_URL``,
``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``) that dispatches the rico_lab agent with a role,
the same token ``lab.join()`` makes, for a client outside Jupyter: LiveKit's agents
playground, a phone app, a colleague's browser.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from .agent.service import Service
from .errors import LabError
from .livekit_server import LIVEKIT_ENV
from .protocol import AGENT_NAME, join_token
from .roles import default_roles_dir, load_role
from .web_client import make_app

#: The long-running commands log to stderr, as a service manager collects it.
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _token(args: argparse.Namespace) -> str:
    url, key, secret = _livekit_env("token")
    if args.ttl_minutes <= 0:
        raise LabError(f"rico-lab token: --ttl-minutes must be positive, not {args.ttl_minutes}")
    role = load_role(args.role, Path(args.roles)).name  # an unknown role fails here, named
    room = args.room or f"{role}-{uuid.uuid4().hex[:8]}"
    identity = args.identity or f"user-{uuid.uuid4().hex[:6]}"
    token = join_token(
        key, secret, room=room, identity=identity, role=role,
        ttl=timedelta(minutes=args.ttl_minutes), agent_name=args.agent_name,
    )  # fmt: skip
    if args.json:
        fields = {"url": url, "room": room, "identity": identity, "role": role, "token": token}
        return json.dumps(fields)
    return token


def _livekit_env(command: str) -> tuple[str, str, str]:
    missing = [name for name in LIVEKIT_ENV if not os.environ.get(name)]
    if missing:
        raise LabError(f"rico-lab {command}: set {', '.join(missing)} (the LiveKit server)")
    url, key, secret = (os.environ[name] for name in LIVEKIT_ENV)
    return url, key, secret


def _worker(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT, then drain: running conversations may finish."""
    url, key, secret = _livekit_env("worker")
    threshold = args.load_threshold
    if not (threshold > 0 and (threshold <= 1 or math.isinf(threshold))):
        raise LabError(
            f"rico-lab worker: --load-threshold must be in (0, 1] or inf, not {threshold}"
        )
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    service = Service(
        url=url,
        api_key=key,
        api_secret=secret,
        roles_dir=Path(args.roles),
        role=args.role,
        runs_dir=Path(args.runs),
        agent_name=args.agent_name,
        load_threshold=args.load_threshold,
        http_port=args.http_port,
        record_audio=args.audio,
    )
    # from here on, a signal drains (while starting, it simply stops the process)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    who = f"agent {args.agent_name!r}" if args.agent_name else "every new room"
    print(
        f"rico-lab worker: serving {who} on {url} with roles from {args.roles} "
        f"(default: {args.role or 'none'}), model: {service.model}; log in {args.runs}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    live = len(service.conversations)
    print(
        f"rico-lab worker: stopping; {live} conversation(s) may finish "
        f"within {args.drain_timeout:g} s",
        flush=True,
    )
    drained = service.close(args.drain_timeout)
    print(f"rico-lab worker: stopped ({'drained' if drained else 'cut short'})", flush=True)
    return 0


def _serve_client(args: argparse.Namespace) -> int:
    """Serve the voice client page until SIGTERM/SIGINT; each visit is a new conversation."""
    url, key, secret = _livekit_env("serve-client")
    role = load_role(args.role, Path(args.roles)).name  # an unknown role fails here, named
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    address = f"http://{args.host}:{args.port}/"
    ready = f"rico-lab serve-client: the {role} role at {address} (LiveKit {url})"
    web.run_app(
        make_app(url, key, secret, role, args.agent_name),
        host=args.host,
        port=args.port,
        print=lambda _banner: print(ready, flush=True),  # once the port is bound
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rico-lab", description="rico_lab outside a notebook: a worker, a web client, tokens."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser(
        "worker",
        help="serve the roles as a standalone LiveKit agent worker",
        description="A LiveKit agent worker for the server at $LIVEKIT_URL (key and secret "
        "from $LIVEKIT_API_KEY and $LIVEKIT_API_SECRET) that runs the roles as a notebook's "
        "lab does. A room's role comes from its dispatch metadata, the room's metadata "
        '({"role": NAME}) or its first participant\'s attribute rico_lab.role, else --role. '
        "OpenAI answers with $OPENAI_API_KEY, rico_lab's local model without. SIGTERM or "
        "Ctrl-C stop it: no new rooms, and running conversations get --drain-timeout to end.",
    )
    worker.add_argument(
        "--roles", default=str(default_roles_dir()), help="roles folder (default: %(default)s)"
    )
    worker.add_argument("--role", help="role of a room that names none (default: no agent)")
    worker.add_argument(
        "--runs", default="runs", help="folder of the conversations' JSON lines (default: runs)"
    )
    worker.add_argument(
        "--agent-name",
        default=AGENT_NAME,
        help="the agent name dispatches ask for; '' takes every new room (default: %(default)s)",
    )
    worker.add_argument(
        "--load-threshold",
        type=float,
        default=0.7,
        help="CPU load (0-1) above which no new rooms come; inf: never full (default: %(default)s)",
    )
    worker.add_argument(
        "--http-port", type=int, default=8081, help="health check port (default: %(default)s)"
    )
    worker.add_argument(
        "--no-audio",
        dest="audio",
        action="store_false",
        help="keep no conversation's audio (by default an .ogg beside each record)",
    )
    worker.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds running conversations get to end after SIGTERM (default: %(default)s)",
    )
    page = commands.add_parser(
        "serve-client",
        help="serve the voice client as a web page, to share a role outside Jupyter",
        description="Serve the notebook's voice client as a plain web page: each visit joins "
        "a new room on $LIVEKIT_URL with ROLE (the token is minted here; the secret stays "
        "here). A worker serving --agent-name must be registered with that server: "
        "`rico-lab worker`, or a lab with LIVEKIT_URL set.",
    )
    page.add_argument("--role", default="demo", help="role name (default: demo)")
    page.add_argument(
        "--roles", default=str(default_roles_dir()), help="roles folder (default: %(default)s)"
    )
    page.add_argument(
        "--agent-name",
        default=AGENT_NAME,
        help="the worker's agent name; '' for one that takes every room (default: %(default)s)",
    )
    page.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    page.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    token = commands.add_parser(
        "token",
        help="print a join token that brings the rico_lab agent with a role",
        description="Print a join token for a room on $LIVEKIT_URL (key and secret from "
        "$LIVEKIT_API_KEY and $LIVEKIT_API_SECRET) that dispatches the agent --agent-name "
        "with ROLE when the user joins.",
    )
    token.add_argument("--role", default="demo", help="role name (default: demo)")
    token.add_argument(
        "--roles", default=str(default_roles_dir()), help="roles folder (default: %(default)s)"
    )
    token.add_argument(
        "--agent-name",
        default=AGENT_NAME,
        help="the worker's agent name; '' for one that takes every room (default: %(default)s)",
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
        if args.command == "worker":
            return _worker(args)
        if args.command == "serve-client":
            return _serve_client(args)
        print(_token(args))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
