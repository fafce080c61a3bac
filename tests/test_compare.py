import math

import pandas as pd
import pytest

import rico_lab
from rico_lab.evaluation.record import Log
from rico_lab.evaluation.rehearsal import Rehearsal

pytestmark = pytest.mark.unit


def talk(log: Log, session: str, role: str, lines: list[tuple[str, str, float | None]]) -> None:
    log.write(session, "session_started", role=role, role_version="v" + role, model="local")
    for speaker, text, latency in lines:
        metrics = {"e2e_latency": latency} if latency is not None else {}
        log.write(
            session, "turn", speaker=speaker, text=text, role=role, role_version="v" + role,
            interrupted=text.endswith("—"), metrics=metrics,
        )  # fmt: skip


@pytest.fixture
def log():
    log = Log()
    talk(log, "a1", "terse", [("agent", "Hi.", None), ("user", "menu?", None),
                              ("agent", "Soup, bread.", 0.4), ("user", "soup", None),
                              ("agent", "Done.", 0.6)])  # fmt: skip
    talk(log, "b1", "chatty", [("agent", "Hello there, friend!", None), ("user", "menu?", None),
                               ("agent", "We have a lovely soup and —", 0.9)])  # fmt: skip
    for ok in (True, False):
        log.write("a1", "tool_call", tool="show", arguments={}, result="x" if ok else None,
                  error=None if ok else "boom", role="terse", role_version="vterse")  # fmt: skip
    return log


def test_summary_per_role(log):
    summary = rico_lab.compare(log).summary
    assert list(summary.index) == ["chatty", "terse"]
    terse, chatty = summary.loc["terse"], summary.loc["chatty"]
    assert (terse.sessions, terse.user_turns, terse.agent_turns) == (1, 2, 3)
    assert terse.words_per_agent_turn == pytest.approx((1 + 2 + 1) / 3)
    assert (terse.tool_calls, terse.tool_success) == (2, 0.5)
    assert terse.latency_p50_s == pytest.approx(0.5) and terse.interruptions == 0
    assert (chatty.tool_calls, chatty.interruptions) == (0, 1)
    assert math.isnan(chatty.tool_success)
    assert summary.dtypes["user_turns"] == "int64"


def test_transcripts_line_up_by_user_turn(log):
    comparison = rico_lab.compare(log)
    table = comparison.transcripts
    assert table.loc[1, ("terse", "a1")] == "user: menu?\nagent: Soup, bread."
    assert table.loc[1, ("chatty", "b1")] == "user: menu?\nagent: We have a lovely soup and —"
    assert table.loc[0, ("terse", "a1")] == "agent: Hi."
    assert isinstance(table.loc[2, ("chatty", "b1")], float)  # no second turn: NaN
    page = comparison._repr_html_()
    assert "user: menu?<br>agent: Soup, bread." in page and "latency_p50_s" in page


def test_by_version_and_bad_key(log):
    assert list(rico_lab.compare(log, by="role_version").summary.index) == ["vchatty", "vterse"]
    with pytest.raises(ValueError, match="not 'colour'"):
        rico_lab.compare(log, by="colour")


def test_model_text_is_escaped_in_the_html():
    log = Log()
    talk(log, "x", "r", [("agent", "<img src=x onerror=alert(1)>", None)])
    assert "<img" not in rico_lab.compare(log)._repr_html_()


def test_a_rehearsal_gives_pass_rates_per_kind_and_role_and_the_screen_in_the_transcripts(log):
    log.write("a1", "ui", method="show_table", title="Menu", text="item\nsoup",
              answer="shown 1 rows", error=None, role="terse", role_version="vterse")  # fmt: skip
    results = pd.DataFrame(
        {
            "role": pd.Categorical(["terse", "terse", "chatty"]),
            "expect_contains": [True, False, None],
            "expect_shown": [None, True, False],
            "expect_latency": [None, None, None],
            "passed": [True, False, False],
        }
    )
    comparison = rico_lab.compare(Rehearsal(results=results, log=log))
    checks = comparison.checks
    assert checks.loc["terse", "contains"] == 0.5 and checks.loc["terse", "shown"] == 1.0
    assert checks.loc["chatty", "shown"] == 0.0 and math.isnan(checks.loc["chatty", "contains"])
    assert math.isnan(checks.loc["terse", "latency"]) and checks.loc["terse", "passed"] == 0.5
    assert "screen (show_table): Menu item / soup" in comparison.transcripts.loc[2, ("terse", "a1")]
    assert "<table" in comparison._repr_html_()
    assert rico_lab.compare(log).checks.empty  # a log alone has no expectations
