"""One connection to the local realtime server: the Realtime protocol as a state machine.

Client events arrive in order and are answered as OpenAI answers them: the session config,
the input audio buffer with voice-activity detection, the conversation, and at most one
response at a time, whose words :mod:`rico_lab.local_script` decides.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from ._protocol import (
    EAGERNESS_SILENCE_MS,
    ClientError,
    ConversationItems,
    InputBuffer,
    check_item,
    check_types,
    default_config,
    merge_session,
    ms,
    new_id,
    normalize_turn_detection,
)
from ._response import ConnectionDropped, Response, ResponseStream
from ._vad import INPUT_RATE, SpeechDetector, SpeechMeter, VadEvent, speech_duration
from .script import (
    AudioTurn,
    Call,
    Drop,
    Fail,
    LocalScript,
    Speak,
    TextTurn,
    ToolResult,
    plan_reply,
)

logger = logging.getLogger(__name__)

#: Errors the session answers as OpenAI does, which are no trouble: logged at debug only.
_HARMLESS_ERRORS = frozenset({"response_cancel_not_active"})
_MIN_COMMIT_SAMPLES = INPUT_RATE // 10  # OpenAI refuses to commit less than 100 ms
# the JSON types of the fields a session or a response reads, checked before it reads them
_SESSION_TYPES = {"instructions": str, "tools": list, "audio": dict, "tool_choice": (str, dict)}
_RESPONSE_TYPES = {
    "instructions": str,
    "audio": dict,
    "output_modalities": list,
    "tools": list,
    "tool_choice": (str, dict),
    "metadata": dict,
}


class Session:
    """One websocket connection: its session config, conversation, audio buffer, responses.

    Args:
        ws: The accepted websocket, which the session reads until it closes.
        model: The model the client asked for, echoed in the session config.
        script: Returns the server's current script; it is asked at every response, since
            a script may be changed between turns.
        on_commit: Told (session id, turn, voiced seconds, samples, item id) of every
            committed audio turn, so the server can record it.
        on_update: Told (session id, instructions, tool names, voice) of every accepted
            session.update, so the server can record what the model was told.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        model: str,
        script: Callable[[], LocalScript],
        on_commit: Callable[[str, int, float, int, str], None],
        on_update: Callable[[str, str, list[str], str], None],
    ) -> None:
        self.id = new_id("sess")
        self.model = model
        self._ws = ws
        self._script = script
        self._on_commit_turn = on_commit
        self._on_update = on_update
        self._conversation = ConversationItems()
        self._config = default_config(self.id, model)
        self._seen_user_items: set[str] = set()
        self._turns = 0
        self._pending: list[AudioTurn | TextTurn | ToolResult] = []  # since the last response
        self._introduced = False
        self._buffer = InputBuffer()
        self._detector: SpeechDetector | None = None
        self._speech_item_id: str | None = None
        self._speech_start = 0
        self._speech_meter: SpeechMeter | None = None  # measures the open turn as it comes
        self._response: Response | None = None
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
        """Close the socket, which ends :meth:`run`, as a server shutting down does."""
        await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    async def _emit(self, type_: str, **fields: Any) -> None:
        event = {"type": type_, "event_id": new_id("event"), **fields}
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
        # the plugin cancels replies that have just ended, and OpenAI answers the same:
        # nothing is wrong, so nothing is shown (a warning prints red in a notebook cell)
        harmless = code in _HARMLESS_ERRORS
        log = logger.debug if harmless else logger.warning
        log("session %s: error %s: %s", self.id, code or type_, message)
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
        except ClientError as e:
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
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'session'.", "session"
            )
        if update.get("type", "realtime") != "realtime":
            raise ClientError(
                "invalid_value",
                "The local server only offers realtime sessions, not transcription ones.",
                "session.type",
            )
        check_types(update, _SESSION_TYPES, "session.")
        merged = merge_session(self._config, update)
        audio_in = merged["audio"]["input"]
        audio_in["turn_detection"] = normalize_turn_detection(audio_in.get("turn_detection"))
        if merged.get("output_modalities") not in (["audio"], ["text"]):
            raise ClientError(
                "invalid_value",
                "output_modalities must be ['audio'] or ['text'].",
                "session.output_modalities",
            )
        tools = merged.get("tools") or []
        check_types(merged["audio"]["output"], {"voice": str}, "session.audio.output.")
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools
        ):
            raise ClientError("invalid_value", "Every tool needs a name.", "session.tools")
        voice = merged["audio"]["output"]["voice"]
        if voice != self._config["audio"]["output"]["voice"] and self._assistant_audio():
            # OpenAI's rule, kept so that a client which relies on changing voices live
            # fails here as it would in production
            raise ClientError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
            )
        self._config = merged
        self._configure_vad()
        names = [t["name"] for t in tools]
        self._on_update(self.id, merged.get("instructions", ""), names, voice)
        await self._emit("session.updated", session=self._config)

    def _assistant_audio(self) -> bool:
        """Whether the model has spoken in this conversation (or is speaking now)."""
        if self._response is not None and self._response.audio_s > 0:
            return True
        spoken = self._conversation.audio_s
        return any(
            i.get("role") == "assistant" and i["id"] in spoken for i in self._conversation.items
        )

    def _turn_detection(self) -> dict[str, Any] | None:
        return self._config["audio"]["input"]["turn_detection"]

    def _vad_settings(self) -> tuple[float, int, int]:
        """(threshold, prefix padding ms, silence ms) for the current turn detection."""
        td = self._turn_detection() or {}
        if td.get("type") == "server_vad":
            return td["threshold"], td["prefix_padding_ms"], td["silence_duration_ms"]
        return 0.5, 300, EAGERNESS_SILENCE_MS[td.get("eagerness", "auto")]

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
        self._speech_meter = None

    # -- input audio ------------------------------------------------------------------------

    async def _on_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(event.get("audio") or "", validate=True)
        except (ValueError, TypeError) as e:  # binascii.Error, and text that is not ASCII
            raise ClientError("invalid_value", f"audio is not valid base64: {e}", "audio") from e
        if len(pcm) % 2:
            raise ClientError("invalid_value", "audio must be whole PCM16 samples.", "audio")
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        self._buffer.append(samples)
        if self._detector is None:
            return
        if self._speech_meter is not None:
            self._speech_meter.push(samples)
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
            self._speech_item_id = new_id("item")
            self._speech_start = max(
                self._buffer.start, event.sample - prefix_ms * INPUT_RATE // 1000
            )
            self._speech_meter = SpeechMeter(threshold)
            self._speech_meter.push(self._buffer.since(self._speech_start))
            await self._emit(
                "input_audio_buffer.speech_started",
                audio_start_ms=ms(self._speech_start),
                item_id=self._speech_item_id,
            )
            if td.get("interrupt_response") and self._response is not None:
                await self._cancel_response("turn_detected")
            return
        meter, self._speech_meter = self._speech_meter, None
        if self._speech_item_id is None or meter is None:
            return  # the turn was committed or cleared by the client meanwhile
        item_id, self._speech_item_id = self._speech_item_id, None
        await self._emit(
            "input_audio_buffer.speech_stopped", audio_end_ms=ms(event.sample), item_id=item_id
        )
        self._buffer.take(self._speech_start)
        turn = self._buffer.take(event.sample)
        await self._commit(turn, item_id, meter.duration(len(turn)))
        if td.get("create_response"):
            if self._response is None:
                await self._start_response({})
            else:  # interrupt_response is off: answer once the current response is done
                self._spawn(self._respond_after(self._response))

    async def _respond_after(self, response: Response) -> None:
        if response.task is not None:
            await asyncio.wait([response.task])
        if self._response is None:  # else that response already took this turn as its input
            await self._start_response({})

    async def _on_commit(self, event: dict[str, Any]) -> None:
        buffered = self._buffer.end - self._buffer.start
        if buffered < _MIN_COMMIT_SAMPLES:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {ms(buffered):.2f}ms of audio.",
            )
        item_id = self._speech_item_id or new_id("item")
        threshold, _, _ = self._vad_settings()
        samples = self._buffer.take(self._buffer.end)
        await self._commit(samples, item_id, speech_duration(samples, threshold))
        self._configure_vad()  # a manual commit ends any turn VAD had open

    async def _on_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        self._configure_vad()
        await self._emit("input_audio_buffer.cleared")

    async def _commit(self, samples: np.ndarray, item_id: str, duration: float) -> None:
        """Turn committed audio into a user item, as OpenAI does after VAD or a commit.

        ``duration`` is the voiced span of ``samples`` (:func:`speech_duration`).
        """
        self._turns += 1
        previous = self._conversation.last_id()
        item = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "object": "realtime.item",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self._conversation.items.append(item)
        self._conversation.audio_s[item_id] = len(samples) / INPUT_RATE
        self._seen_user_items.add(item_id)
        self._pending.append(AudioTurn(self._turns, duration))
        self._on_commit_turn(self.id, self._turns, duration, len(samples), item_id)
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

    async def _on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'item'.", "item"
            )
        item = copy.deepcopy(item)
        item_id = item.setdefault("id", new_id("item"))
        check_types(item, {"id": str, "status": str, "content": list}, "item.")
        check_types(event, {"previous_item_id": str}, "")
        if self._conversation.index(item_id) is not None:
            raise ClientError(
                "item_create_duplicate_item_id",
                f"Error adding item: an item with id '{item_id}' already exists.",
            )
        check_item(item)
        position = self._conversation.position_after(event.get("previous_item_id"))
        item.update(object="realtime.item", status=item.get("status") or "completed")
        self._note_input(item)
        # like OpenAI, events carry the item without its audio data
        for part in item.get("content") or []:
            part.pop("audio", None)
        self._conversation.items.insert(position, item)
        anchor = self._conversation.items[position - 1]["id"] if position else None
        await self._emit("conversation.item.added", previous_item_id=anchor, item=item)
        await self._emit("conversation.item.done", previous_item_id=anchor, item=item)

    def _note_input(self, item: dict[str, Any]) -> None:
        """Record a new user turn or tool result, which decides the next reply."""
        if item["type"] == "function_call_output":
            name = next(
                (
                    i["name"]
                    for i in self._conversation.items
                    if i["type"] == "function_call" and i.get("call_id") == item["call_id"]
                ),
                "unknown",
            )
            self._pending.append(ToolResult(name, item["output"]))
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
            self._pending.append(TextTurn(self._turns, text))

    async def _on_item_delete(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        index = self._conversation.index(item_id) if isinstance(item_id, str) else None
        if index is None:
            raise ClientError(
                "item_delete_invalid_item_id",
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                "item_id",
            )
        del self._conversation.items[index]
        self._conversation.audio_s.pop(item_id, None)
        await self._emit("conversation.item.deleted", item_id=item_id)

    async def _on_item_truncate(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        index = self._conversation.index(item_id) if isinstance(item_id, str) else None
        if index is None or self._conversation.items[index].get("role") != "assistant":
            raise ClientError(
                "item_truncate_invalid_item_id",
                f"Error truncating item: no assistant message with id '{item_id}'.",
                "item_id",
            )
        audio_end_ms = event.get("audio_end_ms")
        audio_ms = round(self._conversation.audio_s.get(item_id, 0.0) * 1000)
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise ClientError(
                "invalid_value", "audio_end_ms must be a non-negative integer.", "audio_end_ms"
            )
        if audio_end_ms > audio_ms:
            raise ClientError(
                "invalid_value",
                f"Audio content of {audio_ms}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        self._conversation.audio_s[item_id] = audio_end_ms / 1000
        await self._emit(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=event.get("content_index", 0),
            audio_end_ms=audio_end_ms,
        )

    # -- responses --------------------------------------------------------------------------

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        if self._response is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._response.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "response must be an object.", "response")
        check_types(params, _RESPONSE_TYPES, "response.")
        check_types(params.get("audio") or {}, {"output": dict}, "response.audio.")
        output = (params.get("audio") or {}).get("output") or {}
        check_types(output, {"voice": str}, "response.audio.output.")
        await self._start_response(params)

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self._response is None or (wanted and wanted != self._response.id):
            raise ClientError(
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
        response = Response(
            id=new_id("resp"),
            plan=self._plan(params, instructions),
            modalities=params.get("output_modalities") or self._config["output_modalities"],
            voice=out.get("voice") or self._config["audio"]["output"]["voice"],
            instructions=instructions,
            metadata=params.get("metadata"),
            max_output_tokens=params.get("max_output_tokens", self._config["max_output_tokens"]),
        )
        self._response = response
        response.task = asyncio.create_task(self._run_response(response))

    def _plan(self, params: dict[str, Any], instructions: str) -> Speak | Call | Fail | Drop:
        """Hand the newest input since the last response to the script's rules."""
        latest = self._pending[-1] if self._pending else None
        self._pending = []
        tools = params.get("tools")
        offered = self._config["tools"] if tools is None else tools
        plan = plan_reply(
            self._script(),
            latest,
            instructions=instructions,
            session_instructions=self._config.get("instructions") or "",
            introduced=self._introduced,
            tool_names=[t["name"] for t in offered if isinstance(t, dict) and "name" in t],
            tool_choice=params.get("tool_choice") or self._config.get("tool_choice") or "auto",
        )
        if latest is None:
            self._introduced = True  # a greeting, so later ones skip the intro
        return plan

    async def _run_response(self, response: Response) -> None:
        body = response.body(self._conversation.id, "in_progress")
        await self._emit("response.created", response=body)
        stream = ResponseStream(response, self._conversation, self._emit, self.id)
        try:
            status, details = await stream.run(self._script().stream_speedup)
        except ConnectionDropped:
            logger.warning("session %s: dropping the connection mid-response, as asked", self.id)
            self._response = None
            await self._ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"connection dropped")
            return
        # the next response may start as soon as the client sees response.done
        self._response = None
        logger.info("session %s: response %s %s", self.id, response.id, status)
        usage = response.usage(self._conversation)
        await self._emit(
            "response.done", response=response.body(self._conversation.id, status, details, usage)
        )
