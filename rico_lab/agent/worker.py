"""The in-kernel agent worker: a livekit-agents AgentServer on the lab's background loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from livekit import api, rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    JobContext,
    JobExecutorType,
    RunContext,
    llm,
)
from livekit.agents.llm import ChatContext, ChatMessage, RealtimeModel
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.telemetry import loop_monitor
from livekit.agents.voice import SessionUsageUpdatedEvent, SpeechCreatedEvent, SpeechHandle

from ._loop_thread import LoopThread
from .errors import RoleError, WorkerError
from .livekit_server import LIVEKIT_ENV
from .record import Log
from .roles import Role
from .tools import function_tools

logger = logging.getLogger(__name__)

#: Name the worker registers under; tokens from :meth:`Lab.join` dispatch it explicitly.
AGENT_NAME = "rico_lab"
#: Data-channel topic on which the voice client reports each reply's latency at the listener.
LATENCY_TOPIC = "rico_lab.latency"
#: After end_session, how long the goodbye may take before the room closes regardless.
_GOODBYE_TIMEOUT_S = 60.0


@dataclass
class AgentSpec:
    """What a job needs from the lab: its roles, its model, and where to report trouble.

    ``log`` is where every conversation writes its events; ``conversations`` holds the
    live ones by room (each adds and removes itself); ``handlers(tool)`` gives the
    notebook's handlers for a tool at the moment it is called; ``delete_room(name)``
    closes a room for everyone.
    """

    load_role: Callable[[str], Role]
    make_model: Callable[[Role], RealtimeModel]
    model_label: str
    on_error: Callable[[str], None]
    log: Log
    conversations: dict[str, Conversation]
    handlers: Callable[[str], list[Callable[..., Any]]]
    delete_room: Callable[[str], Coroutine[Any, Any, None]]
    #: What a conversation cut off by its LiveKit server leaves its room's next agent: the
    #: conversation so far, by room. (A standalone worker has no server of its own to lose.)
    handover: dict[str, ChatContext] = field(default_factory=dict)
    #: The last lines of the LiveKit server's own log, when the lab runs it: a refused join
    #: reaches the SDK as a bare HTTP status, and only the server says why.
    server_log: Callable[[], str] = lambda: ""


def greeting_instructions(role: Role) -> str:
    """The one-off instruction for the agent's first turn.

    The ``Say: "..."`` form is what the local realtime model speaks verbatim; OpenAI's model
    reads it as the obvious request.
    """
    return f'Greet the user now. Say: "{role.greeting}"'


def describe_error(error: object) -> str:
    """One readable line for a session error: the provider's words, then its code.

    livekit wraps a model's error twice (RealtimeModelError → APIError → the provider's
    error body); a user wants the innermost message, not the reprs around it.
    """
    inner = getattr(error, "error", error)
    body = getattr(inner, "body", None)
    if isinstance(body, dict):
        detail, code = body.get("message"), body.get("code")
    else:
        detail, code = getattr(body, "message", None), getattr(body, "code", None)
    text = str(getattr(inner, "message", None) or inner)
    if detail:
        text += f": {detail}"
    if code:
        text += f" ({code})"
    return text


class Conversation:
    """One live conversation, seen from the agent's side: its room, session and role.

    It lives on its job's event loop; :meth:`switch` and role edits arrive from the
    notebook's thread and are handed over to that loop.
    """

    def __init__(self, ctx: JobContext, spec: AgentSpec, role: Role) -> None:
        self.room = ctx.room.name
        self.role = role
        self._ctx = ctx
        self._spec = spec
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Future[None]] = set()
        self._unsubscribe = role.on_change(self._from_any_thread(self._apply))
        # "applied": the version the model has now; "turn": the one the current reply was
        # asked under (an agent line is recorded when it ends, maybe after another edit)
        self._applied = self._turn = role.version
        self._options = role.realtime_options()  # the model settings the agent runs with
        self._tool_errors = 0
        self._showing_tool_error = False
        self._error_at: float | None = None  # when the model error on show happened
        # each Agent brings its own model (see _agent); the session has none of its own
        self.session: AgentSession[None] = AgentSession()
        self.session.on("error", self._on_error)
        self.session.on("session_usage_updated", self._on_usage)
        ctx.room.on("data_received", self._on_data)
        self.session.on("close", self._on_close)
        self._ended = False
        self.session.on("conversation_item_added", self._on_item)

    async def start(self) -> None:
        """Join the room, greet, and advertise role and model to the client.

        An agent that takes over a conversation its LiveKit server cut off goes on with it
        instead of greeting.
        """
        history = self._spec.handover.pop(self.room, None)
        agent = self._agent(self.role, history=history)
        await self.session.start(agent=agent, room=self._ctx.room)
        self._write(
            "session_started",
            **self._where(),
            model=self._spec.model_label,
            user=self.client(),
            resumed=history is not None,
        )
        await self._advertise()
        if history is None:
            self.session.generate_reply(instructions=greeting_instructions(self.role))

    def hand_over(self, reason: str) -> None:
        """Leave the conversation so far to the room's next agent; end this job (thread-safe).

        For when the LiveKit server is gone: a fresh agent that joins the restarted one
        sees the room as it is, which an agent reconnecting from before may not.
        """

        def leave() -> None:
            self._spec.handover[self.room] = self._history()
            self._end(reason)  # the record says why, not how the session then closed
            self._ctx.shutdown(reason)

        self._loop.call_soon_threadsafe(leave)

    def switch(self, role: Role) -> None:
        """Continue this conversation as ``role`` (thread-safe)."""
        self._from_any_thread(self._switch)(role)

    async def close(self, reason: object = "") -> None:
        """The conversation ended: stop following role edits, leave the lab's list."""
        self._unsubscribe()
        if self._spec.conversations.get(self.room) is self:
            del self._spec.conversations[self.room]
        self._end(str(reason or "job ended"))

    def _on_close(self, event: CloseEvent) -> None:
        """The session closed (the user left, or the model failed for good): end the job.

        At once: otherwise the agent sits in the room until LiveKit closes it, and a
        draining worker waits for that.
        """
        self._end(event.reason.value)
        self._ctx.shutdown(event.reason.value)

    def _end(self, reason: str) -> None:
        """Record the end once: when the session closes (the user left), or else the job."""
        if not self._ended:
            self._ended = True
            self._write("session_ended", reason=reason)

    def _from_any_thread(
        self, action: Callable[[Role], Coroutine[Any, Any, None]]
    ) -> Callable[[Role], None]:
        return lambda role: self._loop.call_soon_threadsafe(self._keep, action(role))

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _apply(self, role: Role) -> None:
        if role.realtime_options() == self._options:
            agent = self.session.current_agent
            await agent.update_instructions(role.render())
            await agent.update_tools(self._tools(role))
        else:
            # a realtime session keeps the voice it first spoke with (and its model): a new
            # voice or model needs a new session, which takes the conversation so far along
            self.session.update_agent(self._agent(role, history=self._history()))
        self._applied = role.version
        self._write("role_applied", **self._where(), how="edit")
        await self._advertise()

    async def _switch(self, role: Role) -> None:
        self._unsubscribe()
        self.role, self._applied = role, role.version
        self._unsubscribe = role.on_change(self._from_any_thread(self._apply))
        self.session.update_agent(self._agent(role, history=self._history()))
        self._write("role_applied", **self._where(), how="switch")
        await self._advertise()

    def _agent(self, role: Role, *, history: ChatContext | None = None) -> Agent:
        """An agent for ``role``, with a model made to the role's settings.

        It goes on from ``history``; a new Agent otherwise starts from nothing.
        """
        self._options = role.realtime_options()
        return Agent(
            instructions=role.render(),
            tools=self._tools(role),
            llm=self._spec.make_model(role),
            chat_ctx=history,
        )

    def _history(self) -> ChatContext:
        """The conversation so far, without the current agent's instructions."""
        before = self.session.current_agent.chat_ctx
        return before.copy(exclude_instructions=True, exclude_handoff=True)

    def _tools(self, role: Role) -> list[llm.Tool]:
        return function_tools(role.tools, self)

    # the ToolHost side of a conversation (see tools.py)

    @property
    def rtc_room(self) -> rtc.Room:
        """The LiveKit room, as the agent sees it."""
        return self._ctx.room

    def client(self) -> str | None:
        """The client the tools' UI calls go to: the participant the session listens to."""
        linked = self.session.room_io.linked_participant
        return linked.identity if linked is not None else None

    def handlers(self, tool: str) -> list[Callable[..., Any]]:
        """The lab's handlers for ``tool`` (``@lab.on_tool``), as they are now."""
        return self._spec.handlers(tool)

    def tool_done(self, call: dict[str, Any]) -> None:
        """Record the call; a failure is also logged and shown in the client until a success."""
        self._write("tool_call", **self._where(), **call)
        error = call.get("error")
        if error:
            self._spec.on_error(f"room {self.room}: tool {call['tool']}: {error}")
            self._tool_errors += 1
            failure = {"tool": call["tool"], "message": error[:400], "n": self._tool_errors}
            shown = json.dumps(failure)
        elif self._showing_tool_error:
            shown = ""
        else:
            return
        self._showing_tool_error = bool(error)
        self._keep(self._ctx.room.local_participant.set_attributes({"rico_lab.tool_error": shown}))

    def note(self, arguments: dict[str, Any]) -> None:
        """Keep a note the client saved in the lab's ``notes``."""
        note = {"title": arguments.get("title", ""), "text": arguments.get("text", "")}
        self._write("note", **self._where(), **note)

    def end_after_reply(self, context: RunContext) -> None:
        """Delete the room once the reply to this tool call (the goodbye) has been said.

        A realtime model that answers a tool result on its own starts a new speech for the
        reply; one that does not (OpenAI's) continues the calling speech. Either way the
        goodbye is over when both have played out.
        """
        calling = context.speech_handle
        later: list[SpeechHandle] = []

        def on_created(event: SpeechCreatedEvent) -> None:
            if event.speech_handle is not calling:
                later.append(event.speech_handle)

        self.session.on("speech_created", on_created)

        async def end() -> None:
            try:
                await asyncio.wait_for(calling.wait_for_playout(), _GOODBYE_TIMEOUT_S)
                for speech in later:
                    await asyncio.wait_for(speech.wait_for_playout(), _GOODBYE_TIMEOUT_S)
            except TimeoutError:
                logger.warning("room %s: the goodbye did not end; closing anyway", self.room)
            finally:
                self.session.off("speech_created", on_created)
            await self._spec.delete_room(self.room)

        self._keep(end())

    def _where(self) -> dict[str, str]:
        return {"role": self.role.name, "role_version": self._applied}

    def _write(self, kind: str, **fields: Any) -> None:
        self._spec.log.write(self.room, kind, **fields)

    async def _advertise(self) -> None:
        await self._ctx.room.local_participant.set_attributes(
            {
                "rico_lab.role": self.role.name,
                "rico_lab.role_version": self._applied,
                "rico_lab.model": self._spec.model_label,
            }
        )

    def _on_error(self, event: ErrorEvent) -> None:
        message = describe_error(event.error)
        self._spec.on_error(f"room {self.room}: {message}")
        # the voice client shows this attribute, so the user sees why the agent is silent
        self._set_error(message[:500])
        self._error_at = event.created_at
        self._write("error", message=message)

    def _set_error(self, message: str) -> None:
        self._keep(self._ctx.room.local_participant.set_attributes({"rico_lab.error": message}))

    def _on_data(self, packet: rtc.DataPacket) -> None:
        """The client's own measure of each reply's latency, sent over WebRTC."""
        if packet.topic != LATENCY_TOPIC or packet.participant is None:
            return
        try:
            measured = json.loads(packet.data)
            latency, after = float(measured["latency_s"]), str(measured.get("after", ""))
        except (ValueError, KeyError, TypeError):
            logger.warning("room %s: unreadable latency report %r", self.room, packet.data[:200])
            return
        self._write("client_latency", latency_s=latency, after=after)

    def _on_usage(self, event: SessionUsageUpdatedEvent) -> None:
        for usage in event.usage.model_usage:
            if isinstance(usage, LLMModelUsage):
                self._write(
                    "usage",
                    model=usage.model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                )

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not (isinstance(item, ChatMessage) and item.role in ("user", "assistant")):
            return
        if item.role == "user":
            self._turn = self._applied
        elif self._error_at is not None and item.created_at > self._error_at:
            # a reply begun after the error came through: the client stops showing it
            self._error_at = None
            self._set_error("")
        metrics = dict(item.metrics)
        self._write(
            "turn",
            role=self.role.name,
            role_version=self._turn,
            speaker="agent" if item.role == "assistant" else "user",
            text=item.text_content or "",
            interrupted=item.interrupted,
            started=metrics.get("started_speaking_at") or item.created_at,
            ended=metrics.get("stopped_speaking_at") or item.created_at,
            metrics=metrics,
        )


#: Participant attribute (or key of the room's JSON metadata) that names a room's role.
ROLE_ATTRIBUTE = "rico_lab.role"


def role_metadata(role: str) -> str:
    """Dispatch (or room) metadata that names ``role``, as :func:`role_name` reads it."""
    return json.dumps({"role": role})


def _role_in(metadata: str) -> str:
    """The ``role`` a JSON metadata object names; "" for none (or for other metadata)."""
    try:
        found = json.loads(metadata or "{}")
    except ValueError:
        return ""
    return str(found.get("role") or "") if isinstance(found, dict) else ""


async def role_name(ctx: JobContext) -> str:
    """The role a room asks for, from the first place that names one.

    The dispatch's metadata (a ``lab.join`` / ``rico-lab token`` token), then the room's
    metadata (``{"role": ...}``, set by whoever created the room), then the attribute
    ``rico_lab.role`` of the first participant; "" when none does (the default role).
    """
    named = _role_in(ctx.job.metadata) or _role_in(ctx.room.metadata)
    if named:
        return named
    participant = await ctx.wait_for_participant()
    return participant.attributes.get(ROLE_ATTRIBUTE, "")


async def _served_already(spec: AgentSpec, room: str, wait_s: float = 10.0) -> bool:
    """Whether a conversation of this worker already talks in ``room``.

    After a LiveKit server restart, the agent and the user both reconnect, and a user who
    is back first recreates the room and, through their token, dispatches a second agent.
    The first one keeps the room if it is connected, or gets connected within ``wait_s``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while (old := spec.conversations.get(room)) is not None:
        if old.rtc_room.isconnected():
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return False


def _make_entrypoint(spec: AgentSpec) -> Callable[[JobContext], object]:
    async def entrypoint(ctx: JobContext) -> None:
        try:
            await ctx.connect()
        except rtc.ConnectError as exc:
            # the user waits in the room for an agent that never comes: say why, in the lab
            said = spec.server_log()
            spec.on_error(
                f"room {ctx.job.room.name}: the agent could not join it: {exc}"
                + (f"\nlivekit-server's log ends:\n{said}" if said else "")
            )
            ctx.shutdown(f"could not join: {exc}")
            return
        if await _served_already(spec, ctx.room.name):
            logger.info("room %s: its agent is here already; this job leaves", ctx.room.name)
            ctx.shutdown("the room has its agent")
            return
        name = await role_name(ctx)
        try:
            role = spec.load_role(name)
        except RoleError as exc:
            # the room stays without an agent; whoever runs the worker sees why
            spec.on_error(f"room {ctx.room.name}: {exc}")
            ctx.shutdown(f"no role: {exc}")
            return
        conversation = Conversation(ctx, spec, role)
        ctx.add_shutdown_callback(conversation.close)
        spec.conversations[conversation.room] = conversation
        await conversation.start()

    return entrypoint


def _no_load() -> float:
    """The load this worker reports to LiveKit: none, whatever the machine is doing.

    LiveKit dispatches a job only to a worker whose reported load is under its target, and
    livekit-agents reports the machine's CPU use by default: on a busy laptop or CI runner
    every new conversation would then find no agent. A lab's worker serves this notebook
    alone, so it always takes the job.
    """
    return 0.0


def spare_the_loop_monitor() -> None:
    """Turn off livekit-agents' job loop monitor where it can freeze the whole process.

    The monitor samples every thread's stack (``sys._current_frames``) when a job loop
    lags, as it does while a notebook cell computes. Before Python 3.11.9 a garbage
    collection inside that call runs Python code holding the interpreter's thread-list lock;
    a livekit callback thread ending at that moment waits for the lock while holding the
    GIL, and every thread stops for good (CPython gh-106883, fixed in 3.11.9; 3.12 collects
    only between bytecodes). Seen here as a stalled test run; in a kernel it is a kernel
    that never answers again. Its knob is livekit-agents' own variable, read as each job
    thread starts; a value the user set is kept.
    """
    if sys.version_info < (3, 11, 9):
        os.environ.setdefault(loop_monitor.ENV_WARN_THRESHOLD_MS, "0")


class Worker:
    """An AgentServer with the thread job executor, so jobs (and tools) run in this process.

    ``livekit.agents.jupyter.run_app`` would block the cell; this runs ``AgentServer.run`` as
    a task on a :class:`LoopThread` and returns once the server has registered.

    A lab's worker serves its notebook alone: explicit dispatch by the lab's own name
    (``lab.agent_name``), no load reported, health port on loopback. A standalone worker
    (``rico-lab worker``) may take every room (``agent_name=""``), report its real load
    against ``load_threshold``, and serve its health check on ``http_port`` for an
    orchestrator. An infinite ``load_threshold`` means never full, so it reports no load
    either: LiveKit itself sends nothing to a worker reporting its target load (0.7).
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        spec: AgentSpec,
        agent_name: str = AGENT_NAME,
        load_threshold: float | None = None,
        http_host: str = "127.0.0.1",
        http_port: int = 0,
    ) -> None:
        self.url = url
        load: dict[str, Any] = {"load_threshold": float("inf"), "load_fnc": _no_load}
        if load_threshold is not None and not math.isinf(load_threshold):
            load = {"load_threshold": load_threshold}
        self._server = AgentServer(
            job_executor_type=JobExecutorType.THREAD,
            ws_url=url,
            api_key=api_key,
            api_secret=api_secret,
            host=http_host,
            port=http_port,
            num_idle_processes=1,
            shutdown_process_timeout=3.0,
            multiprocessing_context="spawn",
            max_retry=16,  # a restarted LiveKit server is found again (delays up to 10 s)
            **load,
        )
        self._server.rtc_session(_make_entrypoint(spec), agent_name=agent_name)
        self._run: concurrent.futures.Future[None] | None = None
        self.worker_id = ""
        #: How often LiveKit has registered the worker: it registers again after it lost
        #: its connection (a LiveKit server restart).
        self.registrations = 0

    def start(self, loop: LoopThread, timeout: float = 30.0) -> None:
        """Start the server on ``loop`` and wait until LiveKit has registered it.

        Raises:
            WorkerError: the server failed or did not register within ``timeout``.
        """
        registered: concurrent.futures.Future[str] = concurrent.futures.Future()
        env_before = {k: os.environ.get(k) for k in LIVEKIT_ENV}
        spare_the_loop_monitor()  # before the first job thread starts

        def on_registered(worker_id: str, _info: object) -> None:
            self.registrations += 1
            if not registered.done():
                registered.set_result(worker_id)

        self._server.on("worker_registered", on_registered)
        self._run = loop.submit(self._server.run())
        self._run.add_done_callback(
            lambda f: (
                registered.done()
                or registered.set_exception(
                    f.exception() or WorkerError("the agent worker stopped before registering")
                )
            )
        )
        try:
            self.worker_id = registered.result(timeout)
        except concurrent.futures.TimeoutError:
            self.stop(loop)
            raise WorkerError(
                f"the agent worker did not register with {self.url} within {timeout:.0f} s"
            ) from None
        except Exception as exc:
            self.stop(loop)
            raise WorkerError(f"the agent worker failed to start: {exc}") from exc
        finally:
            # AgentServer.run exports its credentials; a lab leaves the user's environment as it was
            for key, value in env_before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        logger.info("worker %s registered with %s", self.worker_id, self.url)

    def drain(self, loop: LoopThread, timeout: float) -> bool:
        """Take no new conversations and wait up to ``timeout`` s for running ones to end.

        Returns whether they all ended; :meth:`stop` then closes whatever is left.
        """
        draining = loop.submit(self._server.drain(timeout=None))
        try:
            draining.result(timeout)
        except TimeoutError:
            draining.cancel()  # it holds the server's lock, which closing needs
            return False
        return True

    def stop(self, loop: LoopThread, timeout: float = 15.0) -> None:
        """Close the server (and with it every running job); safe to call twice."""
        if loop.alive:
            loop.run(self._server.aclose(), timeout)
            if self._run is not None:
                try:
                    self._run.result(timeout)
                except (Exception, asyncio.CancelledError) as exc:
                    logger.debug("worker run ended with %r", exc)


def room_closer(
    url: str, api_key: str, api_secret: str, on_error: Callable[[str], None]
) -> Callable[[str], Coroutine[Any, Any, None]]:
    """``delete_room`` for an :class:`AgentSpec`: close a room for everyone in it."""

    async def delete_room(room: str) -> None:
        lk = api.LiveKitAPI(url, api_key, api_secret)
        try:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:
                on_error(f"room {room}: could not close it: {exc.message}")
        finally:
            await lk.aclose()

    return delete_room
