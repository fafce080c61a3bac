"""The pieces of the Realtime protocol that the local session and its responses share.

Ids, client errors, session-config normalisation, the input audio buffer and the
conversation: state and rules with no websocket in them.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import speech
from ._vad import INPUT_RATE

PCM = {"type": "audio/pcm", "rate": INPUT_RATE}
"""The only audio format offered, in and out."""

EAGERNESS_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 300}
"""semantic_vad has no silence setting; its eagerness decides how long a pause ends a turn."""

# what each conversation item type must carry
_ITEM_FIELDS: dict[str, dict[str, type]] = {
    "message": {"role": str, "content": list},
    "function_call": {"name": str, "arguments": str},
    "function_call_output": {"call_id": str, "output": str},
}
# one counter for the whole process, so ids never repeat across sessions: an AgentSession
# that reconnects replays its old items into the new session
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A process-unique id shaped like OpenAI's (``item_…``, ``resp_…``), marked local."""
    return f"{prefix}_local{next(_ids):07d}"


def ms(samples: int) -> int:
    """Whole milliseconds of input audio, the unit the protocol reports positions in."""
    return samples * 1000 // INPUT_RATE


class ClientError(Exception):
    """A client event the real API would refuse; becomes an ``error`` server event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def normalize_turn_detection(td: Any) -> dict[str, Any] | None:
    """Fill in the defaults OpenAI echoes back, and refuse what it would refuse."""
    if td is None:
        return None
    if not isinstance(td, dict):
        raise ClientError("invalid_type", "turn_detection must be an object or null.")
    given = {k: v for k, v in td.items() if v is not None}
    if td.get("type") == "server_vad":
        defaults = {"threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
    elif td.get("type") == "semantic_vad":
        defaults = {"eagerness": "auto"}
        if given.get("eagerness", "auto") not in EAGERNESS_SILENCE_MS:
            raise ClientError(
                "invalid_value",
                f"Invalid value: '{given['eagerness']}'. Supported values are: "
                "'low', 'medium', 'high', and 'auto'.",
                "session.audio.input.turn_detection.eagerness",
            )
    else:
        raise ClientError(
            "invalid_value",
            f"Invalid value: '{td.get('type')}'. Supported values are: 'server_vad' and "
            "'semantic_vad'.",
            "session.audio.input.turn_detection.type",
        )
    return {**defaults, "create_response": True, "interrupt_response": True, **given}


def default_config(session_id: str, model: str) -> dict[str, Any]:
    """The session config a new connection starts with, as session.created reports it."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
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
                "format": dict(PCM),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": normalize_turn_detection({"type": "server_vad"}),
            },
            "output": {"format": dict(PCM), "voice": speech.DEFAULT_VOICE, "speed": 1.0},
        },
    }


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
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


def check_types(given: dict[str, Any], wanted: dict[str, type | tuple[type, ...]], at: str) -> None:
    """Refuse a field of the wrong JSON type (absent or null is fine), naming it as OpenAI does."""
    for name, kind in wanted.items():
        if given.get(name) is not None and not isinstance(given[name], kind):
            raise ClientError("invalid_type", f"Invalid type for '{at}{name}'.", at + name)


def check_item(item: dict[str, Any]) -> None:
    """Refuse a created item of an unknown type or without the fields its type needs."""
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in _ITEM_FIELDS:
        raise ClientError(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
            "and 'function_call_output'.",
            "item.type",
        )
    for name, wanted in _ITEM_FIELDS[kind].items():
        if not isinstance(item.get(name), wanted):
            raise ClientError(
                "missing_required_parameter", f"Missing or invalid item.{name}.", f"item.{name}"
            )
    if kind == "message" and item["role"] not in ("user", "assistant", "system"):
        raise ClientError("invalid_value", "role must be user, assistant or system.", "item.role")


class InputBuffer:
    """The input audio buffer, addressed by sample number since the session began."""

    def __init__(self) -> None:
        self.start = 0
        self._chunks: list[np.ndarray] = []
        self.end = 0

    def append(self, samples: np.ndarray) -> None:
        """Add audio at the end; positions already handed out stay valid."""
        self._chunks.append(samples)
        self.end += len(samples)

    def since(self, start: int) -> np.ndarray:
        """The audio from sample ``start`` to the end, left in the buffer."""
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio[max(0, start - self.start) :]

    def take(self, until: int) -> np.ndarray:
        """Remove and return the audio before sample ``until``."""
        audio = self.since(self.start)
        cut = max(0, until - self.start)
        self._chunks = [audio[cut:]] if cut < len(audio) else []
        self.start = max(self.start, min(until, self.end))
        return audio[:cut]

    def clear(self) -> None:
        """Drop everything buffered, as ``input_audio_buffer.clear`` asks."""
        self.take(self.end)


@dataclass
class ConversationItems:
    """One session's conversation: its items in order and how much audio each one holds.

    Attributes:
        id: The conversation id that responses report.
        items: The items as the client last saw them.
        audio_s: Seconds of audio per item id, for usage and for truncation.
    """

    id: str = field(default_factory=lambda: new_id("conv"))
    items: list[dict[str, Any]] = field(default_factory=list)
    audio_s: dict[str, float] = field(default_factory=dict)

    def index(self, item_id: str) -> int | None:
        """Where the item is, or None; ids are looked up because clients insert anywhere."""
        return next((i for i, item in enumerate(self.items) if item["id"] == item_id), None)

    def position_after(self, previous: str | None) -> int:
        """Where a created item goes: after ``previous``, first for ``"root"``, else last."""
        if previous == "root":
            return 0
        if previous is None:
            return len(self.items)
        if (index := self.index(previous)) is not None:
            return index + 1
        raise ClientError(
            "invalid_value",
            f"Error adding item: the previous item with id '{previous}' does not exist.",
            "previous_item_id",
        )

    def last_id(self) -> str | None:
        """The id a newly appended item follows, which events report as previous_item_id."""
        return self.items[-1]["id"] if self.items else None

    def user_ids(self) -> set[str]:
        """The ids of the user's items, whose audio counts as input tokens."""
        return {item["id"] for item in self.items if item.get("role") == "user"}
