from pathlib import Path

import pytest

import rico_lab
from rico_lab.errors import LabError
from rico_lab.evaluation.rehearsal import Script

SCRIPTS = Path(__file__).parent / "scripts"
ROLES = ["demo", "food_order", "listener"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with rico_lab.Lab(runs_dir=tmp_path_factory.mktemp("runs")) as lab:
        yield lab


@pytest.mark.unit
def test_a_bad_script_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("turns:\n  - say: hi\n    expect: {contians: x}\n")
    with pytest.raises(LabError, match=r"bad.yaml: field 'turns.0.expect'.*'contians'"):
        Script.load(path)
    path.write_text("turns: []\n")
    with pytest.raises(LabError, match=r"bad.yaml: field 'turns'"):
        Script.load(path)
    script = Script.load(SCRIPTS / "five_turns.yaml")
    assert script.name == "five_turns" and script.turns[1].latency_s == 5


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["text", "audio"])
def test_three_roles_rehearse_five_turns(lab, mode):
    rehearsal = lab.rehearse(ROLES, SCRIPTS / "five_turns.yaml", mode=mode, progress=False)
    results = rehearsal.results
    assert len(results) == 15 and set(results["role"]) == set(ROLES)
    assert results["passed"].all(), results.drop(columns=["session", "say"]).to_string()
    reply = "you wrote: Hello there." if mode == "text" else "I heard"
    assert results.query("turn == 1")["reply"].str.contains(reply).all()
    assert (results["latency_s"] > 0).all() and (results["latency_s"] < 5).all()
    turns = rehearsal.turns
    assert (turns.speaker == "user").sum() == 15
    assert (turns.speaker == "agent").sum() == 18  # a greeting and five replies each
    assert set(rehearsal.sessions["role"]) == set(ROLES)


@pytest.mark.integration
def test_expectations_fail_where_the_role_cannot_do_it(lab):
    script = Script.from_dict(
        {
            "name": "tools",
            "turns": [
                {
                    "say": '/call show_info {"markdown": "hi"}',
                    "expect": {"tool": "show_info", "args": {"markdown": "hi"}},
                },
                {"say": "and then?", "expect": {"contains": "no such words"}},
            ],
        }
    )
    results = lab.rehearse(["demo", "food_order"], script, progress=False).results
    outcome = {(r.role, r.turn): (r.expect_tool, r.expect_contains) for r in results.itertuples()}
    assert outcome == {
        ("demo", 1): (True, None),  # called; the client is not there, which does not matter
        ("demo", 2): (None, False),
        ("food_order", 1): (False, None),  # it has no show_info
        ("food_order", 2): (None, False),
    }
    assert list(results["passed"]) == [True, False, False, False]
