"""Fuzzing the client-method door: random payloads get a documented refusal or a safe panel.

The agent's RPC payloads reach the voice client's methods (``client_methods.json``, applied
by ``client_methods.py`` and by the headless client of rehearsals). Whatever they hold, a
call is refused with one of the documented messages, or shows text (never a raw script's
content); a scripted answer fits its question as the page would send it, or is refused.
widgets/test/fuzz_ui_methods.test.ts holds the same properties for the browser's side.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import counted, mutations, values
from hypothesis import example, given
from hypothesis import strategies as st

from rico_lab.client_methods import _SPEC, CLIENT_METHODS, CallRefused, check_call
from rico_lab.evaluation.headless_client import AnswerRefused, HeadlessClient

pytestmark = [pytest.mark.unit, pytest.mark.fuzz]

CASES = json.loads(Path(__file__).with_name("client_method_cases.json").read_text())["cases"]


def _pattern(template: str) -> str:
    """A documented message as a regex: each ``{placeholder}`` matches any text."""
    return re.sub(r"\\\{\w+\\\}", ".*", re.escape(template))


#: Every message the client may answer a refused call with, and nothing else.
DOCUMENTED = re.compile(
    "^(?:" + "|".join(f"(?:{_pattern(m)})" for m in _SPEC["messages"].values()) + ")$", re.DOTALL
)


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, str]:
    """A method and a payload: random text, a random JSON value, or a call of that method
    with its arguments (and a result) of random types, or a shared case's payload mutated."""
    method = draw(st.sampled_from(sorted(CLIENT_METHODS)))
    kind = draw(st.sampled_from(["text", "json", "arguments", "case"]))
    if kind == "text":
        return method, draw(st.text(max_size=40))
    if kind == "json":
        return method, json.dumps(draw(values))
    if kind == "case":
        case = draw(st.sampled_from([c for c in CASES if c["method"] == method]))
        try:
            parsed = json.loads(case["payload"])
        except ValueError:
            return method, case["payload"]
        return method, json.dumps(draw(mutations(parsed)))
    names = [*_SPEC["methods"][method]["arguments"], "label", "name", "type"]
    arguments = draw(st.dictionaries(st.sampled_from(names), values | FIELDS | ROWS, max_size=4))
    call: dict[str, Any] = {"arguments": arguments}
    if draw(st.booleans()):
        call["result"] = draw(values)
    return method, json.dumps(call)


FIELDS = st.lists(
    st.dictionaries(st.sampled_from(["name", "label", "type"]), values | st.just("number")),
    max_size=3,
)
ROWS = st.lists(
    st.lists(values, max_size=3) | st.dictionaries(st.text(max_size=4), values), max_size=3
)


# found by the fuzzer (shrunk): NaN and Infinity, which the page's JSON.parse refuses, were
# accepted (a cell shown as "nan"); by reading the parser then: a payload nested deeper
# than Python's recursion limit raised RecursionError
@given(payloads())
@example(("show_table", '{"arguments": {"rows": [[NaN]]}}'))
@example(("save_note", '{"arguments": {"text": "x"}, "result": Infinity}'))
@example(("show_markdown", "[" * 100_000))
@counted("client methods (Python)")
def test_a_payload_is_refused_with_a_documented_message_or_shown_as_text(call: tuple[str, str]):
    method, payload = call
    try:
        accepted = check_call(method, payload)
    except CallRefused as refused:
        assert DOCUMENTED.match(str(refused)), str(refused)
        return
    assert _strict_json(payload), "accepted what JSON.parse refuses"
    for text in (accepted.shown.title, accepted.shown.text):
        assert isinstance(text, str)
        assert text == "\n".join(line.strip() for line in text.splitlines() if line.strip())
    if method != "ask":
        assert isinstance(accepted.answer, str)


def _strict_json(payload: str) -> bool:
    """Whether the browser's JSON.parse reads ``payload`` (no NaN, no Infinity)."""

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(payload, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return True


#: Markdown around the block: no code fences, indents or HTML that could make the script text.
PLAIN = st.text(
    st.characters(exclude_characters="`~<>\\&\t ", exclude_categories=["Cc", "Zl", "Zp"]),
    max_size=30,
)


@given(before=PLAIN, inside=st.text(st.characters(exclude_characters="<"), min_size=1), after=PLAIN)
@counted("client methods (Python)")
def test_a_script_in_markdown_shows_none_of_its_text(before: str, inside: str, after: str):
    marker = f"MARK{abs(hash(inside))}"
    markdown = f"{before}\n\n<script>{inside}{marker}</script>\n\n{after}"
    call = check_call("show_markdown", json.dumps({"arguments": {"markdown": markdown}}))
    assert marker not in call.shown.text


FORM = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=5)},
        optional={"type": st.sampled_from(["text", "number"])},
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda f: f["name"],
)
ASK = st.one_of(
    st.lists(st.text(max_size=5), min_size=1, max_size=4).map(lambda c: {"choices": c}),
    FORM.map(lambda f: {"fields": f}),
).map(lambda a: {"question": "How many?", **a})


@st.composite
def answers(draw: st.DrawFn, arguments: dict[str, Any]) -> Any:
    """An answer of any shape, or one keyed by the form's own fields (with values of any type)."""
    names = [f["name"] for f in arguments.get("fields", [])]
    if names and draw(st.booleans()):
        return draw(st.dictionaries(st.sampled_from(names), values))
    return draw(values)


# found by reading _fit while writing this property: a number field answered NaN became
# NaN in the answer, which is no JSON (the page sends null); True passed as a number
@given(ASK.flatmap(lambda a: st.tuples(st.just(a), answers(a))))
@example(({"question": "?", "fields": [{"name": "n", "type": "number"}]}, {"n": math.nan}))
@example(({"question": "?", "fields": [{"name": "n", "type": "number"}]}, {"n": True}))
@counted("headless client answers")
def test_a_scripted_answer_fits_its_question_as_the_page_sends_it(asked: tuple[Any, Any]):
    arguments, answer = asked
    call = check_call("ask", json.dumps({"arguments": arguments}))
    try:
        sent = HeadlessClient._fit(call, answer)
    except AnswerRefused:
        return
    if "choices" in arguments:
        assert sent in arguments["choices"]
        return
    form = json.loads(sent, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert list(form) == [f["name"] for f in arguments["fields"]]
    for field in arguments["fields"]:
        value = form[field["name"]]
        if field.get("type") == "number":
            assert value is None or (type(value) in (int, float) and math.isfinite(value))
        else:
            assert isinstance(value, str)
