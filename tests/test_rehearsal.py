import re
from pathlib import Path

import pandas as pd
import pytest
from fuzz_support import alias_bomb

import rico_lab
from rico_lab.errors import LabError
from rico_lab.evaluation import rehearsal as rehearsal_module
from rico_lab.evaluation.participant import Participant
from rico_lab.evaluation.script import Script
from rico_lab.local_model.script import LocalScript

SCRIPTS = Path(__file__).parent / "scripts"
ROLES = ["demo", "food_order", "listener"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with rico_lab.Lab(runs_dir=tmp_path_factory.mktemp("runs")) as lab:
        yield lab


@pytest.mark.unit
@pytest.mark.parametrize(
    ("turn", "refusal"),
    [
        ("expect: {contians: x}", r"turn 1: field 'expect.contians': unknown field"),
        ("expect: {shown: {method: show_map}}", r"turn 1: field 'expect.shown.method': 'show_map'"),
        ("expect: {shown: {}}", r"turn 1: field 'expect.shown'"),
        ("answer: [1, 2]", r"turn 1: field 'answer': \[1, 2\] is not of type"),
        ("expect: {max_words: 0}", r"turn 1: field 'expect.max_words'"),
        ("expect: {judge: ''}", r"turn 1: field 'expect.judge'"),
    ],
)
def test_a_bad_script_names_file_turn_and_field(tmp_path, turn, refusal):
    path = tmp_path / "bad.yaml"
    path.write_text(f"turns:\n  - say: hi\n    {turn}\n")
    with pytest.raises(LabError, match=rf"bad.yaml: {refusal}"):
        Script.load(path)


@pytest.mark.unit
def test_scripts_read_as_written():
    path = SCRIPTS / "bad.yaml"
    with pytest.raises(LabError, match=r"bad.yaml: cannot read the script"):
        Script.load(path)
    with pytest.raises(LabError, match=r"script: field 'turns'"):
        Script.from_dict({"turns": []})
    script = Script.load(SCRIPTS / "five_turns.yaml")
    assert script.name == "five_turns" and script.turns[1].latency_s == 5
    order = Script.load(SCRIPTS / "order_on_screen.yaml").turns
    assert (order[1].answer, order[1].answered, order[0].answered) == ("2", True, False)
    assert order[2].shown.method == "show_table" and order[3].no_tool == "show_menu"


@pytest.mark.unit
@pytest.mark.timeout(30)  # an alias bomb never returned: a hang is a failure
def test_a_script_s_aliases_load_unless_they_explode(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("turns:\n  - &hi {say: hi}\n  - *hi\n  - {<<: *hi, wait_s: 1}\n")
    assert [(t.say, t.wait_s) for t in Script.load(path).turns] == [("hi", 0), ("hi", 0), ("hi", 1)]
    path.write_text("turns:\n  - say:\n" + alias_bomb("      "))
    bomb = r"line 9, column 14: the alias \*f expands the document past 1,000,000 nodes"
    with pytest.raises(LabError, match=rf"^{re.escape(str(path))}: cannot read the script: {bomb}"):
        Script.load(path)


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


ORDER = SCRIPTS / "order_on_screen.yaml"


@pytest.mark.integration
def test_an_order_on_screen_rehearsed_as_the_user_sees_it(lab):
    rehearsal = lab.rehearse(["food_order", "demo"], ORDER, progress=False)
    results = rehearsal.results.set_index(["role", "turn"])
    food = results.loc["food_order"]
    assert food["passed"].all(), food.drop(columns=["session", "say"]).to_string()
    calls = rehearsal.tool_calls.query("role == 'food_order'")
    assert list(calls["tool"]) == ["show_menu", "ask_quantity", "add_item", "add_item"]
    assert calls["ok"].all(), calls[["tool", "error"]].to_string()
    assert calls.iloc[1]["result"] == "2"  # the scripted answer reached the model
    assert pd.isna(food.loc[2, "judge"]) and food.loc[4, "judge"] == "local rule (no model)"
    ui = rehearsal.log.ui.query("role == 'food_order'")
    assert list(ui["method"]) == ["show_markdown", "ask", "show_table", "show_table"]
    assert list(ui["turn"]) == [1, 2, 3, 4]
    assert ui.iloc[0]["title"] == "Menu" and "apple cake\n3.00" in ui.iloc[0]["text"]
    assert ui.iloc[1][["title", "text", "answer"]].tolist() == [
        "How many apple cakes?",
        "1 | 2 | 3",
        "2",
    ]
    assert ui.iloc[2]["text"].splitlines()[1] == "apple cake | 2 | 6"  # as a page shows 6.0
    assert "lemonade | 1 | 2.5" in ui.iloc[3]["text"]
    # the same script against a role that has none of these tools: what should fail, fails
    demo = results.loc["demo"]
    assert not demo["expect_shown"].any() and not demo["expect_tool"].iloc[:3].any()
    assert demo.loc[2, "expect_answered"] is False
    assert (
        "order_on_screen.yaml: turn 2: field 'answer': the agent asked nothing"
        in (demo.loc[2, "problem"])
    )
    assert demo.loc[3, "expect_not_shown"] is True and not demo["passed"].any()
    checks = rico_lab.compare(rehearsal).checks
    assert checks.loc["food_order", "shown"] == 1.0 and checks.loc["demo", "shown"] == 0.0
    assert checks.loc["demo", "answered"] == 0.0 and pd.isna(checks.loc["demo", "latency"])
    transcripts = rico_lab.compare(rehearsal).transcripts
    seen = transcripts.loc[2].xs("food_order", level="role").iloc[0]
    assert "screen (ask): How many apple cakes? 1 | 2 | 3 -> 2" in seen


@pytest.fixture(scope="module")
def ordering_lab(tmp_path_factory):
    """A lab whose local model calls the food order's tools on spoken turns 1-3."""
    calls = {
        1: ("show_menu", {"markdown": "- apple cake\n- lemonade"}),
        2: ("ask_quantity", {"question": "How many?", "choices": ["1", "2"]}),
        3: ("add_item", {"item": "lemonade", "quantity": 2}),
    }
    script = LocalScript(calls=calls)
    with rico_lab.Lab(runs_dir=tmp_path_factory.mktemp("runs"), script=script) as lab:
        yield lab


@pytest.mark.integration
def test_a_spoken_order_answers_on_screen_too(ordering_lab):
    script = Script.from_dict(
        {
            "turns": [
                {"say": "What is there?", "expect": {"shown": {"contains": "lemonade"}}},
                {"say": "Lemonade.", "answer": 1, "expect": {"contains": "returned 2"}},
                {"say": "That is all.", "expect": {"shown": {"contains": "lemonade | 2"}}},
                {"say": "Thanks.", "expect": {"not_shown": {}, "no_tool": True}},
            ]
        }
    )
    results = ordering_lab.rehearse(["food_order"], script, mode="audio", progress=False).results
    assert results["passed"].all(), results.drop(columns=["session"]).to_string()
    assert [len(shown) for shown in results["shown"]] == [1, 1, 1, 0]


@pytest.mark.integration
def test_an_ask_left_unanswered_times_out_as_a_user_who_does_not_click(lab, tmp_path):
    role = tmp_path / "asker.yaml"
    role.write_text(
        "name: asker\ninstructions: Ask.\ntools:\n"
        "  - {name: pick, description: Pick one., ui: ask, timeout_s: 1}\n"
    )
    script = Script.from_dict(
        {
            "turns": [
                {
                    "say": '/call pick {"question": "Which?", "choices": ["a", "b"]}',
                    "answer": None,
                    "expect": {"contains": "did not answer"},
                }
            ]
        }
    )
    results = lab.rehearse([str(role)], script, progress=False).results
    assert results["passed"].all(), results.to_string()
    assert results["expect_answered"].tolist() == [True]  # an ask came; the user chose not to


@pytest.mark.integration
def test_an_answer_no_role_asks_for_is_refused_naming_file_turn_and_field(lab, tmp_path):
    path = tmp_path / "no_question.yaml"
    path.write_text("turns:\n  - say: hello\n  - say: and now?\n    answer: Tuesday\n")
    with pytest.raises(LabError, match=r"no_question.yaml: turn 2: field 'answer': the agent"):
        lab.rehearse(["demo"], path, progress=False)


@pytest.mark.integration
def test_a_room_left_badly_after_a_failed_turn_does_not_hide_why_it_failed(lab, monkeypatch):
    """CI once saw only a TimeoutError: the user's disconnect hung after a turn timed out."""

    def stuck(*_args):
        raise LabError("rehearsal: timed out after 30 s waiting for demo: the agent to listen")

    close = Participant.close

    def hung(participant):
        close(participant)
        raise TimeoutError

    monkeypatch.setattr(rehearsal_module._User, "run", stuck)
    monkeypatch.setattr(Participant, "close", hung)
    with pytest.raises(LabError, match="waiting for demo: the agent to listen"):
        lab.rehearse(["demo"], SCRIPTS / "five_turns.yaml", progress=False)
