"""Fuzzing the role door: mutated sample roles load, or fail naming file, line and field.

The sample roles in ``roles/`` are mutated (keys, value types, Jinja templates, tool schemas,
the data beside a role as CSV, JSON or YAML, the file's text and bytes); whatever comes of
it is a :class:`Role` or a :class:`RoleError` that points at the file, never another
exception. A live edit with a mutated value is applied whole or not at all.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz_support import (
    DAMAGES,
    alias_bomb,
    counted,
    damaged,
    doubled,
    mutations,
    scalars,
    values,
)
from hypothesis import example, given
from hypothesis import strategies as st

from rico_lab.errors import RoleError
from rico_lab.roles import _EDITABLE, Role, load_role

pytestmark = [pytest.mark.unit, pytest.mark.fuzz]

ROLES = Path(__file__).resolve().parent.parent / "roles"
SAMPLES = {name: ROLES / name for name in ("food_order", "listener")} | {
    "demo": ROLES / "demo.yaml"
}

JINJA = st.sampled_from(
    [
        "{{ menu }}",
        "{% for row in menu %}{{ row.item }}{% endfor %}",
        "{{ data }}",
        "{{ nothing }}",
        "{% if %}",
        "{{ 1 / 0 }}",
        "{{ menu[0].item.upper(1, 2) }}",
        "{% include 'other.txt' %}",
        "{% extends 'base.txt' %}",
        "{{ '%d' % 'x' }}",
        "{{ data | no_such_filter }}",
        "{% raw %}",
        "{{",
        "}}",
        "{#",
    ]
)
#: Templates that never returned: a loop of 10**10 turns, a macro that calls itself twice
NESTED_LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
MACRO_TWICE = (
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(99) }}"
)
TEMPLATES = st.lists(JINJA | st.text(max_size=10), min_size=1, max_size=4).map("".join)
SCHEMAS = st.fixed_dictionaries(
    {"type": st.sampled_from(["object", "string", "array", 3, None])},
    optional={
        "properties": st.dictionaries(st.text(max_size=5), values, max_size=3) | values,
        "required": st.lists(st.text(max_size=5), max_size=3) | values,
        "additionalProperties": st.booleans() | values,
        "pattern": st.sampled_from(["[", "^a$", "(?P<x"]),
        "$ref": st.sampled_from(["#", "#/nowhere", "http://example.invalid/x"]),
    },
)
DATA_NAMES = st.sampled_from(["menu.csv", "extra.json", "extra.yaml", "extra.yml", "gone.csv"])
ROLE_VALUES = values | TEMPLATES | SCHEMAS | DATA_NAMES
DATA_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.lists(st.text("ab,\"'\n\r\x00", max_size=4), max_size=4), max_size=4).map(
        lambda rows: "\n".join(",".join(r) for r in rows)
    ),
    values.map(lambda v: yaml.safe_dump(v)),
)
DATA_BYTES = st.binary(max_size=40) | DATA_TEXT.map(str.encode)


@st.composite
def role_files(draw: st.DrawFn) -> tuple[str, dict[str, bytes]]:
    """A sample role's name and its files (``role.yaml`` or ``<name>.yaml``), mutated."""
    name = draw(st.sampled_from(sorted(SAMPLES)))
    sample = SAMPLES[name]
    main = sample / "role.yaml" if sample.is_dir() else sample
    raw = yaml.safe_load(main.read_text())
    focus = draw(st.sampled_from(["none", "instructions", "data"]))
    if focus == "instructions":  # the template and the data: where most can go wrong
        raw["instructions"] = draw(TEMPLATES)
    elif focus == "data":
        raw["data"] = draw(st.dictionaries(scalars, values, max_size=3) | DATA_NAMES)
    raw = draw(mutations(raw, ROLE_VALUES, least=0 if focus != "none" else 1))
    body = draw(st.sampled_from([*DAMAGES, "merge"]))
    if body == "merge" and isinstance(raw, dict):  # the instructions through a YAML merge key
        merged = {"instructions": raw.pop("instructions", draw(TEMPLATES))}
        raw = {"<<": merged, **raw}
    encoded = damaged(draw, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), body)
    files = {"role.yaml" if sample.is_dir() else f"{name}.yaml": encoded}
    if sample.is_dir():
        for neighbour in sample.iterdir():
            if neighbour.is_file():
                files[neighbour.name] = neighbour.read_bytes()
        for data in draw(st.lists(DATA_NAMES, max_size=2, unique=True)):
            files[data] = draw(DATA_BYTES)
        files.pop("gone.csv", None)
    return name, files


def write_role(folder: Path, name: str, files: dict[str, bytes]) -> Path:
    """The role's files in ``folder``; returns the role file's path."""
    home = folder / name if "role.yaml" in files else folder
    home.mkdir(exist_ok=True)
    for file, content in files.items():
        (home / file).write_bytes(content)
    return home / ("role.yaml" if "role.yaml" in files else f"{name}.yaml")


#: What an error of a role file says after ``<file>:<line>: ``: the field at fault, or why
#: the file could not be read as a role at all.
NAMED = re.compile(r"field '|not valid YAML|YAML refused|not UTF-8|a role is a mapping")


def assert_points_at_file(error: RoleError, path: Path) -> None:
    message = str(error)
    assert message.startswith(f"{path}:"), message
    assert re.match(r"\d+: ", message[len(f"{path}:") :]), message
    assert NAMED.search(message), message


def load_or_refuse(path: Path) -> Role | None:
    """The role at ``path``, or None once its error was checked to point at the file."""
    try:
        role = load_role(path)
    except RoleError as error:
        assert_points_at_file(error, path)
        return None
    role.render()
    assert len(role.version) == 8
    return role


# found by the fuzzer (shrunk), then by reading the code it led to: each crashed load_role
@given(role_files())
@example(("demo", {"demo.yaml": b"instructions: '{{ 1 / 0 }}'\n"}))
@example(("demo", {"demo.yaml": b"instructions: '{% include \"x\" %}'\n"}))
@example(("demo", {"demo.yaml": b"instructions: hi\ndata: {data: 1}\n"}))
@example(("demo", {"demo.yaml": b"instructions: hi\ndata: {1: 1}\n"}))
@example(("demo", {"demo.yaml": b"instructions: hi\ndata: {a: {1: x, b: y}}\n"}))
@example(("demo", {"demo.yaml": b"<<: {instructions: '{% if %}'}\n"}))
@example(("demo", {"demo.yaml": b"\x1finstructions: hi\n"}))  # a character YAML refuses
@example(("demo", {"demo.yaml": b"\x80instructions: hi\n"}))  # not UTF-8
@example(("shop", {"role.yaml": b"instructions: hi\ndata: menu.csv\n", "menu.csv": b"a\n1,2\n"}))
# ...and these never returned or filled the memory: an alias bomb (in the role, or its data),
# templates that do not end or explode; an alias cycle crashed with RecursionError
@example(("demo", {"demo.yaml": f"instructions: hi\ndata:\n{alias_bomb('  ')}".encode()}))
@example(
    ("shop", {"role.yaml": b"instructions: hi\ndata: x.yaml\n", "x.yaml": alias_bomb().encode()})
)
@example(("demo", {"demo.yaml": b"instructions: hi\ndata: &a {a: *a}\n"}))
@example(("demo", {"demo.yaml": f"instructions: '{NESTED_LOOPS}'\n".encode()}))
@example(("demo", {"demo.yaml": b"instructions: \"{{ 'x' * 10**10 }}\"\n"}))
@example(("demo", {"demo.yaml": b"instructions: '{{ 10 ** (10 ** 10) }}'\n"}))
@example(("demo", {"demo.yaml": f"instructions: '{MACRO_TWICE}'\n".encode()}))
@example(("demo", {"demo.yaml": f'instructions: "{doubled("ns.s ~ ns.s")}"\n'.encode()}))
@example(("demo", {"demo.yaml": b"instructions: \"{{ 'x'|center(10**10) }}\"\n"}))
@counted("role files")
def test_a_mutated_role_loads_or_names_file_line_and_field(role: tuple[str, dict[str, bytes]]):
    name, files = role
    with tempfile.TemporaryDirectory() as folder:
        load_or_refuse(write_role(Path(folder), name, files))


@st.composite
def edits(draw: st.DrawFn) -> dict[str, Any]:
    """One or two fields of the food_order role and mutated values for them."""
    role = _food_order_dict()
    fields = draw(st.lists(st.sampled_from(_EDITABLE), min_size=1, max_size=2, unique=True))
    changes: dict[str, Any] = {}
    for field in fields:
        current = role.get(field)
        new = values | TEMPLATES | DATA_NAMES
        changes[field] = draw(new if current is None else mutations(current, ROLE_VALUES) | new)
    return changes


def _food_order_dict() -> dict[str, Any]:
    return yaml.safe_load((ROLES / "food_order" / "role.yaml").read_text())


@pytest.fixture(scope="module")
def food_order_folder() -> Any:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(shutil.copytree(ROLES / "food_order", Path(folder) / "food_order"))


#: a template keeping the text or list made by {} a thousand times
MANY_KEPT = "{{% set l = [] %}}{{% for i in range(1000) %}}{{% set _ = {} %}}{{% endfor %}}"


# found by the fuzzer (shrunk): each crashed Role.update with a TypeError or AttributeError
@given(changes=edits(), assign=st.booleans())
@example(changes={"tools": [5]}, assign=False)
@example(changes={"tools": "abc"}, assign=True)
@example(changes={"data": {"data": 1}}, assign=False)
@example(changes={"instructions": "{{ 1 / 0 }}"}, assign=True)
@example(changes={"instructions": NESTED_LOOPS}, assign=True)  # these never returned
@example(changes={"instructions": MACRO_TWICE}, assign=False)
# ...and these filled the memory: a text doubled in a loop, a width or count of 10**10
@example(changes={"instructions": doubled("ns.s + ns.s")}, assign=True)
@example(changes={"instructions": doubled("ns.s.replace('x', 'xx')")}, assign=False)
@example(changes={"instructions": doubled("'%s%s' % (ns.s, ns.s)")}, assign=True)
@example(changes={"instructions": doubled("'{0}{0}'.format(ns.s)")}, assign=False)
@example(changes={"instructions": doubled("''.join([ns.s, ns.s])")}, assign=True)
@example(changes={"instructions": doubled("'%s%s'|format(ns.s, ns.s)")}, assign=False)
@example(changes={"instructions": "{{ 'x'.ljust(10**10) ~ 'x'.zfill(10**10) }}"}, assign=True)
@example(changes={"instructions": "{{ '\\t'.expandtabs(10**9) }}"}, assign=False)
@example(changes={"instructions": "{{ '%010000000000d' % 1 }}"}, assign=True)
@example(changes={"instructions": "{{ '{:10000000000}'.format(1) }}"}, assign=False)
@example(changes={"instructions": "{{ [1]|batch(10**10, 0)|list }}"}, assign=True)
@example(changes={"instructions": "{{ (1).to_bytes(10**10, 'big') }}"}, assign=False)
# ...or many texts each within the budget, kept: a thousand times a million characters
@example(changes={"instructions": MANY_KEPT.format("l.append('x' * 999999)")}, assign=True)
@example(changes={"instructions": MANY_KEPT.format("l.append('x'.ljust(999999))")}, assign=False)
@counted("live role edits")
def test_a_broken_live_edit_leaves_the_role_as_it_was(food_order_folder, changes, assign):
    role = load_role(food_order_folder / "role.yaml")
    before = (role.to_dict(), role.version, role.tools, role.data)
    seen: list[str] = []
    role.on_change(lambda r: seen.append(r.version))
    try:
        if assign and len(changes) == 1:
            [(field, value)] = changes.items()
            setattr(role, field, value)
        else:
            role.update(**changes)
    except RoleError as error:
        assert str(error).startswith(f"{food_order_folder / 'role.yaml'} (edited in Python): ")
        assert "field '" in str(error), str(error)
        assert (role.to_dict(), role.version, role.tools, role.data) == before
        assert seen == []
        return
    assert seen == [role.version]
    role.render()
