"""One response of the local realtime model, streamed the way OpenAI streams it.

A response is announced item by item with deltas in between, paced and cancellable, because
the LiveKit plugin and a user barging in both depend on that shape, not only on the words.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import speech
from ._protocol import PCM, ConversationItems, new_id
from ._vad import INPUT_RATE
from .script import Call, Drop, Fail, Speak

logger = logging.getLogger(__name__)

Emit = Callable[..., Awaitable[None]]
"""Sends one server event: ``await emit(type_, **fields)``."""

_CHUNK_SAMPLES = INPUT_RATE // 10  # audio deltas of 100 ms, as OpenAI sends them


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _failure(code: str | None, message: str) -> dict[str, Any]:
    """The status_details of a failed response."""
    return {"type": "failed", "error": {"type": "server_error", "code": code, "message": message}}


def _word_deltas(text: str) -> list[str]:
    """Split a line into transcript deltas, one word each, keeping the spaces."""
    return re.findall(r"\s*\S+", text)


@dataclass
class Response:
    """One response in flight: what was asked for, what it will say, how it ended."""

    id: str
    plan: Speak | Call | Fail | Drop
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

    def body(
        self,
        conversation_id: str,
        status: str,
        details: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``response`` object of response.created and response.done."""
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": self.output,
            "conversation_id": conversation_id,
            "output_modalities": self.modalities,
            "max_output_tokens": self.max_output_tokens,
            "audio": {"output": {"format": dict(PCM), "voice": self.voice}},
            "usage": usage,
            "metadata": self.metadata,
        }

    def usage(self, conversation: ConversationItems) -> dict[str, Any]:
        """Token counts shaped like OpenAI's: about 4 characters a token, audio by duration."""
        own = {item["id"] for item in self.output}
        text_in = _tokens(self.instructions) + sum(
            _tokens(part.get("text") or part.get("transcript") or "")
            for item in conversation.items
            if item["id"] not in own
            for part in item.get("content") or []
        )
        user_ids = conversation.user_ids()
        audio_in = sum(round(s * 10) for i, s in conversation.audio_s.items() if i in user_ids)
        text_out = sum(
            _tokens(part.get("text") or part.get("transcript") or "")
            for item in self.output
            for part in item.get("content") or []
        ) + sum(_tokens(item.get("arguments", "")) for item in self.output)
        audio_out = round(self.audio_s * 20)
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


class ConnectionDropped(Exception):
    """A :class:`Drop` plan reached its halfway mark: the session must close the socket."""


class ResponseStream:
    """Streams a response's output into the conversation, between created and done."""

    def __init__(
        self, response: Response, conversation: ConversationItems, emit: Emit, session_id: str
    ) -> None:
        self._response = response
        self._conversation = conversation
        self._emit = emit
        self._session_id = session_id

    async def run(self, stream_speedup: float) -> tuple[str, dict[str, Any] | None]:
        """Stream the planned call or line; returns the status and status_details to report.

        A failure becomes a failed status rather than an exception, because a response that
        never reaches response.done leaves the client waiting for good.
        """
        response = self._response
        try:
            if isinstance(response.plan, Fail):
                return "failed", _failure("scripted_failure", response.plan.message)
            if isinstance(response.plan, Call):
                await self._stream_call(response.plan)
            else:
                drop = isinstance(response.plan, Drop)
                await self._stream_message(response.plan.text, stream_speedup, drop=drop)
            if response.cancelled.is_set():
                return "cancelled", {"type": "cancelled", "reason": response.cancel_reason}
        except ConnectionDropped:
            raise
        except speech.SpeechSynthesisError as e:
            logger.error("session %s: %s", self._session_id, e)
            return "failed", _failure("speech_synthesis_failed", str(e))
        except Exception as e:
            logger.exception("session %s: response %s failed", self._session_id, response.id)
            return "failed", _failure(None, str(e))
        return "completed", None

    async def _add_output_item(self, item: dict[str, Any]) -> str | None:
        """Announce a new output item; returns the id it follows in the conversation."""
        await self._emit(
            "response.output_item.added", response_id=self._response.id, output_index=0, item=item
        )
        previous = self._conversation.last_id()
        self._conversation.items.append(item)
        await self._emit("conversation.item.added", previous_item_id=previous, item=item)
        return previous

    async def _finish_output_item(self, item: dict[str, Any], previous: str | None) -> None:
        self._response.output.append(item)
        await self._emit(
            "response.output_item.done", response_id=self._response.id, output_index=0, item=item
        )
        if (index := self._conversation.index(item["id"])) is not None:
            self._conversation.items[index] = item
            await self._emit("conversation.item.done", previous_item_id=previous, item=item)

    async def _stream_call(self, call: Call) -> None:
        # one pause first, so a cancel can still stop the call; once it is announced it is
        # sent whole, because the plugin runs any function call whose output_item.done it sees
        if await self._response.pause(0):
            return
        item_id, call_id = new_id("item"), new_id("call")
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
        previous = await self._add_output_item(item)
        ids = {
            "response_id": self._response.id,
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
        logger.info("session %s: calling %s(%s)", self._session_id, call.name, arguments)
        await self._finish_output_item(done, previous)

    async def _stream_message(self, text: str, stream_speedup: float, drop: bool = False) -> None:
        """Stream ``text`` as audio with a transcript, or as text.

        With ``drop``, only its first half, then raise :class:`ConnectionDropped`.
        """
        response = self._response
        audio_out = "audio" in response.modalities
        item_id = new_id("item")
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "object": "realtime.item",
            "status": "in_progress",
            "content": [],
        }
        previous = await self._add_output_item(item)
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
        step_s = _CHUNK_SAMPLES / INPUT_RATE / stream_speedup
        if audio_out:
            logger.info("session %s: saying %r", self._session_id, text)
            audio = await asyncio.to_thread(speech.synthesize, text, response.voice, INPUT_RATE)
            n_chunks = max(1, -(-len(audio) // _CHUNK_SAMPLES))
            for index in range(n_chunks):
                if response.cancelled.is_set():
                    break
                if drop and index >= n_chunks // 2:
                    raise ConnectionDropped
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
            self._conversation.audio_s[item_id] = response.audio_s
        else:
            while words and not await response.pause(step_s):
                if drop and len(said) >= len(text) // 2:
                    raise ConnectionDropped
                said += words[0]
                await self._emit("response.output_text.delta", delta=words.pop(0), **ids)
            await self._emit("response.output_text.done", text=said, **ids)
        part = {"type": part_type, part_key: said}
        await self._emit("response.content_part.done", part=part, **ids)
        content = {"type": f"output_{part_type}", part_key: said}
        status = "incomplete" if response.cancelled.is_set() else "completed"
        await self._finish_output_item({**item, "status": status, "content": [content]}, previous)
