"""A recorded user, replayed against other roles: their recorded voice, their typed words."""

import re

import pytest
from test_recording import TYPED, talk

import rico_lab
from rico_lab.errors import LabError

pytestmark = pytest.mark.integration


def heard_s(reply: str) -> float:
    """The seconds of speech the local model says it heard."""
    return float(re.search(r"I heard ([\d.]+) seconds", reply)[1])


def test_a_recorded_conversation_replays_against_two_other_roles(tmp_path):
    with rico_lab.Lab(runs_dir=tmp_path) as lab:
        original = talk(lab, turns=4)  # spoken, typed, spoken, typed
        replay = lab.replay(original, ["food_order", "listener"], progress=False)
        results = replay.results
        assert sorted(results.groupby("role", observed=True).size().items()) == [
            ("food_order", 4),
            ("listener", 4),
        ]
        assert (results["mode"] == "replay").all() and results["reply"].str.len().gt(0).all()
        turns = lab.log.turns.query("session == @original and speaker == 'agent'")
        said = list(turns["text"])[1:]  # after the greeting
        for row in results.itertuples():
            if row.turn % 2 == 0:  # typed: typed again, word for word
                assert row.reply == f"Turn {row.turn}: you wrote: {TYPED[row.turn // 2 - 1]}"
            else:  # spoken: the recorded speech, heard as long as the first time
                assert abs(heard_s(row.reply) - heard_s(said[row.turn - 1])) <= 0.5, row.reply
        transcripts = rico_lab.compare(replay).transcripts
        assert set(transcripts.columns.get_level_values("session")) == {
            original,
            *results["session"],
        }
        assert transcripts.loc[1:4].notna().all().all()  # aligned: every user turn, each column
        with pytest.raises(LabError, match="no conversation 'nowhere'"):
            lab.replay("nowhere", ["demo"])
