"""Roles side by side: a summary frame and the transcripts aligned by user turn."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from .record import Log

#: The summary's columns, in order; see :func:`compare`.
SUMMARY_COLUMNS = [
    "sessions", "user_turns", "agent_turns", "words_per_agent_turn", "tool_calls",
    "tool_success", "latency_p50_s", "latency_p95_s", "interruptions",
]  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` finds: ``summary`` (one row per group) and ``transcripts``.

    ``transcripts`` has one row per user turn number (1st, 2nd, ... user turn of each
    conversation) and, for each conversation, what the user said and what the agent
    answered, so the same line of a rehearsal can be read across roles. In a notebook the
    comparison shows as both tables.
    """

    summary: pd.DataFrame
    transcripts: pd.DataFrame

    def _repr_html_(self) -> str:
        cells = self.transcripts.map(lambda text: html.escape(str(text)).replace("\n", "<br>"))
        return (
            "<div class='rico-comparison'>"
            + self.summary.to_html(float_format=lambda x: f"{x:.3g}")
            + cells.to_html(escape=False, na_rep="")
            + "</div>"
        )


def compare(log: Log, by: str = "role") -> Comparison:
    """Summarise ``log`` per ``by`` (``"role"``, ``"role_version"`` or ``"session"``).

    Summary columns: conversations, user and agent turns, mean words per agent turn, tool
    calls and the share that succeeded, p50/p95 of livekit's end-to-end latency of agent
    turns (NaN where the model reports none), and interrupted agent turns.
    """
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
    return Comparison(summary=summary, transcripts=_aligned(turns))


def _aligned(turns: pd.DataFrame) -> pd.DataFrame:
    """Transcripts aligned: row k holds each conversation's k-th user turn.

    Each cell has what the user said and all the agent said until the next user turn;
    the greeting is row 0.
    """
    rows: dict[tuple[str, str], dict[int, str]] = {}
    for (session, role), talk in turns.groupby(["session", "role"], observed=True, sort=False):
        column = rows.setdefault((str(role), str(session)), {})
        k = 0
        for speaker, text in zip(talk["speaker"], talk["text"], strict=True):
            if speaker == "user":
                k += 1
                column[k] = f"user: {text}"
            else:
                column[k] = column.get(k, "") + ("\n" if k in column else "") + f"agent: {text}"
    frame = pd.DataFrame(rows).sort_index()
    if not frame.empty:
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["role", "session"])
    frame.index.name = "user turn"
    return frame
