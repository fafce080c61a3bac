"""The voice client as a plain web page, to share a role outside Jupyter.

``rico-lab serve-client`` serves the very bundle the notebook widget runs, with a small
stand-in for anywidget's model. Each visit asks this server for a new conversation: the
token is minted here, so the LiveKit API secret never leaves the server.
"""

from __future__ import annotations

import json
import logging
import uuid

from aiohttp import web

from .notebook.bundle import bundle
from .protocol import AGENT_NAME, join_token

logger = logging.getLogger(__name__)


# The page: one client, its state from /join, and the part of anywidget's model interface
# the widget uses (widgets/src/model.ts). Nothing goes back to the server.
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
<script type="module">
import widget from "./voice_client.js";
const main = document.getElementById("client");
const response = await fetch("join", { method: "POST" });
if (!response.ok) {
  main.textContent = `Could not start a conversation: HTTP ${response.status}`;
} else {
  const state = await response.json();
  const listeners = new Map();
  const model = {
    get: (key) => state[key],
    set: (key, value) => {
      state[key] = value;
      for (const callback of listeners.get(`change:${key}`) ?? []) callback();
    },
    save_changes: () => {},
    on: (event, callback) => listeners.set(event, [...(listeners.get(event) ?? []), callback]),
    off: (event, callback) =>
      listeners.set(event, (listeners.get(event) ?? []).filter((c) => c !== callback)),
  };
  widget.render({ model, el: main });
}
</script>
</body>
</html>
"""


def make_app(
    url: str, api_key: str, api_secret: str, role: str, agent_name: str = AGENT_NAME
) -> web.Application:
    """The page, the bundle, and ``POST /join``: a new room with ``role`` for each visit.

    ``agent_name`` is the worker's (``rico-lab worker --agent-name``): the agent each room
    asks for, or "" for a worker that takes every new room.
    """
    script = bundle().read_bytes()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("TITLE", role), content_type="text/html")

    async def voice_client(_request: web.Request) -> web.Response:
        return web.Response(body=script, content_type="text/javascript")

    async def join(_request: web.Request) -> web.Response:
        room, identity = f"{role}-{uuid.uuid4().hex[:8]}", f"guest-{uuid.uuid4().hex[:6]}"
        token = join_token(
            api_key, api_secret, room=room, identity=identity, role=role, agent_name=agent_name
        )
        logger.info("room %s: a new conversation with %s for %s", room, role, identity)
        state = {
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
        return web.Response(text=json.dumps(state), content_type="application/json")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/voice_client.js", voice_client)
    app.router.add_post("/join", join)
    return app
