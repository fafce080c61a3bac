"""The client methods' rules as the headless client applies them: the shared cases.

tests/client_method_cases.json is run here and by the voice client's unit tests
(widgets/test), so the browser and the headless client refuse, answer and show alike.
"""

import json
from pathlib import Path

import pytest

from rico_lab.client_methods import CLIENT_METHODS, CallRefused, check_call, fill

pytestmark = pytest.mark.unit

CASES = json.loads((Path(__file__).with_name("client_method_cases.json")).read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['method']}:{c['payload'][:40]}")
def test_each_shared_case(case):
    if "error" in case:
        with pytest.raises(CallRefused) as refused:
            check_call(case["method"], case["payload"])
        assert str(refused.value) == case["error"]
        return
    call = check_call(case["method"], case["payload"])
    answer = case["user_answer"] if case["method"] == "ask" else call.answer
    assert (answer, call.shown.title, call.shown.text) == (
        case["answer"],
        case["title"],
        case["text"],
    )


def test_every_method_has_cases_of_both_kinds():
    for method in CLIENT_METHODS:
        kinds = {"error" in case for case in CASES if case["method"] == method}
        assert kinds == {True, False}, method


def test_fill_leaves_other_braces_as_written():
    assert fill("must be {arguments, result?} not {name}", name="x") == (
        "must be {arguments, result?} not x"
    )
