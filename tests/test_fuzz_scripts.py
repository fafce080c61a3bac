"""Fuzzing the rehearsal-script door: mutated sample scripts load, or fail naming turn and field.

The sample scripts (``tests/scripts``, ``notebooks/scripts``) are mutated as data and as
text; ``Script.load`` gives a :class:`Script` or a :class:`LabError` that starts with the
file and names the turn and field (or the top-level field), never another exception.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from fuzz_support import DAMAGES, alias_bomb, counted, damaged, mutations
from hypothesis import example, given
from hypothesis import strategies as st

from rico_lab.errors import LabError
from rico_lab.evaluation.script import Script

pytestmark = [pytest.mark.unit, pytest.mark.fuzz]

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted([*REPO.glob("tests/scripts/*.yaml"), *REPO.glob("notebooks/scripts/*.yaml")])


@st.composite
def script_texts(draw: st.DrawFn) -> bytes:
    """A sample script, mutated as YAML data, then maybe cut or spliced as text and bytes."""
    raw = yaml.safe_load(draw(st.sampled_from(SAMPLES)).read_text())
    text = yaml.safe_dump(draw(mutations(raw)), sort_keys=False, allow_unicode=True)
    return damaged(draw, text, draw(st.sampled_from(DAMAGES)))


#: What follows ``<file>: `` in a script's error: the turn and field, a top-level field, or
#: why the file is no script at all.
NAMED = re.compile(r"(turn \d+: )?field ['\"]|cannot read the script: ")


# found by the fuzzer (shrunk): a file not UTF-8 raised UnicodeDecodeError; found by reading
# the schema it led to: a NaN or an endless wait was accepted, to fail or hang mid-rehearsal
@given(script_texts())
@example(b"\x80turns: [{say: hi}]\n")
@example(b"turns: [{say: hi, wait_s: .nan}]\n")
@example(b"turns: [{say: hi, wait_s: .inf}]\n")
@example(b"turns: [{say: hi, expect: {latency_s: .nan}}]\n")
# an alias bomb never returned (the error that 'say' is no text quotes its 9**9 nodes), and
# one under 'args' loaded, to hang whatever showed the script; a cycle loaded as well
@example(f"turns:\n  - say:\n{alias_bomb(' ' * 6)}".encode())
@example(b"turns: [{say: hi, expect: {args: &a {a: *a}}}]\n")
# a date that is none raised a bare ValueError, deep nesting a RecursionError
@example(b"turns: [{say: hi, expect: {args: {d: 2020-13-45}}}]\n")
@example(b"turns: [{say: " + b"[" * 400 + b"]" * 400 + b"}]\n")
@counted("rehearsal scripts")
def test_a_mutated_script_loads_or_names_turn_and_field(content: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "script.yaml"
        path.write_bytes(content)
        try:
            script = Script.load(path)
        except LabError as error:
            message = str(error)
            assert message.startswith(f"{path}: "), message
            assert NAMED.match(message[len(f"{path}: ") :]), message
            return
    assert script.turns and all(isinstance(t.say, str) and t.say for t in script.turns)
    assert all(math.isfinite(t.wait_s) and t.wait_s >= 0 for t in script.turns)
    assert all(t.latency_s is None or t.latency_s > 0 for t in script.turns)
