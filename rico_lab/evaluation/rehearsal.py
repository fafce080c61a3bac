"""Rehearsals: the same scripted user turns, typed or spoken, against several roles.

A rehearsal joins each role's conversation with a real LiveKit participant (typed turns go
on ``lk.chat`` as the voice client sends them; spoken ones are espeak-ng speech published as
a microphone track) that serves the voice client's methods headless, so a role's ``ui:``
tools run as they do for a user, and answers its questions as the script says. It waits for
each reply as the lab's log records it, and checks the script's expectations: on what was
said, on what the screen showed, and a judge's reading of the reply. The frames it returns
are the lab's own, for those conversations.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from tqdm.auto import tqdm

from ..errors import LabError
from ..protocol import JoinInfo
from ..roles import Role
from .headless_client import HeadlessClient
from .judge import Judge
from .participant import Participant, wait_until
from .record import Follow, Log
from .script import EXPECTATIONS, Script, Turn


class Stage(Protocol):
    """What a rehearsal needs of a lab: its roles, new conversations, and its record."""

    log: Log

    def role(self, name: str) -> Role:
        """The lab's role ``name``; raises :class:`RoleError` for an unknown or broken one."""

    def join(self, role: str = "demo", identity: str | None = None) -> JoinInfo:
        """A new conversation with ``role``."""

    @property
    def judge(self) -> Judge:
        """Who judges ``judge:`` expectations: the lab's model, or the local rule."""


def _wait(ready: Callable[[], object], timeout: float, what: str) -> None:
    try:
        wait_until(ready, timeout, what)
    except LabError as exc:
        raise LabError(f"rehearsal: {exc}") from None


@dataclass
class Rehearsal:
    """What a rehearsal produced: one row per role and turn in ``results``, and the log.

    ``results`` columns: ``role``, ``session``, ``mode``, ``turn`` (1-based), ``say``,
    ``reply``, ``tools`` (called in the reply), ``shown`` (the panels the user's screen
    showed in the turn: method, title, text, answer), ``latency_s`` (end of the user's turn
    to the first agent audio at the participant), one ``expect_*`` column per kind of
    expectation (True, False, or None where the turn expects nothing of that kind),
    ``judge``/``judge_reason`` (who judged a ``judge:`` expectation, and why) and
    ``passed``.
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
    judge: Judge | None = None,
) -> Rehearsal:
    """Play the same scripted user turns to each role, and check what comes back.

    ``script`` is a :class:`Script` or the path of its YAML file (``turns:`` of ``say:``,
    optional ``wait_s:``, ``answer:`` and ``expect:``; see ``docs/evaluation.md``).
    ``mode="text"`` types each turn as the voice client does; ``mode="audio"`` says it with
    espeak-ng through a microphone track. Up to ``parallel`` roles run at once, with a
    progress bar. ``judge`` judges ``judge:`` expectations (default: the lab's). Returns a
    :class:`Rehearsal`: ``results`` (one row per role and turn, with an ``expect_*``
    column per expectation and ``passed``) and the log of those conversations.

    An ``answer`` the agent gave no occasion for (it asked nothing in that turn, or offered
    other choices) fails the row's ``expect_answered``, and ``problem`` says why, naming
    the file, turn and field, where another rehearsed role did ask; where none did, the
    script is refused.

    Raises:
        LabError: the script is malformed, or has an ``answer`` no role gave occasion for
            (naming its file, turn and field); a role does not load; or a reply never came.
    """
    if mode not in ("text", "audio", "replay"):
        raise ValueError(f"mode is 'text' or 'audio', not {mode!r}")
    if not isinstance(script, Script):
        script = Script.load(script)
    for role in roles:
        lab.role(role)  # an unknown or broken role fails here, before anything starts
    judge = judge if judge is not None else lab.judge
    bar = tqdm(
        total=len(roles) * len(script.turns), desc=f"rehearse {script.name}", disable=not progress
    )
    connecting = threading.Lock()  # one participant joins at a time (see Participant.join)

    def one(role: str) -> list[dict[str, Any]]:
        name = lab.role(role).name  # a role given by its file's path is called by its name
        participant = Participant(lab.join(role, identity=f"rehearsal-{name}"))
        client: HeadlessClient | None = None

        def leave() -> None:
            if client is not None:
                client.leave()
            participant.close()

        try:
            with connecting:
                participant.join(reply_timeout_s)
            client = HeadlessClient(participant)
            user = _User(participant, client, lab.log.follow(participant.info.room))
            rows = user.run(name, script, mode, reply_timeout_s, judge, bar)
        except BaseException:
            # what stopped the rehearsal is the error to see, not a room left badly after it
            with contextlib.suppress(Exception):
                leave()
            raise
        leave()
        return rows

    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
            rows = [row for rows in pool.map(one, roles) for row in rows]
    finally:
        bar.close()
    _refuse_answers_without_occasion(rows)
    sessions = {row["session"] for row in rows}
    return Rehearsal(results=_results_frame(rows), log=lab.log.of(sessions))


def _refuse_answers_without_occasion(rows: list[dict[str, Any]]) -> None:
    """An ``answer`` that no rehearsed role gave occasion for is the script's mistake."""
    by_turn: dict[int, list[str | None]] = {}
    for row in rows:
        if row["expect_answered"] is not None:
            by_turn.setdefault(row["turn"], []).append(row["problem"])
    for problems in by_turn.values():
        if all(problems):
            raise LabError(str(problems[0]))


@dataclass
class _User:
    """The scripted user of one conversation: says each turn, reads the screen, answers."""

    participant: Participant
    client: HeadlessClient
    record: Follow

    def run(
        self, role: str, script: Script, mode: str, timeout: float, judge: Judge, bar: tqdm
    ) -> list[dict[str, Any]]:
        record, participant = self.record, self.participant
        _wait(lambda: record.update().replies, timeout, f"{role}: the greeting")
        rows = []
        for number, turn in enumerate(script.turns, start=1):
            time.sleep(turn.wait_s)
            _wait(
                lambda: participant.agent_state() == "listening",
                timeout,
                f"{role}: the agent to listen",
            )
            before = len(record.replies), len(record.calls), len(record.shown)
            self.client.will_answer(turn.answer, given=turn.answered)
            if turn.audio is not None:
                ended = participant.say(turn.audio)
            elif mode == "audio":
                ended = participant.speak(turn.say)
            else:
                ended = participant.type(turn.say)
            _wait(
                lambda n=before[0]: len(record.update().replies) > n,
                timeout,
                f"{role}: a reply to turn {number}",
            )
            problem = self._answer_problem(script, number, turn)
            reply = " ".join(record.replies[before[0] :])
            calls, shown = record.calls[before[1] :], record.shown[before[2] :]
            onset = participant.audio_onset_after(ended)
            latency = onset - ended if onset is not None else None
            row = {
                "role": role,
                "session": participant.info.room,
                "mode": mode,
                "turn": number,
                "say": turn.say,
                "reply": reply,
                "tools": [c["tool"] for c in calls],
                "shown": [
                    {k: s.get(k) for k in ("method", "title", "text", "answer")} for s in shown
                ],
                "latency_s": latency,
            }
            checks = _checks(turn, reply, calls, shown, latency, judge)
            checks["expect_answered"] = None if not turn.answered else problem is None
            rows.append(row | checks | {"problem": problem})
            bar.update()
        return rows

    def _answer_problem(self, script: Script, number: int, turn: Turn) -> str | None:
        """Why the turn's ``answer`` could not be given: no question, or none it fits.

        The row says which field of which turn of which file, and fails
        ``expect_answered``: another role may ask, or offer other choices. Only when no
        role did is the script refused (:func:`_refuse_answers_without_occasion`).
        """
        if self.client.refused_answers:
            return str(script.refuse(number, "answer", self.client.refused_answers[0]))
        if turn.answered and not self.client.asked:
            return str(script.refuse(number, "answer", "the agent asked nothing in this turn"))
        return None


def _checks(
    turn: Turn,
    reply: str,
    calls: list[dict[str, Any]],
    shown: list[dict[str, Any]],
    latency: float | None,
    judge: Judge,
) -> dict[str, Any]:
    """One column per kind of expectation: True, False, or None where there is none."""
    tools = [c["tool"] for c in calls]
    checks: dict[str, Any] = {
        "tool": None
        if turn.tool is None
        else any(
            c["tool"] == turn.tool and _contains(c.get("arguments") or {}, turn.args) for c in calls
        ),
        "contains": None if turn.contains is None else turn.contains.lower() in reply.lower(),
        "latency": None
        if turn.latency_s is None
        else latency is not None and latency <= turn.latency_s,
        "shown": None if turn.shown is None else any(map(turn.shown.matches, shown)),
        "not_shown": None
        if turn.not_shown is None
        else not any(map(turn.not_shown.matches, shown)),
        "no_tool": None
        if turn.no_tool is None or turn.no_tool is False
        else (not tools if turn.no_tool is True else turn.no_tool not in tools),
        "max_words": None if turn.max_words is None else len(reply.split()) <= turn.max_words,
        "judge": None,
    }
    verdict = {"judge": None, "judge_reason": None}
    if turn.judge is not None:
        judged = judge(turn.judge, reply, calls)
        checks["judge"] = judged.passed
        verdict = {"judge": judged.judge, "judge_reason": judged.reason}
    return {f"expect_{kind}": checks[kind] for kind in EXPECTATIONS} | verdict


def _results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["role", "session", "mode", "turn", "say", "reply", "tools", "shown", "latency_s"]
    checks = [f"expect_{kind}" for kind in (*EXPECTATIONS, "answered")]
    extra = ["judge", "judge_reason", "problem"]
    frame = pd.DataFrame(rows, columns=columns + checks + extra)
    frame["passed"] = frame[checks].apply(lambda row: all(v is not False for v in row), axis=1)
    frame["latency_s"] = frame["latency_s"].astype("float64")
    frame["role"] = pd.Categorical(frame["role"])
    return frame


def _contains(arguments: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(arguments.get(key) == value for key, value in expected.items())
