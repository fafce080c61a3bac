"""The host of an agent worker: what a lab and a standalone service both run, in one order.

Both start a background loop, the model (OpenAI or the local one), a registered worker, and
keep what their conversations share: the record, the live conversations, the errors. They
differ only in where roles come from, whether notebook handlers answer tools, how the worker
registers, and who owns the LiveKit server; those are the host's arguments.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livekit import api
from livekit.agents.llm import ChatContext

from .._loop_thread import LoopThread
from ..errors import LabError
from ..evaluation.record import Log
from ..local_model.script import LocalScript
from ..roles import Role
from .audio_path import DEFAULT_AUDIO_PATH, AudioPath
from .conversation import Conversation
from .model_choice import ModelChoice, start_models
from .worker import Worker

logger = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Leave what is alive now out of every later garbage collection (``gc.freeze``).

    A kernel that imported livekit-agents, pandas and the openai client holds some 400 000
    objects, and a full collection walks them all: 200-370 ms on the development machine,
    every thread stopped, now and then mid-reply (``benchmarks/startup.py`` prints it).
    A lab and a service call it in ``__new__``, before they exist: what is frozen is the
    imports and the notebook's objects, which mostly live as long as the kernel; they are
    still freed when nothing refers to them, only cycles among them wait for
    ``gc.unfreeze()``. Called from ``__init__`` it would freeze the lab too, and with it
    every part it goes on to hold, kept for good after ``close()``. What is garbage already
    is collected first, so none of it is kept.
    """
    gc.collect()
    gc.freeze()


class Host:
    """A worker on a loop of its own, and everything its conversations report to.

    Args:
        thread: The name of the background loop's thread.
        log: Where every conversation writes its events.
        load_role: The role a room names ("" when it names none).
        handlers: The notebook's handlers for a tool (``@lab.on_tool``), looked up per call.
        server_log: The last lines of the LiveKit server's log, when this process runs it.
        record_audio: Whether each conversation records its audio beside its record.
        audio_path: The frame sizes of the user's audio on its way to the model, and the
            lead of the agent's audio.
    """

    def __init__(
        self,
        *,
        thread: str,
        log: Log,
        load_role: Callable[[str], Role],
        handlers: Callable[[str], list[Callable[..., Any]]] = lambda _tool: [],
        server_log: Callable[[], str] = lambda: "",
        record_audio: bool = True,
        audio_path: AudioPath = DEFAULT_AUDIO_PATH,
    ) -> None:
        self.loop = LoopThread(thread)
        self.log = log
        #: every error a conversation reported, in order (also logged)
        self.errors: list[str] = []
        #: the live conversations, by room
        self.conversations: dict[str, Conversation] = {}
        #: the conversation so far of rooms whose LiveKit server cut them off, by room
        self.handover: dict[str, ChatContext] = {}
        self.worker: Worker | None = None
        self._models: ModelChoice | None = None
        self._load_role, self._handlers, self._server_log = load_role, handlers, server_log
        self.record_audio = record_audio
        self.audio_path = audio_path
        self._livekit = ("", "", "")

    def start(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        agent_name: str,
        script: LocalScript | None,
        timeout: float,
        **worker_options: Any,
    ) -> None:
        """Start the model, then a worker registered with the LiveKit server at ``url``.

        ``worker_options`` are :class:`~rico_lab.agent.worker.Worker`'s (load threshold,
        health port).

        Raises:
            LabError: the model key is rejected or the worker does not register.
        """
        self._livekit = (url, api_key, api_secret)
        self._models = start_models(self.loop, script, timeout)
        self.worker = Worker(
            url=url,
            api_key=api_key,
            api_secret=api_secret,
            host=self,
            agent_name=agent_name,
            **worker_options,
        )
        self.worker.start(self.loop, timeout)

    @property
    def models(self) -> ModelChoice:
        """How conversations get their model (OpenAI or the local one)."""
        if self._models is None:
            raise LabError("the model is not running: this lab (or service) is closed")
        return self._models

    def on_error(self, message: str) -> None:
        """Keep ``message`` in :attr:`errors`, and log it."""
        logger.error("agent error: %s", message)
        self.errors.append(message)

    def handlers(self, tool: str) -> list[Callable[..., Any]]:
        """The notebook's handlers for ``tool``, as they are now."""
        return self._handlers(tool)

    def load_role(self, name: str) -> Role:
        """The role ``name`` (a room's), as the host's owner loads it."""
        return self._load_role(name)

    def audio_file(self, room: str) -> Path | None:
        """A new OGG beside the room's runs file; None when not recording (or no folder)."""
        return self.log.new_audio_file(room) if self.record_audio else None

    def server_log(self) -> str:
        """The last lines of the embedded LiveKit server's log; "" without one."""
        return self._server_log()

    async def delete_room(self, room: str) -> None:
        """Close ``room`` for everyone in it (a room already gone is no error)."""
        lk = api.LiveKitAPI(*self._livekit)
        try:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:
                self.on_error(f"room {room}: could not close it: {exc.message}")
        finally:
            await lk.aclose()

    def close(self, drain_timeout: float = 0.0) -> bool:
        """Stop: take no new rooms, give running conversations ``drain_timeout`` s to end.

        Then close whatever is left, the model and the loop. Returns whether every
        conversation ended by itself. Safe to call twice.
        """
        drained = not self.conversations
        if self.worker is not None:
            if drain_timeout > 0:
                drained = self.worker.drain(self.loop, drain_timeout)
            self.worker.stop(self.loop)
            self.worker = None
        if self._models is not None:
            self._models.close(self.loop)
            self._models = None
        self.loop.stop()
        self.log.close()
        return drained
