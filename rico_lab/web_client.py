"""The voice client as a plain web page, to share a role outside Jupyter.

``rico-lab serve-client`` serves the very bundle the notebook widget runs, with a small
stand-in for anywidget's model (``page.js``). Each visit asks this server for a new
conversation: the token is minted here, so the LiveKit API secret never leaves the server.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from aiohttp import web

from .notebook.bundle import bundle
from .protocol import AGENT_NAME, join_token

logger = logging.getLogger(__name__)


# The page: one client, which page.js (widgets/src/page.ts) renders from POST /join's state.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rico_lab: TITLE</title>
<style>body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; }</style>
</head>
<body>
<main id="client"></main>
<script type="module" src="./page.js"></script>
</body>
</html>
"""


def join_state(url: str, token: str, room: str, identity: str, role: str) -> dict[str, Any]:
    """The widget state /join gives the page: VoiceClient's traitlets, key for key.

    ``widgets/src/state.ts`` declares the same keys; tests/test_widget_state.py holds the
    three together.
    """
    return {
        "url": url,
        "token": token,
        "room": room,
        "identity": identity,
        "role": role,
        "model_label": "",  # the agent tells the page (its rico_lab.model attribute)
        "auto_connect": True,
        "agent_timeout_s": 15.0,
        "status": "idle",
        "agent_state": "",
        "mic": "off",
        "error": "",
        "transcript": [],
        "role_version": "",
    }


def make_app(
    url: str, api_key: str, api_secret: str, role: str, agent_name: str = AGENT_NAME
) -> web.Application:
    """The page, its scripts, and ``POST /join``: a new room with ``role`` for each visit.

    ``agent_name`` is the worker's (``rico-lab worker --agent-name``): the agent each room
    asks for, or "" for a worker that takes every new room.
    """
    scripts = {name: bundle(name).read_bytes() for name in ("voice_client.js", "page.js")}

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("TITLE", role), content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(body=scripts[request.path[1:]], content_type="text/javascript")

    async def join(_request: web.Request) -> web.Response:
        room, identity = f"{role}-{uuid.uuid4().hex[:8]}", f"guest-{uuid.uuid4().hex[:6]}"
        token = join_token(
            api_key, api_secret, room=room, identity=identity, role=role, agent_name=agent_name
        )
        logger.info("room %s: a new conversation with %s for %s", room, role, identity)
        state = join_state(url, token, room, identity, role)
        return web.Response(text=json.dumps(state), content_type="application/json")

    app = web.Application()
    app.router.add_get("/", page)
    for name in scripts:
        app.router.add_get(f"/{name}", script)
    app.router.add_post("/join", join)
    return app
