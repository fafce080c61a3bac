"""Recaps: the role's recap prompt, through the lab's model, stored in the record."""

import json
from pathlib import Path

import pandas as pd
import pytest

import rico_lab
from rico_lab.errors import LabError
from rico_lab.evaluation.recap import transcript
from rico_lab.evaluation.record import load_log
from rico_lab.evaluation.rehearsal import Script
from rico_lab.local_model.script import RECAP_REQUEST, recap_reply


@pytest.mark.unit
def test_the_transcript_has_a_line_per_turn_and_tool_call():
    events = [
        {"type": "session_started", "role": "demo"},
        {"type": "turn", "speaker": "agent", "text": "Hi,\n  how can I help?"},
        {"type": "turn", "speaker": "user", "text": "show me"},
        {"type": "turn", "speaker": "user", "text": ""},
        {"type": "tool_call", "tool": "show_info", "arguments": {"markdown": "x" * 300}},
        {"type": "tool_call", "tool": "pay", "arguments": {}, "error": "declined"},
    ]
    # the 316-character arguments are cut to 200: 14 of JSON, 183 x's and "..."
    assert transcript(events) == (
        "agent: Hi, how can I help?\n"
        "user: show me\n"
        'tool: show_info {"markdown": "' + "x" * 183 + "... -> None\n"
        "tool: pay {} -> error: declined"
    )


@pytest.mark.unit
def test_the_local_model_recaps_by_counting_and_quoting():
    request = f"{RECAP_REQUEST}\n\nagent: Hi.\nuser: one\ntool: add {{}} -> 3\nuser: two"
    recap = recap_reply(request, "Be brief.\nList the sums.").text
    assert recap == (
        'Recap: 2 user turns, 1 agent turns, 1 tool calls. The user began with "one" and '
        'ended with "two". Tools: add. Asked: List the sums.'
    )
    # nothing the user said, no tools, no prompt: the counts alone
    assert recap_reply(f"{RECAP_REQUEST}\n\nagent: Hi.", "").text == (
        "Recap: 0 user turns, 1 agent turns, 0 tool calls."
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with rico_lab.Lab(runs_dir=runs) as lab:
        yield lab


@pytest.mark.integration
def test_a_conversation_is_recapped_by_the_model_and_kept_in_the_record(lab):
    script = Script.from_dict(
        {"turns": [{"say": "Hello there."}, {"say": '/call show_info {"markdown": "# Menu"}'}]}
    )
    session = lab.rehearse(["demo"], script, progress=False).results["session"].iloc[0]
    recap = lab.recap(session)
    # the local model's recap of this talk, through the plugin's RealtimeModel (text only)
    assert recap == (
        'Recap: 2 user turns, 3 agent turns, 1 tool calls. The user began with "Hello there." '
        'and ended with "/call show_info {"markdown": "# Menu"}". Tools: show_info. '
        "Asked: List what the user asked and what was shown on screen, in three bullet points."
    )
    # the rehearsal has left: the conversation ended before its recap, which still lands
    # in the sessions frame and, after the end, in its runs file
    row = lab.log.sessions.set_index("session").loc[session]
    assert row["recap"] == recap and pd.notna(row["ended"])
    events = [json.loads(line) for line in Path(row["file"]).read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[-1] in ("recap", "recording") and kinds.index("recap") > kinds.index(
        "session_ended"
    )
    (written,) = (e for e in events if e["type"] == "recap")
    assert written["role"] == "demo" and written["model"] == "local"
    assert load_log(row["file"]).sessions.iloc[0]["recap"] == recap

    # an edited recap prompt is used the next time; the frame shows the latest recap
    lab.role("demo").recap = "Only what was shown."
    again = lab.recap(session)
    assert again.endswith("Asked: Only what was shown.")
    assert lab.log.sessions.set_index("session").loc[session, "recap"] == again
    assert [e["type"] for e in load_log(row["file"]).events.to_dict("records")][-1] == "recap"


@pytest.mark.integration
def test_an_unknown_conversation_is_named(lab):
    with pytest.raises(LabError, match=r"recap: no conversation 'nope-123'"):
        lab.recap("nope-123")
