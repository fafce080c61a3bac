from pathlib import Path

import pytest

from rico_lab.errors import RoleError
from rico_lab.roles import load_role

pytestmark = pytest.mark.unit


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_demo_role_loads_by_name():
    role = load_role("demo")
    assert role.name == "demo"
    assert "rico_lab demo agent" in role.instructions
    assert role.greeting and role.voice
    assert len(role.version) == 8


def test_version_changes_with_the_file(tmp_path):
    write(tmp_path, "a", "instructions: one\n")
    first = load_role("a", tmp_path).version
    write(tmp_path, "a", "instructions: two\n")
    assert load_role("a", tmp_path).version != first


def test_unknown_role_lists_the_known_ones(tmp_path):
    write(tmp_path, "alpha", "instructions: hi\n")
    with pytest.raises(RoleError, match=r"unknown role 'beta'.*alpha"):
        load_role("beta", tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instructions: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
        ("voice: marin\n", "missing required field 'instructions'"),
        ("instructions: hi\ncolour: red\n", "unknown field.*colour"),
        ("instructions: hi\nvoice: 3\n", "field 'voice' must be a non-empty str"),
        ("instructions: hi\nname: other\n", "field 'name' is 'other'"),
    ],
)
def test_bad_role_names_file_and_field(tmp_path, text, message):
    path = write(tmp_path, "bad", text)
    with pytest.raises(RoleError, match=message) as info:
        load_role("bad", tmp_path)
    assert str(path) in str(info.value)
