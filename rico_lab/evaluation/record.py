"""The conversation record: every event of every conversation, on disk and as DataFrames.

Each conversation appends JSON lines to a file of its own under the runs folder, flushed
per event, so a kernel that dies loses at most the event being written. The frames are
built from the same events, in memory while the lab runs (the conversation in progress
included) or from the files later (:func:`load_log`). Columns are listed in
``docs/record.md``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

#: Event types, and what each one carries besides ``t`` (epoch seconds), ``session``, ``type``.
EVENT_TYPES = {
    "session_started": "role, role_version, model, user, resumed (after a server restart), "
    "audio_path (frame sizes and lead in ms, as the role overrides the lab's)",
    "session_ended": "reason",
    "role_applied": "role, role_version, how (edit or switch)",
    "turn": "speaker, text, interrupted, started, ended, role, role_version, metrics",
    "tool_call": "tool, arguments, result, error, started, duration_s, rpc_s, role, role_version",
    "note": "title, text, role, role_version",
    "usage": "model, input_tokens, output_tokens (totals of the conversation so far)",
    "error": "message",
    "client_latency": "latency_s, after (speech or text), ended: measured in the client",
    "recap": "text, role, role_version, model: a summary written on request (lab.recap)",
    "ui": "method, title, text, answer, error, role, role_version: a panel the client showed",
    "recording_started": "file, started: the conversation's audio, written from now on",
    "recording": "file, started, duration_s: the conversation's audio, whole once this is written",
}

#: the events that name a recording: as it starts, and once it is whole
_RECORDING_EVENTS = ("recording_started", "recording")
_SESSION_COLUMNS = [
    "session", "role", "role_version", "model", "user", "started", "ended", "duration_s",
    "end_reason", "user_turns", "agent_turns", "interruptions", "tool_calls", "tool_errors",
    "errors", "recap", "file", "audio",
]  # fmt: skip
_SESSION_COUNTS = (
    "user_turns", "agent_turns", "interruptions", "tool_calls", "tool_errors", "errors",
)  # fmt: skip
_TURN_COLUMNS = [
    "session", "turn", "speaker", "text", "words", "started", "ended", "duration_s",
    "interrupted", "role", "role_version", "end_of_turn_delay_s", "ttft_s", "e2e_latency_s",
    "listener_latency_s",
]  # fmt: skip
_UI_COLUMNS = [
    "session", "turn", "t", "method", "title", "text", "answer", "error", "role", "role_version",
]  # fmt: skip
_TOOL_COLUMNS = [
    "session", "tool", "arguments", "result", "error", "ok", "started", "duration_s", "rpc_s",
    "role", "role_version",
]  # fmt: skip


@dataclass(frozen=True)
class Recording:
    """Where a conversation's audio is, and from when: its first sample's epoch time."""

    path: Path
    started: float
    #: the file is closed: False while the conversation goes on, or if its kernel died
    whole: bool


class Log:
    """Events of conversations and the frames built from them.

    The lab's log (``lab.log``) writes; one from :func:`load_log` only reads. Writing is
    thread-safe: every conversation's job thread writes to the same log.
    """

    def __init__(
        self,
        folder: Path | None = None,
        events: Iterable[dict[str, Any]] = (),
        files: dict[str, Path] | None = None,
    ) -> None:
        self.folder = folder
        self._events: list[dict[str, Any]] = list(events)
        self._files: dict[str, IO[str]] = {}
        self._paths: dict[str, Path] = dict(files or {})
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    def write(self, session: str, type: str, **fields: Any) -> dict[str, Any]:
        """Append one event of ``session`` (to its file too, flushed at once)."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; known: {', '.join(EVENT_TYPES)}")
        event = {"t": time.time(), "session": session, "type": type, **fields}
        line = json.dumps(event, default=str)
        with self._lock:
            self._events.append(json.loads(line))  # the frames see what the file holds
            file = self._file(session, event["t"])
            if file is not None:
                file.write(line + "\n")
                file.flush()
                if type == "session_ended":
                    self._ended.add(session)
                if session in self._ended:  # an event after the end (a recap) reopened it
                    file.close()
                    del self._files[session]
        return event

    def _file(self, session: str, t: float) -> IO[str] | None:
        if self.folder is None:
            return None
        if session not in self._files:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
            path = self._paths.setdefault(session, self.folder / f"{stamp}_{session}.jsonl")
            self._files[session] = path.open("a", encoding="utf-8")
        return self._files[session]

    def close(self) -> None:
        """Close the files of conversations still open (their events stay readable)."""
        with self._lock:
            for file in self._files.values():
                file.close()
            self._files.clear()

    def new_audio_file(self, session: str) -> Path | None:
        """Where ``session``'s next audio recording goes: beside its runs file, as ``.ogg``.

        A conversation its LiveKit server cut off and a fresh agent resumed records a
        second file (``-2.ogg``), so neither overwrites the other. None without a folder,
        or before the session has written its first event.
        """
        with self._lock:
            runs_file = self._paths.get(session)
        if runs_file is None:
            return None
        path, n = runs_file.with_suffix(".ogg"), 1
        while path.exists():
            n += 1
            path = runs_file.with_name(f"{runs_file.stem}-{n}.ogg")
        return path

    def recording(self, session: str) -> Recording | None:
        """The first audio recording of ``session`` (None: it has none, or no folder).

        Known from its ``recording_started`` event on, so a recording cut short by a dead
        kernel is still found (``whole`` False), as far as it got.
        """
        runs_file = self.file_of(session)
        if runs_file is None:
            return None
        found = None
        for e in self.records(session):
            if e["type"] in _RECORDING_EVENTS:
                found = found or Recording(runs_file.parent / e["file"], e["started"], False)
                if e["type"] == "recording" and e["file"] == found.path.name:
                    return Recording(found.path, found.started, whole=True)
        return found

    def file_of(self, session: str) -> Path | None:
        """The runs file of ``session`` (None if it has none: a log without a folder)."""
        with self._lock:
            return self._paths.get(session)

    def records(self, session: str | None = None) -> list[dict[str, Any]]:
        """The events as the runs files hold them (of ``session`` only, if given), in order."""
        with self._lock:
            events = list(self._events)
        return events if session is None else [e for e in events if e["session"] == session]

    def since(self, start: int) -> list[dict[str, Any]]:
        """The events from index ``start`` on: a log only grows, so a poller reads each once."""
        with self._lock:
            return self._events[start:]

    def follow(self, session: str) -> Follow:
        """Read ``session``'s replies and tool calls as they are written (see :class:`Follow`)."""
        return Follow(self, session)

    def session_ids(self) -> list[str]:
        """Every conversation in the log, in the order each began."""
        return list(dict.fromkeys(e["session"] for e in self.records()))

    def of(self, sessions: Iterable[str]) -> Log:
        """A read-only log of these conversations alone (a rehearsal's, say)."""
        wanted = set(sessions)
        events = [e for e in self.records() if e["session"] in wanted]
        return Log(events=events, files={s: p for s, p in self._paths.items() if s in wanted})

    @property
    def events(self) -> pd.DataFrame:
        """Every event: ``t``, ``session``, ``type``, and the rest of it as ``data``."""
        events = self.records()
        frame = pd.DataFrame(
            {
                "t": _times([e["t"] for e in events]),
                "session": pd.Categorical([e["session"] for e in events]),
                "type": pd.Categorical([e["type"] for e in events], categories=list(EVENT_TYPES)),
                "data": [
                    {k: v for k, v in e.items() if k not in ("t", "session", "type")}
                    for e in events
                ],
            }
        )
        return frame

    @property
    def turns(self) -> pd.DataFrame:
        """One row per user or agent turn, in order, numbered per conversation from 1."""
        rows = []
        numbers: dict[str, int] = {}
        heard: dict[str, float] = {}  # the client's latency, waiting for its agent turn
        for e in self.records():
            if e["type"] == "client_latency":
                heard.setdefault(e["session"], e["latency_s"])
            if e["type"] != "turn":
                continue
            numbers[e["session"]] = numbers.get(e["session"], 0) + 1
            metrics = e.get("metrics") or {}
            started, ended = e.get("started") or e["t"], e.get("ended") or e["t"]
            rows.append(
                {
                    "session": e["session"],
                    "turn": numbers[e["session"]],
                    "speaker": e["speaker"],
                    "text": e.get("text", ""),
                    "words": len(e.get("text", "").split()),
                    "started": started,
                    "ended": ended,
                    "duration_s": max(ended - started, 0.0),
                    "interrupted": bool(e.get("interrupted", False)),
                    "role": e.get("role", ""),
                    "role_version": e.get("role_version", ""),
                    "end_of_turn_delay_s": metrics.get("end_of_turn_delay"),
                    "ttft_s": metrics.get("llm_node_ttft"),
                    "e2e_latency_s": metrics.get("e2e_latency"),
                    "listener_latency_s": heard.pop(e["session"], None)
                    if e["speaker"] == "agent"
                    else None,
                }
            )
        frame = pd.DataFrame(rows, columns=_TURN_COLUMNS)
        return _typed(
            frame,
            times=("started", "ended"),
            categories={"speaker": ["user", "agent"], "session": None, "role": None},
            floats=(
                "duration_s",
                "end_of_turn_delay_s",
                "ttft_s",
                "e2e_latency_s",
                "listener_latency_s",
            ),
            ints=("turn", "words"),
            bools=("interrupted",),
        )

    @property
    def tool_calls(self) -> pd.DataFrame:
        """One row per tool call: arguments, result or error, timing."""
        rows = [
            {
                "session": e["session"],
                "tool": e["tool"],
                "arguments": e.get("arguments", {}),
                "result": e.get("result"),
                "error": e.get("error"),
                "ok": e.get("error") is None,
                "started": e.get("started") or e["t"],
                "duration_s": e.get("duration_s"),
                "rpc_s": e.get("rpc_s"),
                "role": e.get("role", ""),
                "role_version": e.get("role_version", ""),
            }
            for e in self.records()
            if e["type"] == "tool_call"
        ]
        frame = pd.DataFrame(rows, columns=_TOOL_COLUMNS)
        return _typed(
            frame,
            times=("started",),
            categories={"session": None, "tool": None, "role": None},
            floats=("duration_s", "rpc_s"),
            bools=("ok",),
        )

    @property
    def notes(self) -> pd.DataFrame:
        """The notes the agent saved with the client's ``save_note``."""
        rows = [
            {k: e.get(k) for k in ("session", "t", "title", "text", "role", "role_version")}
            for e in self.records()
            if e["type"] == "note"
        ]
        frame = pd.DataFrame(
            rows, columns=["session", "t", "title", "text", "role", "role_version"]
        )
        return _typed(frame, times=("t",), categories={"session": None, "role": None})

    @property
    def ui(self) -> pd.DataFrame:
        """One row per panel the user's client showed, with the text as the user saw it.

        ``turn`` is the user turn it followed (0: before the first one, as in the greeting),
        so a row lines up with what the user said and the agent's reply to it.
        """
        rows = []
        user_turns: dict[str, int] = {}
        for e in self.records():
            if e["type"] == "turn" and e.get("speaker") == "user":
                user_turns[e["session"]] = user_turns.get(e["session"], 0) + 1
            elif e["type"] == "ui":
                row = {k: e.get(k) for k in _UI_COLUMNS}
                rows.append(row | {"turn": user_turns.get(e["session"], 0), "t": e["t"]})
        frame = pd.DataFrame(rows, columns=_UI_COLUMNS)
        return _typed(
            frame,
            times=("t",),
            categories={"session": None, "method": None, "role": None},
            ints=("turn",),
        )

    @property
    def sessions(self) -> pd.DataFrame:
        """One row per conversation, the one in progress included (``ended`` is NaT)."""
        sessions: dict[str, dict[str, Any]] = {}
        for e in self.records():
            if e["session"] not in sessions:
                sessions[e["session"]] = (
                    dict.fromkeys(_SESSION_COLUMNS)
                    | dict.fromkeys(_SESSION_COUNTS, 0)
                    | {"session": e["session"], "started": e["t"], "file": "", "audio": ""}
                )
            row = sessions[e["session"]]
            kind = e["type"]
            if kind == "session_started":
                row.update({k: e.get(k) for k in ("role", "role_version", "model", "user")})
                if e.get("resumed"):  # a fresh agent goes on with it: not over after all
                    row.update(ended=None, end_reason=None)
                else:
                    row["started"] = e["t"]
            elif kind == "role_applied":
                row.update(role=e.get("role"), role_version=e.get("role_version"))
            elif kind == "session_ended":
                row.update(ended=e["t"], end_reason=e.get("reason"))
            elif kind == "turn":
                row["user_turns" if e.get("speaker") == "user" else "agent_turns"] += 1
                row["interruptions"] += bool(e.get("interrupted"))
            elif kind == "tool_call":
                row["tool_calls"] += 1
                row["tool_errors"] += e.get("error") is not None
            elif kind == "error":
                row["errors"] += 1
            elif kind == "recap":
                row["recap"] = e.get("text")
            elif kind in _RECORDING_EVENTS and not row["audio"]:
                row["audio"] = e.get("file")  # as Log.recording finds it, without a rescan
        for name, row in sessions.items():
            runs_file = self._paths.get(name)
            row["file"] = str(runs_file or "")
            audio = row["audio"]
            row["audio"] = str(runs_file.parent / audio) if audio and runs_file else ""
            if row["ended"] is not None:
                row["duration_s"] = row["ended"] - row["started"]
        frame = pd.DataFrame(list(sessions.values()), columns=_SESSION_COLUMNS)
        return _typed(
            frame,
            times=("started", "ended"),
            categories={"session": None, "role": None, "model": None},
            floats=("duration_s",),
            ints=_SESSION_COUNTS,
        )

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        where = f" in {self.folder}" if self.folder else ""
        return f"<rico_lab.Log {len(self)} events{where}>"


class Follow:
    """One conversation's agent lines and tool calls in a log, read as they come.

    A rehearsal polls every 50 ms per role; reading only the events added since the last
    poll keeps that cheap however long the lab's log has grown.
    """

    def __init__(self, log: Log, session: str) -> None:
        self._log, self._session, self._read = log, session, 0
        self.replies: list[str] = []
        self.calls: list[dict[str, Any]] = []
        #: the ``ui`` events: what the client showed
        self.shown: list[dict[str, Any]] = []

    def update(self) -> Follow:
        """Take in the events logged since the last update; returns itself."""
        events = self._log.since(self._read)
        self._read += len(events)
        for e in events:
            if e["session"] != self._session:
                continue
            if e["type"] == "turn" and e.get("speaker") == "agent":
                self.replies.append(e.get("text", ""))
            elif e["type"] == "tool_call":
                self.calls.append(e)
            elif e["type"] == "ui":
                self.shown.append(e)
        return self


def load_log(path: str | Path) -> Log:
    """The log of one runs file, or of every ``*.jsonl`` file in a runs folder.

    A line cut short (the kernel died while writing it) is skipped; every complete event
    before it is read.
    """
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no runs (*.jsonl) in {path}")
    events: list[dict[str, Any]] = []
    found: dict[str, Path] = {}
    for file in files:
        with file.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the event in flight when the writer died
                events.append(event)
                found.setdefault(event["session"], file)
    events.sort(key=lambda e: e["t"])
    return Log(events=events, files=found)


def _times(seconds: list[float] | pd.Series) -> pd.Series:
    return pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True).dt.as_unit("ns")


def _typed(
    frame: pd.DataFrame,
    *,
    times: tuple[str, ...] = (),
    categories: dict[str, list[str] | None] | None = None,
    floats: tuple[str, ...] = (),
    ints: tuple[str, ...] = (),
    bools: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Give ``frame`` its documented dtypes, empty or not."""
    for column in times:
        frame[column] = _times(frame[column].astype("float64"))
    for column, values in (categories or {}).items():
        frame[column] = pd.Categorical(frame[column], categories=values)
    for column in floats:
        frame[column] = frame[column].astype("float64")
    for column in ints:
        frame[column] = frame[column].astype("int64")
    for column in bools:
        frame[column] = frame[column].astype("bool")
    return frame
