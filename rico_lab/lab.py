"""The lab: a LiveKit server, a local or OpenAI realtime model, and an in-kernel agent worker."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from livekit import api

from .agent.audio_path import DEFAULT_AUDIO_PATH, AudioPath
from .agent.conversation import Conversation
from .agent.host import Host, freeze_heap
from .errors import LabError
from .evaluation.judge import Judge
from .evaluation.recap import transcript, write_recap
from .evaluation.record import Log
from .evaluation.rehearsal import rehearse
from .evaluation.replay import replay
from .livekit_server import LiveKitServer, check_livekit, livekit_from_env
from .local_model.script import LocalScript
from .local_model.server import LocalRealtimeServer
from .notebook import magic
from .notebook.cells import shorten_during_cells
from .protocol import AGENT_NAME, JoinInfo, join_token, role_metadata
from .roles import Role, default_roles_dir, load_role

if TYPE_CHECKING:
    from .notebook.player import Player
    from .notebook.voice_client import VoiceClient

logger = logging.getLogger(__name__)

ToolHandler = TypeVar("ToolHandler", bound=Callable[..., Any])


class Lab:
    """Everything a notebook needs to talk to an agent, running in the background.

    ``Lab()`` starts (or connects to) a LiveKit server, starts the model (rico_lab's local
    realtime server unless ``OPENAI_API_KEY`` is set) and an agent worker inside this kernel,
    then returns: cells keep running while the agent talks.

    Args:
        port: port for the embedded LiveKit server; 0 picks a free one.
        roles_dir: folder of ``<role>.yaml`` files; default :func:`default_roles_dir`.
        runs_dir: where each conversation's events are written; default ``runs/`` beside
            the roles folder.
        script: what the local model says; ignored when OpenAI answers.
        timeout: seconds to wait for each part to start.
        smooth_busy_cells: in a notebook, run cells at a 0.2 ms thread switch interval
            while this lab is open, so a cell computing in pure Python does not stall the
            agent's speech for seconds (the cell gets about a quarter less done); False
            keeps Python's 5 ms.
        record_audio: keep each conversation's audio, both sides in one stereo OGG beside
            its runs file (``lab.log.sessions["audio"]``), for ``lab.listen`` and
            ``lab.replay``; False keeps none (a role can say so too: ``record_audio:
            false``). It costs about 6% CPU (``docs/performance.md``).
        audio_path: the frame sizes of the user's audio on its way to the model (10 ms
            input frames, 20 ms chunks to the model, against livekit's 50 and 100: 26 to 48 ms
            off the median reply in the browser, ``docs/performance.md``), and how far ahead
            of real time the agent's audio leaves (20 ms); a role can override them.

    Raises:
        LabError: a part could not start; the message says which and what to do.
    """

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Self:
        """Freeze the heap first (:func:`~rico_lab.agent.host.freeze_heap`)."""
        freeze_heap()  # before the lab exists (see freeze_heap)
        return super().__new__(cls)

    def __init__(
        self,
        *,
        port: int = 0,
        roles_dir: str | Path | None = None,
        runs_dir: str | Path | None = None,
        script: LocalScript | None = None,
        timeout: float = 30.0,
        smooth_busy_cells: bool = True,
        record_audio: bool = True,
        audio_path: AudioPath = DEFAULT_AUDIO_PATH,
    ) -> None:
        self.roles_dir = Path(roles_dir) if roles_dir is not None else default_roles_dir()
        runs = Path(runs_dir) if runs_dir is not None else self.roles_dir.parent / "runs"
        self._tool_handlers: dict[str, list[Callable[..., Any]]] = {}
        self._roles: dict[str, Role] = {}
        self.livekit_server: LiveKitServer | None = None
        self._host = Host(
            thread="rico_lab",
            log=Log(runs),
            load_role=self.role,
            handlers=lambda tool: list(self._tool_handlers.get(tool, ())),
            server_log=lambda: self.livekit_server.log_tail() if self.livekit_server else "",
            record_audio=record_audio,
            audio_path=audio_path,
        )
        #: every event of every conversation, as DataFrames (``lab.log.turns``, ...) and as
        #: one JSON-lines file per conversation in ``runs_dir``
        self.log = self._host.log
        #: every error the agent reported, in order
        self.errors = self._host.errors
        self._conversations: dict[str, Conversation] = self._host.conversations
        self.url = self.model = ""
        #: the name this lab's worker registers under, its own: on a LiveKit server that
        #: other labs (or workers) share, a conversation started here is answered here
        self.agent_name = f"{AGENT_NAME}-{uuid.uuid4().hex[:8]}"
        self.realtime_server: LocalRealtimeServer | None = None
        self._cut_rooms: dict[str, str] = {}  # rooms a server restart took the agent from
        self._registrations = 0
        self._loop = self._host.loop
        self._closed = False
        try:
            self._start(port, script, timeout)
        except BaseException:
            self.close()
            raise
        _open_labs.add(self)
        self.smooth_busy_cells = smooth_busy_cells
        shorten_during_cells(lambda: any(lab.smooth_busy_cells for lab in _open_labs))
        magic.edit_roles_of(self)

    def _start(self, port: int, script: LocalScript | None, timeout: float) -> None:
        if os.environ.get("LIVEKIT_URL"):
            self.url, self.api_key, self._api_secret = livekit_from_env()
            self._loop.run(check_livekit(self.url, self.api_key, self._api_secret), timeout)
        else:
            self.livekit_server = LiveKitServer(port=port)
            self.livekit_server.start(timeout)
            server = self.livekit_server
            self.url, self.api_key, self._api_secret = server.url, server.api_key, server.api_secret
            # a server that crashes (or is killed) comes back, on the lab's own thread
            watch = server.keep_running(
                self._host.on_error, on_down=self._cut_off, on_up=self._resume
            )
            self._loop.submit(watch)
        self._host.start(
            url=self.url,
            api_key=self.api_key,
            api_secret=self._api_secret,
            agent_name=self.agent_name,
            script=script,
            timeout=timeout,
        )
        self.model, self.realtime_server = self._host.models.label, self._host.models.local

    def _cut_off(self) -> None:
        """The LiveKit server died: each conversation hands over to the room's next agent."""
        self._cut_rooms = {room: c.role.name for room, c in self._conversations.items()}
        worker = self._host.worker
        self._registrations = worker.registrations if worker is not None else 0
        for conversation in list(self._conversations.values()):
            conversation.hand_over("the LiveKit server died")

    async def _resume(self, timeout: float = 30.0) -> None:
        """The server is back: send an agent to each room that lost one.

        Once the worker is registered again. A user who rejoined first may have brought an
        agent already; then the second one leaves.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (worker := self._host.worker) is not None and (
            worker.registrations == self._registrations
        ):
            if loop.time() > deadline:
                self._host.on_error("the agent worker did not register with the restarted server")
                return
            await asyncio.sleep(0.2)
        async with api.LiveKitAPI(self.url, self.api_key, self._api_secret) as lk:
            for room, role in self._cut_rooms.items():
                request = api.CreateAgentDispatchRequest(
                    agent_name=self.agent_name, room=room, metadata=role_metadata(role)
                )
                await lk.agent_dispatch.create_dispatch(request)

    def on_tool(self, name: str) -> Callable[[ToolHandler], ToolHandler]:
        """Decorator: run this function in the kernel whenever the model calls tool ``name``.

        It gets the call's arguments as keyword arguments, in any conversation of this lab,
        and runs on the lab's background thread (a plain function in a worker thread), so it
        can update ipywidgets, DataFrames or plots already on screen while another cell is
        running. It runs after the role's ``python:`` function and before its ``ui:``
        method; what it returns is the tool's result when the role gives the tool no other,
        and what it raises is told to the model. A role tool with neither ``python:`` nor
        ``ui:`` is answered by its handlers alone::

            @lab.on_tool("add_item")
            def show(item, quantity=1):
                order.value = f"{quantity} x {item}"
        """

        def register(handler: ToolHandler) -> ToolHandler:
            if not callable(handler):
                raise TypeError(f"@lab.on_tool({name!r}) decorates a function, not {handler!r}")
            self._tool_handlers.setdefault(name, []).append(handler)
            return handler

        return register

    def switch_role(self, room: str, role: str) -> None:
        """Continue the live conversation in ``room`` as ``role``, without reconnecting.

        Raises:
            RoleError: unknown or invalid role (the conversation keeps its role).
            LabError: no live conversation in that room.
        """
        new = self.role(role)
        if room not in self._conversations:
            raise LabError(
                f"no live conversation in room {room!r} (rooms: {list(self._conversations)})"
            )
        self._conversations[room].switch(new)

    def role(self, name: str) -> Role:
        """This lab's live copy of role ``name``, loaded from its roles folder on first use.

        ``name`` may be the path of a role file anywhere; the role is then this lab's under
        its own name too. Every conversation with the role uses this one object: assign to
        its fields (``lab.role("demo").instructions = ...``) and live conversations take the
        change on their next turn. Raises :class:`RoleError` for an unknown or invalid role.
        """
        if name not in self._roles:
            role = load_role(name, self.roles_dir)
            self._roles[name] = self._roles.setdefault(role.name, role)
        return self._roles[name]

    @property
    def judge(self) -> Judge:
        """Who judges a rehearsal's ``judge:`` expectations (see ``docs/evaluation.md``)."""
        return self._host.models.judge

    def join(self, role: str = "demo", identity: str | None = None) -> JoinInfo:
        """Open a new conversation with ``role``: a fresh room the agent is dispatched into.

        The returned token is scoped to that room and expires in ten minutes; the API secret
        never leaves Python.
        """
        if self._closed:
            raise LabError("this lab is closed: start a new one with rico_lab.Lab()")
        loaded = self.role(role)
        room = f"{loaded.name}-{uuid.uuid4().hex[:8]}"
        identity = identity or f"user-{uuid.uuid4().hex[:6]}"
        token = join_token(
            self.api_key,
            self._api_secret,
            room=room,
            identity=identity,
            role=loaded.name,
            agent_name=self.agent_name,
        )
        return JoinInfo(url=self.url, token=token, room=room, identity=identity, role=loaded.name)

    def talk(self, role: str = "demo", **options: Any) -> VoiceClient:
        """A voice client for a new conversation with ``role``, to show in the cell output.

        Setting its ``role`` (``client.role = "other"``) switches the live conversation.
        ``options`` are set on the widget: ``auto_connect=False``, ``agent_timeout_s``;
        another name raises :class:`TypeError`.
        """
        from .notebook.voice_client import VoiceClient  # anywidget loads only when needed

        client = VoiceClient(self.join(role), model_label=self.model, **options)
        client.switch_role = lambda name: self._switch_client(client, name)
        return client

    def _switch_client(self, client: VoiceClient, role: str) -> None:
        """A live conversation switches; one not (or no longer) live gets a new room."""
        if client.room in self._conversations:
            self.switch_role(client.room, role)
            return
        info = self.join(role)
        client.url, client.token, client.room = info.url, info.token, info.room

    #: ``lab.rehearse(roles, script, mode=...)``: see
    #: :func:`rico_lab.evaluation.rehearsal.rehearse`
    rehearse = rehearse

    #: ``lab.replay(session, roles)``: the recorded user of ``session``, said again to each
    #: role; see :func:`rico_lab.evaluation.replay.replay`
    replay = replay

    def listen(self, session: str) -> Player:
        """A player of conversation ``session``'s recording, to show in the cell output.

        Both sides' waveforms, each turn on the timeline; click a turn to hear it from
        there (see :class:`rico_lab.notebook.player.Player`).
        """
        from .notebook.player import Player  # anywidget loads only when needed

        return Player.of(self.log, session)

    def recap(self, session: str, *, timeout: float = 60.0) -> str:
        """Summarise conversation ``session`` (its room) with its role's ``recap`` prompt.

        The lab's model writes it, text only, from the record of the conversation so far
        (turns and tool calls), with the role's current prompt: edit ``recap`` and ask
        again. The recap is returned and recorded, so it shows in ``lab.log.sessions``
        (column ``recap``, the latest one) and in the conversation's runs file.

        Raises:
            LabError: no such conversation, or the model gave no recap.
        """
        if self._closed:
            raise LabError("this lab is closed: start a new one with rico_lab.Lab()")
        events = self.log.records(session)
        if not events:
            known = self.log.session_ids()
            raise LabError(f"recap: no conversation {session!r} in this lab's log (known: {known})")
        name = next((e["role"] for e in reversed(events) if e.get("role")), None)
        if name is None:
            raise LabError(f"recap: conversation {session!r} has no role in the log")
        role = self.role(name)
        model = self._host.models.make(role, modalities=["text"], turn_detection=None)
        recap = self._loop.submit(write_recap(model, role.recap, transcript(events)))
        try:
            text = recap.result(timeout)
        except TimeoutError:
            recap.cancel()  # its session closes; nothing waits for it any more
            raise LabError(
                f"recap of {session!r}: the model ({self.model}) gave no recap in {timeout:.0f} s"
            ) from None
        except Exception as exc:
            raise LabError(f"recap of {session!r}: the model ({self.model}) failed: {exc}") from exc
        self.log.write(
            session, "recap", text=text, role=role.name, role_version=role.version, model=self.model
        )
        return text

    def close(self) -> None:
        """Stop the worker, the local model and the embedded server; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _open_labs.discard(self)
        self._host.close()
        if self.livekit_server is not None:
            self.livekit_server.stop()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run: a closed lab starts no conversations."""
        return self._closed

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<rico_lab.Lab {state} livekit={self.url} model={self.model}>"


_open_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Kernel exit: close every lab still open, so nothing outlives the kernel."""
    for lab in list(_open_labs):
        lab.close()
