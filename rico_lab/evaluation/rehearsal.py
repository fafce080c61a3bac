"""Rehearsals: the same scripted user turns, typed or spoken, against several roles.

A rehearsal joins each role's conversation with a real LiveKit participant (typed turns go
on ``lk.chat`` as the voice client sends them; spoken ones are espeak-ng speech published as
a microphone track), waits for each reply as the lab's log records it, and checks the
script's expectations. The frames it returns are the lab's own, for those conversations.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import yaml
from tqdm.auto import tqdm

from .._jsonschema import jsonschema
from ..errors import LabError
from ..protocol import JoinInfo
from ..roles import Role
from .participant import Participant, wait_until
from .record import Log


class Stage(Protocol):
    """What a rehearsal needs of a lab: its roles, new conversations, and its record."""

    log: Log

    def role(self, name: str) -> Role:
        """The lab's role ``name``; raises :class:`RoleError` for an unknown or broken one."""

    def join(self, role: str = "demo", identity: str | None = None) -> JoinInfo:
        """A new conversation with ``role``."""


def _wait(ready: Callable[[], object], timeout: float, what: str) -> None:
    try:
        wait_until(ready, timeout, what)
    except LabError as exc:
        raise LabError(f"rehearsal: {exc}") from None


_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["turns"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "turns": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["say"],
                "properties": {
                    "say": {"type": "string", "minLength": 1},
                    "wait_s": {"type": "number", "minimum": 0},
                    "expect": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "tool": {"type": "string"},
                            "args": {"type": "object"},
                            "contains": {"type": "string"},
                            "latency_s": {"type": "number", "exclusiveMinimum": 0},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Turn:
    """One user turn of a script, and what should follow it.

    Attributes:
        say: What the user types or says.
        wait_s: Pause before saying it (after the previous reply).
        tool: The agent should call this tool in its reply...
        args: ...with (at least) these arguments.
        contains: The agent's reply should contain this text (case-insensitive).
        latency_s: The reply's first audio should reach the user within this time.
    """

    say: str
    wait_s: float = 0.0
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    contains: str | None = None
    latency_s: float | None = None


@dataclass(frozen=True)
class Script:
    """Scripted user turns: ``Script.load("scripts/smoke.yaml")`` or ``Script(turns=...)``."""

    turns: tuple[Turn, ...]
    name: str = "script"

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a YAML script; a bad one raises :class:`LabError` naming file and field."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise LabError(f"{path}: cannot read the script: {exc}") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: Any, where: str = "script") -> Script:
        """Build a script from its YAML form, validated."""
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(_SCHEMA).iter_errors(raw)
        )
        if error is not None:
            field_name = ".".join(map(str, error.absolute_path)) or "(top level)"
            raise LabError(f"{where}: field {field_name!r}: {error.message}")
        turns = tuple(
            Turn(say=t["say"], wait_s=float(t.get("wait_s", 0.0)), **t.get("expect", {}))
            for t in raw["turns"]
        )
        return cls(turns=turns, name=raw.get("name", Path(where).stem))


@dataclass
class Rehearsal:
    """What a rehearsal produced: one row per role and turn in ``results``, and the log.

    ``results`` columns: ``role``, ``session``, ``mode``, ``turn`` (1-based), ``say``,
    ``reply``, ``tools`` (called in the reply), ``latency_s`` (end of the user's turn to the
    first agent audio at the participant), one ``expect_*`` column per kind of expectation
    (True, False, or None where the turn expects nothing of that kind) and ``passed``.
    """

    results: pd.DataFrame
    log: Log

    @property
    def turns(self) -> pd.DataFrame:
        """The rehearsal's turns, as in ``lab.log.turns``."""
        return self.log.turns

    @property
    def tool_calls(self) -> pd.DataFrame:
        """The rehearsal's tool calls, as in ``lab.log.tool_calls``."""
        return self.log.tool_calls

    @property
    def sessions(self) -> pd.DataFrame:
        """The rehearsal's conversations, as in ``lab.log.sessions``."""
        return self.log.sessions


def rehearse(
    lab: Stage,
    roles: list[str],
    script: Script | str | Path,
    *,
    mode: str = "text",
    parallel: int = 3,
    reply_timeout_s: float = 30.0,
    progress: bool = True,
) -> Rehearsal:
    """Play the same scripted user turns to each role, and check what comes back.

    ``script`` is a :class:`Script` or the path of its YAML file (``turns:`` of
    ``say:``, optional ``wait_s:`` and ``expect:`` with ``tool``/``args``,
    ``contains``, ``latency_s``). ``mode="text"`` types each turn as the voice client
    does; ``mode="audio"`` says it with espeak-ng through a microphone track. Up to
    ``parallel`` roles run at once, with a progress bar. Returns a :class:`Rehearsal`:
    ``results`` (one row per role and turn, with an ``expect_*`` column per
    expectation and ``passed``) and the log of those conversations.
    """
    if mode not in ("text", "audio"):
        raise ValueError(f"mode is 'text' or 'audio', not {mode!r}")
    if not isinstance(script, Script):
        script = Script.load(script)
    for role in roles:
        lab.role(role)  # an unknown or broken role fails here, before anything starts
    bar = tqdm(
        total=len(roles) * len(script.turns), desc=f"rehearse {script.name}", disable=not progress
    )
    connecting = threading.Lock()  # one participant joins at a time (see Participant.join)

    def one(role: str) -> list[dict[str, Any]]:
        participant = Participant(lab.join(role, identity=f"rehearsal-{role}"))
        try:
            with connecting:
                participant.join(reply_timeout_s)
            return _run(lab, participant, role, script, mode, reply_timeout_s, bar)
        finally:
            participant.close()

    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
            rows = [row for rows in pool.map(one, roles) for row in rows]
    finally:
        bar.close()
    sessions = {row["session"] for row in rows}
    log = lab.log.of(sessions)
    return Rehearsal(results=_results_frame(rows), log=log)


def _run(
    lab: Stage,
    participant: Participant,
    role: str,
    script: Script,
    mode: str,
    timeout: float,
    bar: tqdm,
) -> list[dict[str, Any]]:
    session = participant.info.room
    record = lab.log.follow(session)
    _wait(lambda: record.update().replies, timeout, f"{role}: the greeting")
    rows = []
    for number, turn in enumerate(script.turns, start=1):
        time.sleep(turn.wait_s)
        _wait(
            lambda: participant.agent_state() == "listening",
            timeout,
            f"{role}: the agent to listen",
        )
        before, calls_before = len(record.replies), len(record.calls)
        ended = participant.type(turn.say) if mode == "text" else participant.speak(turn.say)
        _wait(
            lambda before=before: len(record.update().replies) > before,
            timeout,
            f"{role}: a reply to turn {number}",
        )
        reply = " ".join(record.replies[before:])
        calls = record.calls[calls_before:]
        onset = participant.audio_onset_after(ended)
        latency = onset - ended if onset is not None else None
        checks = {
            "expect_tool": None
            if turn.tool is None
            else any(
                c["tool"] == turn.tool and _contains(c.get("arguments") or {}, turn.args)
                for c in calls
            ),
            "expect_contains": None
            if turn.contains is None
            else turn.contains.lower() in reply.lower(),
            "expect_latency": None
            if turn.latency_s is None
            else latency is not None and latency <= turn.latency_s,
        }
        rows.append(
            {
                "role": role,
                "session": session,
                "mode": mode,
                "turn": number,
                "say": turn.say,
                "reply": reply,
                "tools": [c["tool"] for c in calls],
                "latency_s": latency,
                **checks,
            }
        )
        bar.update()
    return rows


def _results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["role", "session", "mode", "turn", "say", "reply", "tools", "latency_s"]
    checks = ["expect_tool", "expect_contains", "expect_latency"]
    frame = pd.DataFrame(rows, columns=columns + checks)
    frame["passed"] = frame[checks].apply(lambda row: all(v is not False for v in row), axis=1)
    frame["latency_s"] = frame["latency_s"].astype("float64")
    frame["role"] = pd.Categorical(frame["role"])
    return frame


def _contains(arguments: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(arguments.get(key) == value for key, value in expected.items())
