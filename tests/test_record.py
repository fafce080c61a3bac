"""The conversation record: events on disk and in DataFrames, live and reloaded."""

import json
import re
import signal
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from rtc_participant import VoiceParticipant
from test_notebooks import kernel, run  # noqa: F401 (kernel is a fixture)

import rico_lab
from rico_lab.evaluation.audio import read_stereo
from rico_lab.evaluation.record import EVENT_TYPES, Log, Recording, load_log
from rico_lab.protocol import JoinInfo

UTC_TIME = "datetime64[ns, UTC]"
DOC = Path(__file__).resolve().parent.parent / "docs" / "record.md"
ASIDE = r"\([^()]*\)"  # "(NaN without `ui:`)": what a cell says about a name, not a name


def _table_rows(lines: list[str], start: int) -> list[list[str]]:
    """The cells of the Markdown table that begins after line ``start`` (header skipped)."""
    rows = []
    for line in lines[start + 1 :]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows[1:]


def _names(cell: str) -> list[str]:
    """The backticked names of a cell or list, leaving out the asides in parentheses."""
    return re.findall(r"`(\w+)`", re.sub(ASIDE, "", cell).split(":")[0])


def documented_columns() -> dict[str, dict[str, str]]:
    """docs/record.md's columns per frame: name -> dtype ("" where the doc gives none)."""
    lines = DOC.read_text().splitlines()
    frames: dict[str, dict[str, str]] = {}
    for i, line in enumerate(lines):
        if match := re.fullmatch(r"`lab\.log\.(\w+)`, one row per .*:", line):
            columns = frames.setdefault(match[1], {})
            for names_cell, dtype_cell, _ in _table_rows(lines, i):
                names = _names(names_cell)
                dtypes = [d.strip() for d in re.sub(ASIDE, "", dtype_cell).split(",")]
                if len(dtypes) == 1:  # "`role`, `model` | category": one dtype for all
                    dtypes *= len(names)
                columns.update(zip(names, dtypes, strict=True))
    for name, listed in re.findall(r"`lab\.log\.(\w+)` \(([^)]*)\)", DOC.read_text()):
        frames[name] = dict.fromkeys(re.findall(r"`(\w+)`", listed), "")
    return frames


def documented_events() -> dict[str, list[str]]:
    """docs/record.md's event types, each with its fields."""
    lines = DOC.read_text().splitlines()
    start = lines.index("| type | fields |") - 1
    return {_names(kind)[0]: _names(fields) for kind, fields in _table_rows(lines, start)}


@pytest.mark.unit
def test_frames_have_their_documented_columns_and_dtypes_even_when_empty():
    log = Log()
    documented = documented_columns()
    assert sorted(documented) == ["events", "notes", "sessions", "tool_calls", "turns", "ui"]
    for name, columns in documented.items():
        frame = getattr(log, name)
        assert set(columns) == set(frame.columns), f"lab.log.{name}: docs/record.md differs"
        dtypes = {c: UTC_TIME if d == "datetime" else d for c, d in columns.items() if d}
        assert dtypes == {c: str(frame.dtypes[c]) for c in dtypes}, f"lab.log.{name} dtypes"


@pytest.mark.unit
def test_event_types_are_the_documented_ones_with_their_fields():
    def fields(listed: str) -> list[str]:  # "role, how (edit or switch): ..." -> role, how
        return [f.strip() for f in re.sub(ASIDE, "", listed).split(":")[0].split(",")]

    assert documented_events() == {kind: fields(text) for kind, text in EVENT_TYPES.items()}


@pytest.mark.unit
def test_a_conversation_resumed_after_a_server_restart_is_one_session():
    started = {"role": "demo", "role_version": "abc", "model": "local", "user": "u"}
    events = [
        {"t": 10.0, "session": "r1", "type": "session_started", **started, "resumed": False},
        {"t": 20.0, "session": "r1", "type": "session_ended", "reason": "the LiveKit server died"},
        {"t": 23.0, "session": "r1", "type": "session_started", **started, "resumed": True},
    ]
    row = Log(events=events).sessions.iloc[0]
    assert row.started == pd.Timestamp(10.0, unit="s", tz="UTC")
    assert pd.isna(row.ended) and row.end_reason is None  # still going on
    events.append({"t": 40.0, "session": "r1", "type": "session_ended", "reason": "user left"})
    row = Log(events=events).sessions.iloc[0]
    assert (row.duration_s, row.end_reason) == (30.0, "user left")


@pytest.mark.unit
def test_a_file_cut_mid_event_reloads_every_complete_event(tmp_path):
    log = Log(tmp_path)
    log.write("r1", "session_started", role="demo", role_version="abc", model="local", user="u")
    log.write("r1", "turn", speaker="user", text="hello there", role="demo", role_version="abc")
    log.close()
    (file,) = tmp_path.glob("*.jsonl")
    with file.open("a") as out:
        out.write('{"t": 1.0, "session": "r1", "type": "tu')  # the kernel died here
    again = load_log(tmp_path)
    assert list(again.turns["text"]) == ["hello there"]
    assert again.sessions.loc[0, "file"] == str(file)
    with pytest.raises(ValueError, match="unknown event type 'oops'"):
        log.write("r1", "oops")


@pytest.mark.integration
def test_a_conversation_lands_in_the_frames_live_and_on_disk(tmp_path):
    roles = tmp_path / "roles"
    roles.mkdir()
    (roles / "calc.yaml").write_text(
        "instructions: You add.\n"
        "tools:\n  - name: add\n    description: Add.\n    python: calc:add\n"
        "    parameters: {type: object, properties: {a: {type: number}, b: {type: number}}}\n"
    )
    (roles / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    with rico_lab.Lab(roles_dir=roles, runs_dir=tmp_path / "runs") as lab:
        p = VoiceParticipant(lab.join("calc"))
        p.connect()
        try:
            p.wait_for("the greeting", p.greeted)
            # typing while the agent still speaks would interrupt it (that is a turn too)
            listening = lambda: p.agent_attributes.get("lk.agent.state") == "listening"  # noqa: E731
            p.wait_for("its end", listening)
            p.type("first")
            p.wait_for("reply 1", lambda: "Turn 1: you wrote: first" in p.agent_lines())
            p.wait_for("its end", listening)
            p.type('/call add {"a": 2, "b": 3}')
            p.wait_for("the result", lambda: "The tool add returned 5." in p.agent_lines())
            p.wait_for("its turn", lambda: len(lab.log.turns) == 5)
            live = lab.log
            # live: the conversation in progress is there, not ended yet
            session = live.sessions.iloc[0]
            assert session["session"] == p.info.room and pd.isna(session["ended"])
            assert (session["role"], session["model"], session["user"]) == (
                "calc",
                "local",
                p.info.identity,
            )
        finally:
            p.close()
        p.wait_for("the end", lambda: not pd.isna(lab.log.sessions.iloc[0]["ended"]))
        frames = {name: getattr(lab.log, name) for name in ("sessions", "turns", "tool_calls")}

    turns = frames["turns"]
    assert list(turns["speaker"]) == ["agent", "user", "agent", "user", "agent"]
    assert list(turns["turn"]) == [1, 2, 3, 4, 5]
    assert turns["text"].iloc[1] == "first" and turns["words"].iloc[2] == 5
    assert (turns["role"] == "calc").all() and turns["role_version"].nunique() == 1
    assert (turns["ended"] >= turns["started"]).all() and not turns["interrupted"].any()
    calls = frames["tool_calls"]
    assert len(calls) == 1
    call = calls.iloc[0]
    assert (call["tool"], call["arguments"], call["result"], call["ok"]) == (
        "add",
        {"a": 2, "b": 3},
        "5",
        True,
    )
    session = frames["sessions"].iloc[0]
    assert (session["user_turns"], session["agent_turns"], session["tool_calls"]) == (2, 3, 1)
    assert session["duration_s"] > 0 and session["end_reason"]

    # the same frames from the runs folder
    again = load_log(tmp_path / "runs")
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(getattr(again, name), frame, check_like=False)
    (file,) = (tmp_path / "runs").glob("*.jsonl")
    kinds = [json.loads(line)["type"] for line in file.read_text().splitlines()]
    assert kinds[:2] == ["session_started", "recording_started"]
    assert kinds[-2:] == ["session_ended", "recording"]  # the audio is whole once it ended
    assert "usage" in kinds


@pytest.mark.integration
def test_a_killed_kernel_leaves_every_completed_turn_and_its_audio_on_disk(kernel, tmp_path):  # noqa: F811
    manager, client = kernel
    runs = tmp_path / "runs"
    run(client, f"import rico_lab\nlab = rico_lab.Lab(runs_dir={str(runs)!r})")
    info = json.loads(
        run(
            client,
            "import dataclasses, json\nprint(json.dumps(dataclasses.asdict(lab.join('demo'))))",
        )
    )
    p = VoiceParticipant(JoinInfo(**info))
    p.connect()
    try:
        p.wait_for("the greeting", p.greeted)
        for n, text in enumerate(["one", "two", "three"], start=1):
            p.type(text)
            p.wait_for(
                f"reply {n}",
                lambda n=n, text=text: f"Turn {n}: you wrote: {text}" in p.agent_lines(),
            )
        # the agent's last line is a completed turn once it has been said (played out)
        p.wait_for("the last turn", lambda: "Turn 3: you wrote: three" in _runs_text(runs))
        # what is on disk lags the conversation by a few seconds (Ogg pages of audio in
        # flight): the kill comes once the first reply is past that lag, as it is for any turn
        # a user would care about, so that there is a completed reply to find in the audio
        p.wait_for("the first reply's audio on disk", lambda: _recorded_past(runs, "Turn 1:"))
        killed = time.time()
        manager.signal_kernel(signal.SIGKILL)  # mid-conversation: nobody closes anything
    finally:
        p.close()
    log = load_log(runs)
    turns = log.turns
    assert list(turns["text"])[1:] == [
        "one",
        "Turn 1: you wrote: one",
        "two",
        "Turn 2: you wrote: two",
        "three",
        "Turn 3: you wrote: three",
    ]
    assert pd.isna(log.sessions.iloc[0]["ended"])
    # the audio so far: all but the last few seconds, the agent heard in its replies
    recording = log.recording(log.sessions.iloc[0]["session"])
    assert recording is not None and not recording.whole
    assert log.sessions.iloc[0]["audio"] == str(recording.path)
    samples, rate = read_stereo(recording.path)
    recorded_s = samples.shape[1] / rate
    assert killed - recording.started - 5.0 < recorded_s < killed - recording.started
    agent = turns.query("speaker == 'agent'")  # the greeting, then "Turn 1: ..."
    heard = [r for r in agent.itertuples() if r.ended.timestamp() - recording.started < recorded_s]
    assert len(heard) >= 2, (recorded_s, list(agent["ended"]))
    for reply in heard:
        lo = int((reply.started.timestamp() - recording.started + 0.3) * rate)
        hi = int((reply.ended.timestamp() - recording.started - 0.3) * rate)
        assert np.abs(samples[1, lo:hi]).max() > 0.1, reply.text


def _runs_text(runs):
    return "".join(f.read_text() for f in runs.glob("*.jsonl"))


def _recorded_past(runs, line):
    """Whether the recording on disk holds the agent's ``line`` to its end."""
    log = load_log(runs)
    said = log.turns[log.turns["text"].str.startswith(line)]
    recording = log.recording(log.sessions.iloc[0]["session"])
    if said.empty or recording is None:
        return False
    try:
        samples, rate = read_stereo(recording.path)
    except (av.error.FFmpegError, ValueError):  # no whole page yet
        return False
    return samples.shape[1] / rate > said.iloc[0]["ended"].timestamp() - recording.started + 0.5


@pytest.mark.unit
def test_a_recording_is_found_as_it_starts_and_whole_once_closed(tmp_path):
    log = Log(tmp_path)
    log.write("r", "session_started", role="demo")
    assert log.recording("r") is None
    ogg = log.new_audio_file("r")
    log.write("r", "recording_started", file=ogg.name, started=12.5)
    assert log.recording("r") == Recording(ogg, 12.5, whole=False)
    assert log.sessions.loc[0, "audio"] == str(ogg)  # a dead kernel's audio is found too
    log.write("r", "session_ended", reason="done")
    log.write("r", "recording", file=ogg.name, started=12.5, duration_s=3.0)
    assert log.recording("r") == Recording(ogg, 12.5, whole=True)
    assert load_log(tmp_path).recording("r") == Recording(ogg, 12.5, whole=True)


@pytest.mark.unit
def test_the_clients_latency_lands_on_the_agent_turn_it_measured():
    log = Log()
    log.write("r", "turn", speaker="user", text="hi", role="demo", role_version="v")
    log.write("r", "client_latency", latency_s=0.42, after="speech")
    log.write("r", "turn", speaker="agent", text="hello", role="demo", role_version="v")
    log.write("r", "turn", speaker="agent", text="and more", role="demo", role_version="v")
    assert list(log.turns["listener_latency_s"].fillna(-1)) == [-1, 0.42, -1]
