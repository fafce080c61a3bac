"""One live conversation, seen from the agent's side: its room, session, role and record."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    JobContext,
    RunContext,
    llm,
    utils,
)
from livekit.agents.llm import ChatContext, ChatMessage
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice import SessionUsageUpdatedEvent, SpeechCreatedEvent, SpeechHandle

from ..client_methods import CLIENT_METHODS
from ..evaluation.record import Log
from ..protocol import LATENCY_TOPIC, UI_TOPIC
from ..roles import Role
from .attributes import AgentAttributes
from .audio_output import LeadingAudioOutput
from .audio_path import AudioPath
from .model_choice import ModelChoice
from .recording import Recording
from .tools import function_tools
from .typed_input import TypedInput

logger = logging.getLogger(__name__)

#: After end_session, how long the goodbye may take before the room closes regardless.
_GOODBYE_TIMEOUT_S = 60.0
#: How long an agent that resumes a conversation after a LiveKit server restart waits for
#: its user to come back, before it ends the conversation (rather than sit in the room
#: until LiveKit's empty timeout).
RESUME_GRACE_S = 30.0


class ConversationHost(Protocol):
    """What a conversation needs from whoever runs the worker (a lab or a service).

    :class:`rico_lab.agent.host.Host` is the one implementation.
    """

    #: where every conversation writes its events
    log: Log
    #: the model each agent gets (OpenAI or the local one)
    models: ModelChoice
    #: the frame sizes of the user's audio on its way to the model, the lead of the agent's
    audio_path: AudioPath
    #: the live conversations by room (each adds and removes itself)
    conversations: dict[str, Conversation]
    #: what a conversation cut off by its LiveKit server leaves its room's next agent: the
    #: conversation so far, by room
    handover: dict[str, ChatContext]

    def on_error(self, message: str) -> None:
        """Report trouble to whoever runs the worker."""

    def handlers(self, tool: str) -> list[Callable[..., Any]]:
        """The notebook's handlers for ``tool`` at the moment it is called."""

    async def delete_room(self, room: str) -> None:
        """Close ``room`` for everyone in it."""

    def load_role(self, name: str) -> Role:
        """The role a room names ("" for the default); raises :class:`RoleError`."""

    def audio_file(self, room: str) -> Path | None:
        """Where the conversation in ``room`` records its audio; None: it records none."""

    def server_log(self) -> str:
        """The last lines of the LiveKit server's own log, when this process runs it.

        A refused join reaches the SDK as a bare HTTP status, and only the server says why.
        """


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


def shown_report(report: Any) -> dict[str, str | None]:
    """The fields of a client's ``rico_lab.ui`` report, checked (``ValueError`` if wrong).

    A report is the client's word for what the user saw: a known method, text fields as
    strings (``answer`` and ``error`` may be null), and nothing else.
    """
    if not isinstance(report, dict) or report.get("method") not in CLIENT_METHODS:
        raise ValueError("not a report of a client method")
    fields: dict[str, str | None] = {"method": report["method"]}
    for key in ("title", "text", "answer", "error"):
        value = report.get(key)
        if not (isinstance(value, str) or (value is None and key in ("answer", "error"))):
            raise ValueError(f"report field {key!r} must be a string")
        fields[key] = value
    return fields


class Conversation:
    """One live conversation, seen from the agent's side: its room, session and role.

    It lives on its job's event loop; :meth:`switch` and role edits arrive from the
    notebook's thread and are handed over to that loop.
    """

    def __init__(self, ctx: JobContext, host: ConversationHost, role: Role) -> None:
        self.room = ctx.room.name
        self.role = role
        self._ctx = ctx
        self._host = host
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Future[None]] = set()
        self._unsubscribe = role.on_change(self._from_any_thread(self._apply))
        # "applied": the version the model has now; "turn": the one the current reply was
        # asked under (an agent line is recorded when it ends, maybe after another edit)
        self._applied = self._turn = role.version
        self._options = role.realtime_options()  # the model settings the agent runs with
        self._attributes = AgentAttributes(ctx.room, self._keep)
        self._recording: Recording | None = None
        self._output: LeadingAudioOutput | None = None  # the agent's audio, unless livekit's
        self._publishing: asyncio.Future[None] | None = None  # its track, until subscribed
        self._typed: TypedInput | None = None
        #: the lab's frame sizes, as the role overrides them when the conversation starts
        self._audio_path = replace(host.audio_path, **role.audio_path)
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
        history = self._host.handover.pop(self.room, None)
        agent = self._agent(self.role, history=history)
        # typed turns are read by TypedInput, which waits for a user not listed yet
        options = replace(self._audio_path.room_options(), text_input=False)
        output = self._audio_path.audio_output(self._ctx.room)
        if output is not None:  # room_options leaves the room's audio output to this one
            self.session.output.audio = output
        await self.session.start(agent=agent, room=self._ctx.room, room_options=options)
        if output is not None:  # publishes the track, as livekit-agents' room IO does its own
            self._output, self._publishing = output, asyncio.ensure_future(output.start())
        self._typed = TypedInput(self._ctx.room, self.session, self.client)
        self._write(
            "session_started",
            **self._where(),
            model=self._host.models.label,
            user=self.client(),
            resumed=history is not None,
            audio_path=asdict(self._audio_path),
        )
        await self._record_audio()
        await self._advertise()
        if history is None:
            self.session.generate_reply(instructions=greeting_instructions(self.role))
        else:
            self._keep(self._await_user(RESUME_GRACE_S))

    async def _await_user(self, grace_s: float) -> None:
        """End a resumed conversation whose user does not come back within ``grace_s``.

        The lab sends an agent to every room a server restart cut off, and the user's client
        rejoins by itself; one closed meanwhile never does.
        """
        deadline = self._loop.time() + grace_s
        while not any(
            p.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            for p in self._ctx.room.remote_participants.values()
        ):
            if self._ended:  # closed meanwhile, for whatever reason
                return
            if self._loop.time() > deadline:
                reason = "the user did not come back after the LiveKit server restarted"
                self._end(reason)
                self._ctx.shutdown(reason)
                return
            await asyncio.sleep(0.2)

    async def _record_audio(self) -> None:
        """Record both sides beside the record, unless the lab or the role says not to."""
        path = self._host.audio_file(self.room) if self.role.record_audio else None
        session = self.session
        if path is None or session.input.audio is None or session.output.audio is None:
            return
        self._recording = await Recording.start(session, path, self._write)

    def hand_over(self, reason: str) -> None:
        """Leave the conversation so far to the room's next agent; end this job (thread-safe).

        For when the LiveKit server is gone: a fresh agent that joins the restarted one
        sees the room as it is, which an agent reconnecting from before may not.
        """

        def leave() -> None:
            self._host.handover[self.room] = self._history()
            self._end(reason)  # the record says why, not how the session then closed
            self._ctx.shutdown(reason)

        self._loop.call_soon_threadsafe(leave)

    def switch(self, role: Role) -> None:
        """Continue this conversation as ``role`` (thread-safe)."""
        self._from_any_thread(self._switch)(role)

    async def close(self, reason: object = "") -> None:
        """The conversation ended: stop following role edits, leave the lab's list."""
        self._unsubscribe()
        if self._typed is not None:
            self._typed.close()
        if self._host.conversations.get(self.room) is self:
            del self._host.conversations[self.room]
        self._end(str(reason or "job ended"))
        if self._recording is not None:
            await self._recording.close()
        if self._publishing is not None:  # a user who never listened leaves it waiting
            await utils.aio.cancel_and_wait(self._publishing)
        if self._output is not None:
            await self._output.aclose()

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
            llm=self._host.models.make(role, send_chunk_ms=self._audio_path.send_chunk_ms),
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
        return self._host.handlers(tool)

    def tool_done(self, call: dict[str, Any]) -> None:
        """Record the call; a failure is also logged and shown in the client until a success."""
        self._write("tool_call", **self._where(), **call)
        error = call.get("error")
        if error:
            self._host.on_error(f"room {self.room}: tool {call['tool']}: {error}")
        self._attributes.tool_ended(call["tool"], error)

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
            await self._host.delete_room(self.room)

        self._keep(end())

    def _where(self) -> dict[str, str]:
        return {"role": self.role.name, "role_version": self._applied}

    def _write(self, kind: str, **fields: Any) -> None:
        self._host.log.write(self.room, kind, **fields)

    async def _advertise(self) -> None:
        await self._attributes.advertise(self.role.name, self._applied, self._host.models.label)

    def _on_error(self, event: ErrorEvent) -> None:
        message = describe_error(event.error)
        self._host.on_error(f"room {self.room}: {message}")
        self._attributes.model_failed(message, event.created_at)
        self._write("error", message=message)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        """What the user's client reports over WebRTC: latencies, and the panels it showed.

        Only the client the session listens to is heard: another participant on these
        topics is ignored, so nothing it sends lands in the record.
        """
        sender = packet.participant
        if packet.topic not in (LATENCY_TOPIC, UI_TOPIC) or sender is None:
            return
        if sender.identity != self.client():
            logger.warning("room %s: ignored a report from %s", self.room, sender.identity)
            return
        try:
            report = json.loads(packet.data)
            if packet.topic == LATENCY_TOPIC:
                kind = "client_latency"
                ended = report.get("ended")
                fields = {
                    "latency_s": float(report["latency_s"]),
                    "after": str(report.get("after", "")),
                    "ended": None if ended is None else float(ended),
                }
            else:
                kind, fields = "ui", {**self._where(), **shown_report(report)}
        except (ValueError, KeyError, TypeError):
            logger.warning("room %s: unreadable report %r", self.room, packet.data[:200])
            return
        self._write(kind, **fields)

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
        else:
            self._attributes.reply_began(item.created_at)
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
