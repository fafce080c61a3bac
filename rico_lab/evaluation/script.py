"""Rehearsal scripts: the user's turns, the user's answers, and what should follow each turn.

Read from YAML; a bad one is refused with its file, turn and field named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import _bounded_yaml
from .._jsonschema import jsonschema
from ..client_methods import CLIENT_METHODS
from ..errors import LabError

_PANEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "method": {"enum": list(CLIENT_METHODS)},
        "contains": {"type": "string", "minLength": 1},
    },
}

_TURN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["say"],
    "properties": {
        "say": {"type": "string", "minLength": 1},
        "wait_s": {"type": "number", "minimum": 0},
        # a choice, a choice's index, form values, or null: never answers
        "answer": {"type": ["string", "integer", "object", "null"]},
        "expect": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "tool": {"type": "string"},
                "args": {"type": "object"},
                "contains": {"type": "string"},
                "latency_s": {"type": "number", "exclusiveMinimum": 0},
                "shown": _PANEL | {"minProperties": 1},
                "not_shown": _PANEL,  # {}: no panel at all
                "judge": {"type": "string", "minLength": 1},
                "no_tool": {"type": ["boolean", "string"]},
                "max_words": {"type": "integer", "minimum": 1},
            },
        },
    },
}

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["turns"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "turns": {"type": "array", "minItems": 1, "items": _TURN},
    },
}

#: The kinds of expectation, each a results column ``expect_<kind>`` (with ``answered``:
#: whether a turn's ``answer`` found its question).
EXPECTATIONS = (
    "tool", "contains", "latency", "shown", "not_shown", "judge", "no_tool", "max_words",
)  # fmt: skip


@dataclass(frozen=True)
class Panel:
    """A panel a turn should (or should not) show: its method, text in it, or both."""

    method: str | None = None
    contains: str | None = None

    def matches(self, shown: dict[str, Any]) -> bool:
        """Whether ``shown`` (a ``ui`` event) is such a panel (text case-insensitive)."""
        if self.method is not None and shown.get("method") != self.method:
            return False
        seen = f"{shown.get('title') or ''}\n{shown.get('text') or ''}".lower()
        return self.contains is None or self.contains.lower() in seen


@dataclass(frozen=True)
class Turn:
    """One user turn of a script, and what should follow it.

    Attributes:
        say: What the user types or says.
        wait_s: Pause before saying it (after the previous reply).
        answer: How the user answers an ``ask`` in this turn: a choice, a choice's index,
            form values; None never answers (as when ``answered`` is False).
        answered: Whether the script gives an ``answer`` (even ``null``) for this turn.
        tool: The agent should call this tool in its reply...
        args: ...with (at least) these arguments.
        contains: The agent's reply should contain this text (case-insensitive).
        latency_s: The reply's first audio should reach the user within this time.
        shown: The user's screen should show such a panel in this turn.
        not_shown: ...and no such panel.
        judge: The reply (what was said, and the tools called) should meet this criterion,
            as the lab's judge reads it.
        no_tool: The reply calls no tool (True), or not this one.
        max_words: The reply says at most this many words.
        audio: What the user says, as recorded (int16 at 24 kHz): a replayed spoken turn,
            said as it was instead of typed or synthesized from ``say``.
    """

    say: str
    wait_s: float = 0.0
    answer: Any = None
    answered: bool = False
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    contains: str | None = None
    latency_s: float | None = None
    shown: Panel | None = None
    not_shown: Panel | None = None
    judge: str | None = None
    no_tool: bool | str | None = None
    max_words: int | None = None
    audio: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Script:
    """Scripted user turns: ``Script.load("scripts/smoke.yaml")`` or ``Script(turns=...)``.

    ``where`` is the file it came from, which errors about it name.
    """

    turns: tuple[Turn, ...]
    name: str = "script"
    where: str = "script"

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a YAML script; a bad one raises :class:`LabError` naming file and field."""
        path = Path(path)
        try:
            raw = _bounded_yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise LabError(f"{path}: cannot read the script: {exc}") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: Any, where: str = "script") -> Script:
        """Build a script from its YAML form, validated."""
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(_SCHEMA).iter_errors(raw)
        )
        if error is not None:
            raise LabError(_describe(error, where))
        for n, turn in enumerate(raw["turns"], 1):
            _check_numbers(turn, n, where)
        turns = tuple(_turn(t) for t in raw["turns"])
        return cls(turns=turns, name=raw.get("name", Path(where).stem), where=where)

    def refuse(self, turn: int, field_name: str, problem: str) -> LabError:
        """The error for what turn ``turn`` (1-based) says in ``field_name``."""
        return LabError(f"{self.where}: turn {turn}: field {field_name!r}: {problem}")


def _check_numbers(turn: dict[str, Any], n: int, where: str) -> None:
    """Refuse what JSON Schema lets through: a NaN wait or latency, an endless wait.

    ``.nan`` passes ``minimum`` (no comparison with NaN is false) and ``.inf`` is a number,
    but a rehearsal would fail on the one mid-run and never end on the other.
    """
    numbers = {
        "wait_s": turn.get("wait_s"),
        "expect.latency_s": turn.get("expect", {}).get("latency_s"),
    }
    for name, value in numbers.items():
        endless = name == "wait_s" and value == math.inf
        if isinstance(value, float) and (math.isnan(value) or endless):
            raise LabError(f"{where}: turn {n}: field {name!r}: {value} is not a finite number")


def _turn(raw: dict[str, Any]) -> Turn:
    expect = dict(raw.get("expect", {}))
    for kind in ("shown", "not_shown"):
        if kind in expect:
            expect[kind] = Panel(**expect[kind])
    return Turn(
        say=raw["say"],
        wait_s=float(raw.get("wait_s", 0.0)),
        answer=raw.get("answer"),
        answered="answer" in raw,
        **expect,
    )


def _describe(error: jsonschema.ValidationError, where: str) -> str:
    """``file: turn N: field 'x.y': problem`` (or the top-level field)."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        path.append(next(k for k in error.instance if k not in allowed))
        problem = f"unknown field; expected one of: {', '.join(allowed)}"
    else:
        problem = error.message
    if len(path) >= 2 and path[0] == "turns" and isinstance(path[1], int):
        field_name = ".".join(map(str, path[2:])) or "(the turn)"
        return f"{where}: turn {path[1] + 1}: field {field_name!r}: {problem}"
    return f"{where}: field {'.'.join(map(str, path)) or '(top level)'!r}: {problem}"
