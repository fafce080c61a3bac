"""A scripted, offline stand-in for the OpenAI Realtime API, served on loopback.

It speaks the GA Realtime protocol the way the unmodified ``livekit-plugins-openai``
``RealtimeModel`` uses it, so a real LiveKit agent and ``AgentSession`` run on top of it with
no network: turns are found by a real voice-activity detector, replies are deterministic
lines (see :class:`~rico_lab.local_script.LocalScript`) spoken by espeak-ng. This module
holds the HTTP side; each websocket connection is a :mod:`rico_lab._realtime_session`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from aiohttp import web

from ._session import Session
from .script import LocalScript

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommittedTurn:
    """One user audio turn committed from the input buffer.

    Attributes:
        session_id: The realtime session (one per websocket connection).
        turn: The turn number in that session, counting text turns too.
        duration_s: The voiced span of the committed audio, the number the model reports.
        num_samples: The committed audio at 24 kHz, with prefix padding and trailing silence.
        item_id: The user item created for it.
    """

    session_id: str
    turn: int
    duration_s: float
    num_samples: int
    item_id: str


@dataclass(frozen=True)
class SessionUpdate:
    """One accepted session.update: what the model was told from then on.

    Attributes:
        session_id: The realtime session (one per websocket connection).
        instructions: The session's instructions after the update.
        tools: Names of the tools the session offers after the update.
        voice: The voice the session speaks with after the update.
    """

    session_id: str
    instructions: str
    tools: list[str]
    voice: str


class LocalRealtimeServer:
    """An aiohttp server that answers ``RealtimeModel(base_url=server.base_url)``.

    Example:
        >>> server = LocalRealtimeServer(api_key="sk-local")
        >>> await server.start()
        >>> model = openai.realtime.RealtimeModel(base_url=server.base_url, api_key="sk-local")

    Attributes:
        script: What the model says and does; it may be changed between turns.
        committed: Every committed user audio turn, in order. Only ever appended to, so
            another thread may read it while the server runs.
        updates: Every accepted session.update, in order; appended to like ``committed``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        script: LocalScript | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._api_key = api_key
        self.script = script or LocalScript()
        self.committed: list[CommittedTurn] = []
        self.updates: list[SessionUpdate] = []
        self._runner: web.AppRunner | None = None
        self._sessions: set[Session] = set()

    @property
    def base_url(self) -> str:
        """The HTTP base URL to pass as ``RealtimeModel(base_url=...)``."""
        if self._runner is None:
            raise RuntimeError("the server is not started; await start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}/v1"

    async def start(self) -> None:
        """Bind and start serving; port 0 picks a free port, which ``base_url`` then shows."""
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle_realtime)
        app.router.add_get("/v1/models", self._handle_models)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, self._port), family=family)
        await web.SockSite(runner, sock).start()
        self._port = sock.getsockname()[1]
        self._runner = runner
        logger.info("local realtime server listening on %s", self.base_url)

    async def aclose(self) -> None:
        """Close every session, then the listener."""
        await asyncio.gather(*(s.close() for s in list(self._sessions)))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("local realtime server closed")

    async def __aenter__(self) -> LocalRealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _auth_error(self, request: web.Request) -> web.Response | None:
        """Reject a wrong key the way OpenAI does: HTTP 401 with an error body."""
        if self._api_key is None:
            return None
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if key == self._api_key:
            return None
        if key:
            masked = f"{key[:3]}{'*' * max(len(key) - 7, 3)}{key[-4:]}" if len(key) > 8 else "***"
            message = (
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
        else:
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        logger.warning("rejected %s %s: bad API key", request.method, request.path)
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "param": None,
            }
        }
        return web.json_response(body, status=401)

    async def _handle_models(self, request: web.Request) -> web.Response:
        if (denied := self._auth_error(request)) is not None:
            return denied
        models = [
            {"id": name, "object": "model", "created": 1756339200, "owned_by": "rico-lab"}
            for name in ("gpt-realtime", "gpt-realtime-mini")
        ]
        return web.json_response({"object": "list", "data": models})

    async def _handle_realtime(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {
                    "error": {
                        "message": "Expected a websocket upgrade.",
                        "type": "invalid_request_error",
                    }
                },
                status=400,
            )
        await ws.prepare(request)
        session = Session(
            ws,
            model=request.query.get("model", "gpt-realtime"),
            script=lambda: self.script,
            on_commit=lambda *turn: self.committed.append(CommittedTurn(*turn)),
            on_update=lambda *update: self.updates.append(SessionUpdate(*update)),
        )
        self._sessions.add(session)
        logger.info("realtime session %s opened (model %s)", session.id, session.model)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            logger.info("realtime session %s closed", session.id)
        return ws
