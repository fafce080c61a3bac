"""The lab's agent as a service: a standalone worker for any LiveKit server, no notebook.

What was tuned in a notebook runs unchanged here: the same roles, tools, model choice and
JSON-lines record (``runs/``). What a service needs beyond a lab: the role is picked per
room (see :func:`rico_lab.worker.role_name`), the worker may take every room, reports its
real load, serves a health check, and drains on shutdown instead of cutting people off.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ._loop_thread import LoopThread
from ._shared_interpreter import FreezesHeapFirst
from .errors import RoleError
from .livekit_server import check_livekit
from .local_script import LocalScript
from .model import Models, start_models
from .record import Log
from .roles import Role, load_role
from .worker import AGENT_NAME, AgentSpec, Conversation, Worker, room_closer

logger = logging.getLogger(__name__)


class Service(FreezesHeapFirst):
    """A registered agent worker on the LiveKit server at ``url``, until :meth:`close`.

    Args:
        url, api_key, api_secret: The LiveKit server (cluster or cloud) to serve.
        roles_dir: Where roles are loaded from, afresh for each new conversation, so an
            edited file reaches the next conversation.
        role: The role of a room that names none; None: such a room gets no agent.
        runs_dir: Where each conversation's events are written (one JSON-lines file each).
        agent_name: The name dispatches ask for; "" takes every new room.
        load_threshold: The load (CPU use, 0 to 1) above which LiveKit sends no new rooms.
        http_port: The health-check port (``GET /`` answers 200 while registered).
        script: What the local model says, when it answers (no ``OPENAI_API_KEY``).
        timeout: Seconds each part may take to start.

    Raises:
        LabError: the server is unreachable or refuses the key, the default role is invalid,
            the model key is rejected, or the worker does not register.
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        roles_dir: Path,
        role: str | None = None,
        runs_dir: Path = Path("runs"),
        agent_name: str = AGENT_NAME,
        load_threshold: float = 0.7,
        http_port: int = 8081,
        script: LocalScript | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url, self.roles_dir, self.default_role = url, roles_dir, role
        self.log = Log(runs_dir)
        self.errors: list[str] = []
        self.conversations: dict[str, Conversation] = {}
        self._loop = LoopThread("rico_lab.service")
        self._models: Models | None = None
        self._worker: Worker | None = None
        try:
            if role is not None:
                load_role(role, roles_dir)  # a broken default fails now, not in a room
            self._loop.run(check_livekit(url, api_key, api_secret), timeout)
            self._models = start_models(self._loop, script, timeout)
            spec = AgentSpec(
                load_role=self._load_role,
                make_model=self._models.make,
                model_label=self._models.label,
                on_error=self._on_error,
                log=self.log,
                conversations=self.conversations,
                handlers=lambda tool: [],
                delete_room=room_closer(url, api_key, api_secret, self._on_error),
            )
            self._worker = Worker(
                url=url,
                api_key=api_key,
                api_secret=api_secret,
                spec=spec,
                agent_name=agent_name,
                load_threshold=load_threshold,
                http_host="",
                http_port=http_port,
            )
            self._worker.start(self._loop, timeout)
        except BaseException:
            self.close()
            raise

    @property
    def model(self) -> str:
        """Who answers: ``"openai"`` or ``"local"``."""
        return self._models.label if self._models is not None else ""

    def _load_role(self, name: str) -> Role:
        if not name and self.default_role is None:
            raise RoleError(
                "the room names no role (dispatch metadata, room metadata or the participant "
                "attribute rico_lab.role) and the worker has no default (--role)"
            )
        return load_role(name or str(self.default_role), self.roles_dir)

    def _on_error(self, message: str) -> None:
        logger.error("agent error: %s", message)
        self.errors.append(message)

    def close(self, drain_timeout: float = 0.0) -> bool:
        """Stop: take no new rooms, give running conversations ``drain_timeout`` s to end.

        Then close whatever is left. Returns whether every conversation ended by itself.
        """
        drained = not self.conversations
        if self._worker is not None:
            if drain_timeout > 0:
                drained = self._worker.drain(self._loop, drain_timeout)
            self._worker.stop(self._loop)
            self._worker = None
        if self._models is not None:
            self._models.close(self._loop)
            self._models = None
        self._loop.stop()
        self.log.close()
        return drained
