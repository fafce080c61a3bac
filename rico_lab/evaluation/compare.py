"""Roles side by side: a summary, the expectations' pass rates, and the transcripts by turn."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from .record import Log
from .rehearsal import Rehearsal

#: The summary's columns, in order; see :func:`compare`.
SUMMARY_COLUMNS = [
    "sessions", "user_turns", "agent_turns", "words_per_agent_turn", "tool_calls",
    "tool_success", "latency_p50_s", "latency_p95_s", "interruptions",
]  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` finds: ``summary``, ``checks`` and ``transcripts``.

    ``summary`` has one row per group. ``checks`` (for a rehearsal; empty for a log) has
    one row per role and, per kind of expectation, the share of the turns expecting it that
    passed (NaN where no turn does), then ``passed``, the share of turns that passed all.
    ``transcripts`` has one row per user turn number (1st, 2nd, ... user turn of each
    conversation) and, for each conversation, what the user said, what the user's screen
    showed and what the agent answered, so the same line of a rehearsal can be read across
    roles. In a notebook the comparison shows as its tables.
    """

    summary: pd.DataFrame
    transcripts: pd.DataFrame
    checks: pd.DataFrame

    def _repr_html_(self) -> str:
        cells = self.transcripts.map(lambda text: html.escape(str(text)).replace("\n", "<br>"))
        checks = "" if self.checks.empty else self.checks.to_html(float_format="{:.0%}".format)
        return (
            "<div class='rico-comparison'>"
            + self.summary.to_html(float_format=lambda x: f"{x:.3g}")
            + checks
            + cells.to_html(escape=False, na_rep="")
            + "</div>"
        )


def compare(what: Log | Rehearsal, by: str = "role") -> Comparison:
    """Summarise a log, or a rehearsal, per ``by`` (``"role"``, ``"role_version"``, ``"session"``).

    Summary columns: conversations, user and agent turns, mean words per agent turn, tool
    calls and the share that succeeded, p50/p95 of livekit's end-to-end latency of agent
    turns (NaN where the model reports none), and interrupted agent turns. A rehearsal also
    gives its expectations' pass rates per role (``checks``).
    """
    log = what.log if isinstance(what, Rehearsal) else what
    turns, calls = log.turns, log.tool_calls
    if by not in ("role", "role_version", "session"):
        raise ValueError(f"compare by 'role', 'role_version' or 'session', not {by!r}")
    keys = turns[by].astype(str)
    agent = turns[turns.speaker == "agent"]
    agent_keys = agent[by].astype(str)
    summary = pd.DataFrame(
        {
            "sessions": turns.groupby(keys)["session"].nunique(),
            "user_turns": (turns.speaker == "user").groupby(keys).sum(),
            "agent_turns": (turns.speaker == "agent").groupby(keys).sum(),
            "words_per_agent_turn": agent.groupby(agent_keys)["words"].mean(),
            "tool_calls": calls.groupby(calls[by].astype(str)).size(),
            "tool_success": calls.groupby(calls[by].astype(str))["ok"].mean(),
            "latency_p50_s": agent.groupby(agent_keys)["e2e_latency_s"].quantile(0.5),
            "latency_p95_s": agent.groupby(agent_keys)["e2e_latency_s"].quantile(0.95),
            "interruptions": agent.groupby(agent_keys)["interrupted"].sum(),
        },
        columns=SUMMARY_COLUMNS,
    )
    for column in ("sessions", "user_turns", "agent_turns", "tool_calls", "interruptions"):
        summary[column] = summary[column].fillna(0).astype("int64")
    summary.index.name = by
    checks = _checks(what.results) if isinstance(what, Rehearsal) else pd.DataFrame()
    return Comparison(summary=summary, transcripts=_aligned(turns, log.ui), checks=checks)


def _checks(results: pd.DataFrame) -> pd.DataFrame:
    """Per role, the share of the turns expecting each kind that passed it."""
    columns = {c: c.removeprefix("expect_") for c in results.columns if c.startswith("expect_")}
    expected = results[list(columns)].rename(columns=columns)
    rates = expected.apply(lambda column: column.dropna().astype(float))
    rates["passed"] = results["passed"].astype(float)
    frame = rates.groupby(results["role"].astype(str)).mean()
    frame.index.name = "role"
    return frame


def _aligned(turns: pd.DataFrame, ui: pd.DataFrame) -> pd.DataFrame:
    """Transcripts aligned: row k holds each conversation's k-th user turn.

    Each cell has what the user said, what their screen showed (``screen:`` lines) and all
    the agent said until the next user turn; the greeting is row 0.
    """
    panels: dict[tuple[str, int], list[str]] = {}
    for panel in ui.itertuples():
        answer = f" -> {panel.answer}" if panel.method == "ask" and panel.answer else ""
        seen = " ".join(filter(None, [panel.title, str(panel.text).replace("\n", " / ")]))
        line = f"screen ({panel.method}): {seen}{answer}"
        panels.setdefault((str(panel.session), int(panel.turn)), []).append(line)
    rows: dict[tuple[str, str], dict[int, str]] = {}
    for (session, role), talk in turns.groupby(["session", "role"], observed=True, sort=False):
        column = rows.setdefault((str(role), str(session)), {})
        k = 0
        for speaker, text in zip(talk["speaker"], talk["text"], strict=True):
            if speaker == "user":
                k += 1
                lines = [f"user: {text}", *panels.get((str(session), k), [])]
                column[k] = "\n".join(lines)
            else:
                column[k] = column.get(k, "") + ("\n" if k in column else "") + f"agent: {text}"
    frame = pd.DataFrame(rows).sort_index()
    if not frame.empty:
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["role", "session"])
    frame.index.name = "user turn"
    return frame
