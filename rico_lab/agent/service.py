"""The lab's agent as a service: a standalone worker for any LiveKit server, no notebook.

What was tuned in a notebook runs unchanged here: the same roles, tools, model choice and
JSON-lines record (``runs/``). What a service needs beyond a lab: the role is picked per
room (see :func:`rico_lab.agent.worker.role_name`), the worker may take every room, reports its
real load, serves a health check, and drains on shutdown instead of cutting people off.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

from ..errors import RoleError
from ..evaluation.record import Log
from ..livekit_server import check_livekit
from ..local_model.script import LocalScript
from ..protocol import AGENT_NAME
from ..roles import Role, load_role
from .audio_path import DEFAULT_AUDIO_PATH, AudioPath
from .conversation import Conversation
from .host import Host, freeze_heap

logger = logging.getLogger(__name__)


class Service:
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
        record_audio: Keep each conversation's audio beside its record (stereo OGG), unless
            its role says ``record_audio: false``.
        audio_path: The frame sizes of the user's audio on its way to the model and the
            lead of the agent's, as a lab's (a role can override them).

    Raises:
        LabError: the server is unreachable or refuses the key, the default role is invalid,
            the model key is rejected, or the worker does not register.
    """

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Self:
        """Freeze the heap first (:func:`~rico_lab.agent.host.freeze_heap`)."""
        freeze_heap()  # before the service exists (see freeze_heap)
        return super().__new__(cls)

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
        record_audio: bool = True,
        audio_path: AudioPath = DEFAULT_AUDIO_PATH,
    ) -> None:
        self.url, self.roles_dir, self.default_role = url, roles_dir, role
        self._host = Host(
            thread="rico_lab.service",
            log=Log(runs_dir),
            load_role=self._load_role,
            record_audio=record_audio,
            audio_path=audio_path,
        )
        self.log = self._host.log
        self.errors = self._host.errors
        self.conversations: dict[str, Conversation] = self._host.conversations
        try:
            if role is not None:
                load_role(role, roles_dir)  # a broken default fails now, not in a room
            self._host.loop.run(check_livekit(url, api_key, api_secret), timeout)
            self._host.start(
                url=url,
                api_key=api_key,
                api_secret=api_secret,
                agent_name=agent_name,
                script=script,
                timeout=timeout,
                load_threshold=load_threshold,
                http_host="",
                http_port=http_port,
            )
        except BaseException:
            self.close()
            raise

    @property
    def model(self) -> str:
        """Who answers: ``"openai"`` or ``"local"``."""
        return self._host.models.label if self._host.worker is not None else ""

    def _load_role(self, name: str) -> Role:
        if not name and self.default_role is None:
            raise RoleError(
                "the room names no role (dispatch metadata, room metadata or the participant "
                "attribute rico_lab.role) and the worker has no default (--role)"
            )
        return load_role(name or str(self.default_role), self.roles_dir)

    def close(self, drain_timeout: float = 0.0) -> bool:
        """Stop: take no new rooms, give running conversations ``drain_timeout`` s to end.

        Then close whatever is left. Returns whether every conversation ended by itself.
        """
        return self._host.close(drain_timeout)
