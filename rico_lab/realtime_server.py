"""A scripted, offline stand-in for the OpenAI Realtime API, served on loopback.

It speaks the GA Realtime protocol the way the unmodified ``livekit-plugins-openai``
``RealtimeModel`` uses it, so a real LiveKit agent and ``AgentSession`` run on top of it with
no network: turns are found by a real voice-activity detector, replies are deterministic
lines (see :class:`LocalScript`) spoken by espeak-ng.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import logging
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from rico_lab import speech
from rico_lab._vad import INPUT_RATE, SpeechDetector, VadEvent, speech_duration

logger = logging.getLogger(__name__)

_CHUNK_SAMPLES = INPUT_RATE // 10  # audio deltas of 100 ms, as OpenAI sends them
_MIN_COMMIT_SAMPLES = INPUT_RATE // 10  # OpenAI refuses to commit less than 100 ms
_TOOL_OUTPUT_CHARS = 120
_INTRO = "Local model here. "
_DEFAULT_GREETING = _INTRO + "Hello! This is rico lab's local model, not OpenAI."
_SAY = re.compile(r"Say:\s*[\"“](.+?)[\"”]", re.DOTALL)
_CALL = re.compile(r"/call\s+(\S+)\s*(.*)", re.DOTALL)
_PCM = {"type": "audio/pcm", "rate": INPUT_RATE}
# what each conversation item type must carry
_ITEM_FIELDS: dict[str, dict[str, type]] = {
    "message": {"role": str, "content": list},
    "function_call": {"name": str, "arguments": str},
    "function_call_output": {"call_id": str, "output": str},
}
# semantic_vad has no silence setting; its eagerness decides how long a pause ends a turn
_EAGERNESS_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 300}
# one counter for the whole process, so ids never repeat across sessions: an AgentSession
# that reconnects replays its old items into the new session
_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_local{next(_ids):07d}"


@dataclass
class LocalScript:
    """What the local model says and does; everything else follows fixed rules.

    Attributes:
        calls: Function calls by user turn number (1-based, audio and text turns alike):
            on that turn the model calls the named tool with these arguments instead of
            acknowledging the turn.
        stream_speedup: How many times faster than real time reply audio is streamed.
            Replies are paced rather than sent in one burst, so a user can still barge in
            while a response is being generated; ``math.inf`` only yields between chunks.
    """

    calls: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    stream_speedup: float = 10.0

    def __post_init__(self) -> None:
        if self.stream_speedup <= 0:
            raise ValueError(f"stream_speedup must be positive, got {self.stream_speedup}")


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
        self._runner: web.AppRunner | None = None
        self._sessions: set[_Session] = set()

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
        session = _Session(ws, self, model=request.query.get("model", "gpt-realtime"))
        self._sessions.add(session)
        logger.info("realtime session %s opened (model %s)", session.id, session.model)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            logger.info("realtime session %s closed", session.id)
        return ws


class _ClientError(Exception):
    """A client event the real API would refuse; becomes an ``error`` server event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


@dataclass(frozen=True)
class _AudioTurn:
    turn: int
    duration_s: float


@dataclass(frozen=True)
class _TextTurn:
    turn: int
    text: str


@dataclass(frozen=True)
class _ToolResult:
    name: str
    output: str


@dataclass(frozen=True)
class _Speak:
    text: str


@dataclass(frozen=True)
class _Call:
    name: str
    arguments: dict[str, Any]


@dataclass
class _Response:
    """One response in flight: what was asked for, what it will say, how it ended."""

    id: str
    plan: _Speak | _Call
    modalities: list[str]
    voice: str
    instructions: str
    metadata: Any
    max_output_tokens: Any
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str = "client_cancelled"
    output: list[dict[str, Any]] = field(default_factory=list)
    audio_s: float = 0.0
    task: asyncio.Task[None] | None = None

    async def pause(self, seconds: float) -> bool:
        """Wait between chunks (cut short by a cancel); True when the response is cancelled."""
        try:
            await asyncio.wait_for(self.cancelled.wait(), timeout=seconds)
        except TimeoutError:
            pass
        return self.cancelled.is_set()


class _InputBuffer:
    """The input audio buffer, addressed by sample number since the session began."""

    def __init__(self) -> None:
        self.start = 0
        self._chunks: list[np.ndarray] = []
        self.end = 0

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.end += len(samples)

    def take(self, until: int) -> np.ndarray:
        """Remove and return the audio before sample ``until``."""
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        cut = max(0, until - self.start)
        self._chunks = [audio[cut:]] if cut < len(audio) else []
        self.start = max(self.start, min(until, self.end))
        return audio[:cut]

    def clear(self) -> None:
        self.take(self.end)


def _ms(samples: int) -> int:
    return samples * 1000 // INPUT_RATE


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _normalize_turn_detection(td: Any) -> dict[str, Any] | None:
    """Fill in the defaults OpenAI echoes back, and refuse what it would refuse."""
    if td is None:
        return None
    if not isinstance(td, dict):
        raise _ClientError("invalid_type", "turn_detection must be an object or null.")
    given = {k: v for k, v in td.items() if v is not None}
    if td.get("type") == "server_vad":
        defaults = {"threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
    elif td.get("type") == "semantic_vad":
        defaults = {"eagerness": "auto"}
        if given.get("eagerness", "auto") not in _EAGERNESS_SILENCE_MS:
            raise _ClientError(
                "invalid_value",
                f"Invalid value: '{given['eagerness']}'. Supported values are: "
                "'low', 'medium', 'high', and 'auto'.",
                "session.audio.input.turn_detection.eagerness",
            )
    else:
        raise _ClientError(
            "invalid_value",
            f"Invalid value: '{td.get('type')}'. Supported values are: 'server_vad' and "
            "'semantic_vad'.",
            "session.audio.input.turn_detection.type",
        )
    return {**defaults, "create_response": True, "interrupt_response": True, **given}


def _merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Apply a partial session.update: ``audio.input`` and ``audio.output`` merge by field."""
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key == "audio" and isinstance(value, dict):
            for direction in ("input", "output"):
                if isinstance(value.get(direction), dict):
                    merged["audio"][direction].update(copy.deepcopy(value[direction]))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _failure(code: str | None, message: str) -> dict[str, Any]:
    """The status_details of a failed response."""
    return {"type": "failed", "error": {"type": "server_error", "code": code, "message": message}}


def _word_deltas(text: str) -> list[str]:
    """Split a line into transcript deltas, one word each, keeping the spaces."""
    return re.findall(r"\s*\S+", text)


class _Session:
    """One websocket connection: its session config, conversation, audio buffer, responses."""

    def __init__(self, ws: web.WebSocketResponse, server: LocalRealtimeServer, model: str) -> None:
        self.id = _new_id("sess")
        self.model = model
        self._ws = ws
        self._server = server
        self._conversation_id = _new_id("conv")
        self._config: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "You are rico lab's local scripted model.",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": dict(_PCM),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": _normalize_turn_detection({"type": "server_vad"}),
                },
                "output": {"format": dict(_PCM), "voice": speech.DEFAULT_VOICE, "speed": 1.0},
            },
        }
        self._items: list[dict[str, Any]] = []  # the conversation, in order
        self._audio_s: dict[str, float] = {}  # seconds of audio per item, for usage and truncation
        self._seen_user_items: set[str] = set()
        self._turns = 0
        self._pending: list[_AudioTurn | _TextTurn | _ToolResult] = []  # since the last response
        self._introduced = False
        self._buffer = _InputBuffer()
        self._detector: SpeechDetector | None = None
        self._speech_item_id: str | None = None
        self._speech_start = 0
        self._response: _Response | None = None
        self._send_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._handlers = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.truncate": self._on_item_truncate,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }
        self._configure_vad()

    # -- plumbing ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet with session.created, then answer client events until the socket closes."""
        await self._emit("session.created", session=self._config)
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.TEXT:
                    await self._dispatch(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._error("invalid_request_error", "Binary frames are not supported.")
        finally:
            tasks = list(self._background)
            if self._response is not None and self._response.task is not None:
                self._response.cancelled.set()
                tasks.append(self._response.task)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    async def _emit(self, type_: str, **fields: Any) -> None:
        event = {"type": type_, "event_id": _new_id("event"), **fields}
        if self._ws.closed:
            return
        async with self._send_lock:
            try:
                await self._ws.send_str(json.dumps(event))
            except ConnectionError:
                logger.debug("session %s: dropped %s, the socket is closing", self.id, type_)

    async def _error(
        self,
        type_: str,
        message: str,
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        logger.warning("session %s: error %s: %s", self.id, code or type_, message)
        error = {"type": type_, "code": code, "message": message, "param": param}
        await self._emit("error", error={**error, "event_id": event_id})

    async def _dispatch(self, raw: str) -> None:
        try:
            event = json.loads(raw)
        except json.JSONDecodeError as e:
            await self._error(
                "invalid_request_error", f"Invalid JSON in client event: {e}", "invalid_json"
            )
            return
        if not isinstance(event, dict):
            await self._error("invalid_request_error", "Client events must be JSON objects.")
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        handler = self._handlers.get(str(event.get("type")))
        if handler is None:
            await self._error(
                "invalid_request_error",
                f"Invalid value: '{event.get('type')}'. Supported values are: "
                + ", ".join(f"'{name}'" for name in self._handlers)
                + ".",
                "invalid_value",
                "type",
                event_id,
            )
            return
        if event["type"] != "input_audio_buffer.append":
            logger.debug("session %s: <<< %s", self.id, event["type"])
        try:
            await handler(event)
        except _ClientError as e:
            await self._error("invalid_request_error", e.message, e.code, e.param, event_id)
        except Exception:
            logger.exception("session %s: failed to handle %s", self.id, event["type"])
            await self._error(
                "server_error", "The server had an error while processing your request.", None
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- session ----------------------------------------------------------------------------

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        update = event.get("session")
        if not isinstance(update, dict):
            raise _ClientError(
                "missing_required_parameter", "Missing required parameter: 'session'.", "session"
            )
        if update.get("type", "realtime") != "realtime":
            raise _ClientError(
                "invalid_value",
                "The local server only offers realtime sessions, not transcription ones.",
                "session.type",
            )
        merged = _merge_session(self._config, update)
        audio_in = merged["audio"]["input"]
        audio_in["turn_detection"] = _normalize_turn_detection(audio_in.get("turn_detection"))
        if merged.get("output_modalities") not in (["audio"], ["text"]):
            raise _ClientError(
                "invalid_value",
                "output_modalities must be ['audio'] or ['text'].",
                "session.output_modalities",
            )
        tools = merged.get("tools") or []
        if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
            raise _ClientError("invalid_value", "Every tool needs a name.", "session.tools")
        self._config = merged
        self._configure_vad()
        await self._emit("session.updated", session=self._config)

    def _turn_detection(self) -> dict[str, Any] | None:
        return self._config["audio"]["input"]["turn_detection"]

    def _vad_settings(self) -> tuple[float, int, int]:
        """(threshold, prefix padding ms, silence ms) for the current turn detection."""
        td = self._turn_detection() or {}
        if td.get("type") == "server_vad":
            return td["threshold"], td["prefix_padding_ms"], td["silence_duration_ms"]
        return 0.5, 300, _EAGERNESS_SILENCE_MS[td.get("eagerness", "auto")]

    def _configure_vad(self) -> None:
        """(Re)start the detector when turn detection changes; null turns it off."""
        td = self._turn_detection()
        if td is None:
            self._detector = None
        else:
            threshold, _, silence_ms = self._vad_settings()
            self._detector = SpeechDetector(
                threshold=threshold, silence_duration_ms=silence_ms, start_sample=self._buffer.end
            )
        self._speech_item_id = None

    # -- input audio ------------------------------------------------------------------------

    async def _on_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, TypeError) as e:
            raise _ClientError("invalid_value", f"audio is not valid base64: {e}", "audio") from e
        if len(pcm) % 2:
            raise _ClientError("invalid_value", "audio must be whole PCM16 samples.", "audio")
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        self._buffer.append(samples)
        if self._detector is None:
            return
        for vad_event in self._detector.push(samples):
            await self._on_vad(vad_event)
        if not self._detector.speaking:
            # idle audio only matters as prefix padding for the next turn (the detector
            # reports an onset at most one 300 ms window plus a frame late)
            _, prefix_ms, _ = self._vad_settings()
            self._buffer.take(self._buffer.end - (prefix_ms + 400) * INPUT_RATE // 1000)

    async def _on_vad(self, event: VadEvent) -> None:
        threshold, prefix_ms, _ = self._vad_settings()
        td = self._turn_detection() or {}
        if event.kind == "start":
            self._speech_item_id = _new_id("item")
            self._speech_start = max(
                self._buffer.start, event.sample - prefix_ms * INPUT_RATE // 1000
            )
            await self._emit(
                "input_audio_buffer.speech_started",
                audio_start_ms=_ms(self._speech_start),
                item_id=self._speech_item_id,
            )
            if td.get("interrupt_response") and self._response is not None:
                await self._cancel_response("turn_detected")
            return
        if self._speech_item_id is None:
            return  # the turn was committed or cleared by the client meanwhile
        item_id, self._speech_item_id = self._speech_item_id, None
        await self._emit(
            "input_audio_buffer.speech_stopped", audio_end_ms=_ms(event.sample), item_id=item_id
        )
        self._buffer.take(self._speech_start)
        await self._commit(self._buffer.take(event.sample), item_id, threshold)
        if td.get("create_response"):
            if self._response is None:
                await self._start_response({})
            else:  # interrupt_response is off: answer once the current response is done
                self._spawn(self._respond_after(self._response))

    async def _respond_after(self, response: _Response) -> None:
        if response.task is not None:
            await asyncio.wait([response.task])
        if self._response is None:  # else that response already took this turn as its input
            await self._start_response({})

    async def _on_commit(self, event: dict[str, Any]) -> None:
        buffered = self._buffer.end - self._buffer.start
        if buffered < _MIN_COMMIT_SAMPLES:
            raise _ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {_ms(buffered):.2f}ms of audio.",
            )
        item_id = self._speech_item_id or _new_id("item")
        threshold, _, _ = self._vad_settings()
        await self._commit(self._buffer.take(self._buffer.end), item_id, threshold)
        self._configure_vad()  # a manual commit ends any turn VAD had open

    async def _on_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        self._configure_vad()
        await self._emit("input_audio_buffer.cleared")

    async def _commit(self, samples: np.ndarray, item_id: str, threshold: float) -> None:
        """Turn committed audio into a user item, as OpenAI does after VAD or a commit."""
        self._turns += 1
        duration = speech_duration(samples, threshold)
        previous = self._items[-1]["id"] if self._items else None
        item = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "object": "realtime.item",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self._items.append(item)
        self._audio_s[item_id] = len(samples) / INPUT_RATE
        self._seen_user_items.add(item_id)
        self._pending.append(_AudioTurn(self._turns, duration))
        self._server.committed.append(
            CommittedTurn(self.id, self._turns, duration, len(samples), item_id)
        )
        logger.info(
            "session %s: turn %d committed, %.2f s of speech in %.2f s of audio",
            self.id,
            self._turns,
            duration,
            len(samples) / INPUT_RATE,
        )
        await self._emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        await self._emit("conversation.item.added", previous_item_id=previous, item=item)
        await self._emit("conversation.item.done", previous_item_id=previous, item=item)
        if self._config["audio"]["input"].get("transcription") is not None:
            # there is no ASR here: the "transcript" says what was measured
            transcript = f"[speech {duration:.1f} s]"
            item["content"][0]["transcript"] = transcript
            await self._emit(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=transcript,
                usage={"type": "duration", "seconds": round(len(samples) / INPUT_RATE, 3)},
            )

    # -- conversation -----------------------------------------------------------------------

    def _index(self, item_id: str) -> int | None:
        return next((i for i, item in enumerate(self._items) if item["id"] == item_id), None)

    async def _on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise _ClientError(
                "missing_required_parameter", "Missing required parameter: 'item'.", "item"
            )
        item = copy.deepcopy(item)
        item_id = item.setdefault("id", _new_id("item"))
        if self._index(item_id) is not None:
            raise _ClientError(
                "item_create_duplicate_item_id",
                f"Error adding item: an item with id '{item_id}' already exists.",
            )
        kind = item.get("type")
        if kind not in _ITEM_FIELDS:
            raise _ClientError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                "and 'function_call_output'.",
                "item.type",
            )
        for name, wanted in _ITEM_FIELDS[kind].items():
            if not isinstance(item.get(name), wanted):
                raise _ClientError(
                    "missing_required_parameter", f"Missing or invalid item.{name}.", f"item.{name}"
                )
        if kind == "message" and item["role"] not in ("user", "assistant", "system"):
            raise _ClientError(
                "invalid_value", "role must be user, assistant or system.", "item.role"
            )
        previous = event.get("previous_item_id")
        if previous == "root":
            position = 0
        elif previous is None:
            position = len(self._items)
        elif (index := self._index(previous)) is not None:
            position = index + 1
        else:
            raise _ClientError(
                "invalid_value",
                f"Error adding item: the previous item with id '{previous}' does not exist.",
                "previous_item_id",
            )
        item.update(object="realtime.item", status=item.get("status") or "completed")
        self._note_input(item)
        # like OpenAI, events carry the item without its audio data
        for part in item.get("content") or []:
            part.pop("audio", None)
        self._items.insert(position, item)
        anchor = self._items[position - 1]["id"] if position else None
        await self._emit("conversation.item.added", previous_item_id=anchor, item=item)
        await self._emit("conversation.item.done", previous_item_id=anchor, item=item)

    def _note_input(self, item: dict[str, Any]) -> None:
        """Record a new user turn or tool result, which decides the next reply."""
        if item["type"] == "function_call_output":
            name = next(
                (
                    i["name"]
                    for i in self._items
                    if i["type"] == "function_call" and i.get("call_id") == item["call_id"]
                ),
                "unknown",
            )
            self._pending.append(_ToolResult(name, item["output"]))
            return
        if item.get("role") != "user" or item["id"] in self._seen_user_items:
            return  # a user item the client re-creates (e.g. to edit it) is not a new turn
        self._seen_user_items.add(item["id"])
        content = item["content"]
        text = " ".join(
            p["text"] for p in content if p.get("type") == "input_text" and p.get("text")
        )
        if text:
            self._turns += 1
            self._pending.append(_TextTurn(self._turns, text))

    async def _on_item_delete(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        index = self._index(item_id) if isinstance(item_id, str) else None
        if index is None:
            raise _ClientError(
                "item_delete_invalid_item_id",
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                "item_id",
            )
        del self._items[index]
        self._audio_s.pop(item_id, None)
        await self._emit("conversation.item.deleted", item_id=item_id)

    async def _on_item_truncate(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        index = self._index(item_id) if isinstance(item_id, str) else None
        if index is None or self._items[index].get("role") != "assistant":
            raise _ClientError(
                "item_truncate_invalid_item_id",
                f"Error truncating item: no assistant message with id '{item_id}'.",
                "item_id",
            )
        audio_end_ms = event.get("audio_end_ms")
        audio_ms = round(self._audio_s.get(item_id, 0.0) * 1000)
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise _ClientError(
                "invalid_value", "audio_end_ms must be a non-negative integer.", "audio_end_ms"
            )
        if audio_end_ms > audio_ms:
            raise _ClientError(
                "invalid_value",
                f"Audio content of {audio_ms}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        self._audio_s[item_id] = audio_end_ms / 1000
        await self._emit(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=event.get("content_index", 0),
            audio_end_ms=audio_end_ms,
        )

    # -- responses --------------------------------------------------------------------------

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        if self._response is not None:
            raise _ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._response.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise _ClientError("invalid_type", "response must be an object.", "response")
        await self._start_response(params)

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self._response is None or (wanted and wanted != self._response.id):
            raise _ClientError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        await self._cancel_response("client_cancelled")

    async def _cancel_response(self, reason: str) -> None:
        """Cancel the response in flight and wait until its closing events are out."""
        response = self._response
        if response is None or response.task is None:
            return
        response.cancel_reason = reason
        response.cancelled.set()
        await asyncio.shield(response.task)

    async def _start_response(self, params: dict[str, Any]) -> None:
        instructions = params.get("instructions")
        if instructions is None:
            instructions = self._config.get("instructions") or ""
        out = (params.get("audio") or {}).get("output") or {}
        response = _Response(
            id=_new_id("resp"),
            plan=self._plan(params, instructions),
            modalities=params.get("output_modalities") or self._config["output_modalities"],
            voice=out.get("voice") or self._config["audio"]["output"]["voice"],
            instructions=instructions,
            metadata=params.get("metadata"),
            max_output_tokens=params.get("max_output_tokens", self._config["max_output_tokens"]),
        )
        self._response = response
        response.task = asyncio.create_task(self._run_response(response))

    def _plan(self, params: dict[str, Any], instructions: str) -> _Speak | _Call:
        """Decide the reply from the newest input since the last response (see LocalScript)."""
        latest = self._pending[-1] if self._pending else None
        self._pending = []
        tools = params.get("tools")
        offered = self._config["tools"] if tools is None else tools
        tool_names = [t["name"] for t in offered if isinstance(t, dict) and "name" in t]
        tool_choice = params.get("tool_choice") or self._config.get("tool_choice") or "auto"
        plan: _Speak | _Call
        if isinstance(latest, _ToolResult):
            output = latest.output
            if len(output) > _TOOL_OUTPUT_CHARS:
                output = output[: _TOOL_OUTPUT_CHARS - 3].rstrip() + "..."
            plan = _Speak(f"The tool {latest.name} returned {output}.")
        elif latest is None:
            plan = self._greeting(instructions)
        elif (scripted := self._server.script.calls.get(latest.turn)) and tool_choice != "none":
            if scripted[0] not in tool_names:
                logger.warning("session %s: scripted tool %r is not offered", self.id, scripted[0])
            plan = _Call(scripted[0], dict(scripted[1]))
        elif isinstance(latest, _AudioTurn):
            plan = _Speak(f"Turn {latest.turn}: I heard {latest.duration_s:.1f} seconds of speech.")
        elif tool_choice != "none" and (match := _CALL.fullmatch(latest.text.strip())):
            plan = self._slash_call(latest.turn, match[1], match[2].strip(), tool_names)
        else:
            plan = _Speak(f"Turn {latest.turn}: you wrote: {latest.text}")
        if isinstance(plan, _Speak) and tool_names and tool_choice not in ("auto", "none"):
            # "required" or a named function: the model must call something
            forced = tool_choice.get("name") if isinstance(tool_choice, dict) else tool_names[0]
            plan = _Call(forced or tool_names[0], {})
        return plan

    def _greeting(self, instructions: str) -> _Speak:
        said = _SAY.findall(instructions) or _SAY.findall(self._config.get("instructions") or "")
        if not said:
            self._introduced = True
            return _Speak(_DEFAULT_GREETING)
        text = said[-1] if self._introduced else _INTRO + said[-1]
        self._introduced = True
        return _Speak(text)

    def _slash_call(self, turn: int, name: str, raw: str, tool_names: list[str]) -> _Speak | _Call:
        if name not in tool_names:
            return _Speak(
                f"Turn {turn}: there is no tool named {name}. "
                f"Available tools: {', '.join(tool_names) or 'none'}."
            )
        try:
            arguments = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            return _Speak(f"Turn {turn}: the arguments for {name} must be a JSON object.")
        return _Call(name, arguments)

    async def _run_response(self, response: _Response) -> None:
        await self._emit("response.created", response=self._response_body(response, "in_progress"))
        status, details = "completed", None
        try:
            if isinstance(response.plan, _Call):
                await self._stream_call(response, response.plan)
            else:
                await self._stream_message(response, response.plan.text)
            if response.cancelled.is_set():
                status, details = (
                    "cancelled",
                    {"type": "cancelled", "reason": response.cancel_reason},
                )
        except speech.SpeechSynthesisError as e:
            logger.error("session %s: %s", self.id, e)
            status, details = "failed", _failure("speech_synthesis_failed", str(e))
        except Exception as e:  # a failed response must still end, or the session is stuck
            logger.exception("session %s: response %s failed", self.id, response.id)
            status, details = "failed", _failure(None, str(e))
        # the next response may start as soon as the client sees response.done
        self._response = None
        logger.info("session %s: response %s %s", self.id, response.id, status)
        await self._emit(
            "response.done",
            response=self._response_body(response, status, details, self._usage(response)),
        )

    def _response_body(
        self,
        response: _Response,
        status: str,
        details: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": response.output,
            "conversation_id": self._conversation_id,
            "output_modalities": response.modalities,
            "max_output_tokens": response.max_output_tokens,
            "audio": {"output": {"format": dict(_PCM), "voice": response.voice}},
            "usage": usage,
            "metadata": response.metadata,
        }

    def _usage(self, response: _Response) -> dict[str, Any]:
        """Token counts shaped like OpenAI's: about 4 characters a token, audio by duration."""
        own = {item["id"] for item in response.output}
        text_in = _tokens(response.instructions) + sum(
            _tokens(part.get("text") or part.get("transcript") or "")
            for item in self._items
            if item["id"] not in own
            for part in item.get("content") or []
        )
        audio_in = sum(round(s * 10) for i, s in self._audio_s.items() if i in self._user_ids())
        text_out = sum(
            _tokens(part.get("text") or part.get("transcript") or "")
            for item in response.output
            for part in item.get("content") or []
        ) + sum(_tokens(item.get("arguments", "")) for item in response.output)
        audio_out = round(response.audio_s * 20)
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    def _user_ids(self) -> set[str]:
        return {item["id"] for item in self._items if item.get("role") == "user"}

    async def _add_output_item(self, response: _Response, item: dict[str, Any]) -> str | None:
        """Announce a new output item; returns the id it follows in the conversation."""
        await self._emit(
            "response.output_item.added", response_id=response.id, output_index=0, item=item
        )
        previous = self._items[-1]["id"] if self._items else None
        self._items.append(item)
        await self._emit("conversation.item.added", previous_item_id=previous, item=item)
        return previous

    async def _finish_output_item(
        self, response: _Response, item: dict[str, Any], previous: str | None
    ) -> None:
        response.output.append(item)
        await self._emit(
            "response.output_item.done", response_id=response.id, output_index=0, item=item
        )
        if (index := self._index(item["id"])) is not None:
            self._items[index] = item
            await self._emit("conversation.item.done", previous_item_id=previous, item=item)

    async def _stream_call(self, response: _Response, call: _Call) -> None:
        # one pause first, so a cancel can still stop the call; once it is announced it is
        # sent whole, because the plugin runs any function call whose output_item.done it sees
        if await response.pause(0):
            return
        item_id, call_id = _new_id("item"), _new_id("call")
        arguments = json.dumps(call.arguments)
        item = {
            "id": item_id,
            "type": "function_call",
            "object": "realtime.item",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        previous = await self._add_output_item(response, item)
        ids = {
            "response_id": response.id,
            "item_id": item_id,
            "output_index": 0,
            "call_id": call_id,
        }
        for start in range(0, len(arguments), 24):
            await self._emit(
                "response.function_call_arguments.delta", delta=arguments[start : start + 24], **ids
            )
        await self._emit(
            "response.function_call_arguments.done", name=call.name, arguments=arguments, **ids
        )
        done = {**item, "status": "completed", "arguments": arguments}
        logger.info("session %s: calling %s(%s)", self.id, call.name, arguments)
        await self._finish_output_item(response, done, previous)

    async def _stream_message(self, response: _Response, text: str) -> None:
        audio_out = "audio" in response.modalities
        item_id = _new_id("item")
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "object": "realtime.item",
            "status": "in_progress",
            "content": [],
        }
        previous = await self._add_output_item(response, item)
        ids = {
            "response_id": response.id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
        }
        part_key, part_type = ("transcript", "audio") if audio_out else ("text", "text")
        await self._emit(
            "response.content_part.added", part={"type": part_type, part_key: ""}, **ids
        )
        words = _word_deltas(text)
        said = ""
        step_s = _CHUNK_SAMPLES / INPUT_RATE / self._server.script.stream_speedup
        if audio_out:
            logger.info("session %s: saying %r", self.id, text)
            audio = await asyncio.to_thread(speech.synthesize, text, response.voice, INPUT_RATE)
            n_chunks = max(1, -(-len(audio) // _CHUNK_SAMPLES))
            for index in range(n_chunks):
                if response.cancelled.is_set():
                    break
                # the transcript runs a little ahead of the audio, as OpenAI's does
                while words and len(said) < len(text) * (index + 1) / n_chunks:
                    said += words[0]
                    await self._emit(
                        "response.output_audio_transcript.delta", delta=words.pop(0), **ids
                    )
                chunk = audio[index * _CHUNK_SAMPLES : (index + 1) * _CHUNK_SAMPLES]
                await self._emit(
                    "response.output_audio.delta",
                    delta=base64.b64encode(chunk.astype("<i2").tobytes()).decode(),
                    **ids,
                )
                response.audio_s += len(chunk) / INPUT_RATE
                if await response.pause(step_s):
                    break
            await self._emit("response.output_audio.done", **ids)
            await self._emit("response.output_audio_transcript.done", transcript=said, **ids)
            self._audio_s[item_id] = response.audio_s
        else:
            while words and not await response.pause(step_s):
                said += words[0]
                await self._emit("response.output_text.delta", delta=words.pop(0), **ids)
            await self._emit("response.output_text.done", text=said, **ids)
        part = {"type": part_type, part_key: said}
        await self._emit("response.content_part.done", part=part, **ids)
        content = {"type": f"output_{part_type}", part_key: said}
        status = "incomplete" if response.cancelled.is_set() else "completed"
        await self._finish_output_item(
            response, {**item, "status": status, "content": [content]}, previous
        )
