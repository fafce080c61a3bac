import copy
import dataclasses
import os
import textwrap
import time
from pathlib import Path

import pytest
from fuzz_support import alias_bomb, doubled

from rico_lab.errors import RoleError
from rico_lab.roles import load_role, roles

pytestmark = pytest.mark.unit


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_demo_role_loads_by_name():
    role = load_role("demo")
    assert role.name == "demo"
    assert "rico_lab demo agent" in role.render()
    assert role.greeting and role.voice == "marin" and role.description
    assert len(role.version) == 8


def test_version_changes_with_the_file(tmp_path):
    write(tmp_path, "a", "instructions: one\n")
    first = load_role("a", tmp_path).version
    write(tmp_path, "a", "instructions: two\n")
    assert load_role("a", tmp_path).version != first


def test_folder_role_with_a_csv_menu_and_a_python_tool(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "menu.csv").write_text("item,price\nsoup,4\nbread,2\n")
    (folder / "shop_tools.py").write_text("def total(items):\n    return len(items)\n")
    write(
        folder,
        "role",
        """
        name: shop
        data: menu.csv
        instructions: |
          Sell from the menu:
          {% for row in menu %}- {{ row.item }}: {{ row.price }}
          {% endfor %}
        tools:
          - name: add_item
            description: Add an item to the order on screen.
            parameters:
              type: object
              properties: {item: {type: string}}
              required: [item]
            ui: show_table
          - name: total
            description: Count the items.
            python: shop_tools:total
        """,
    )
    role = load_role("shop", tmp_path)
    assert "- soup: 4" in role.render() and "- bread: 2" in role.render()
    assert [t.name for t in role.tools] == ["add_item", "total"]
    assert role.tools[0].ui == "show_table" and role.tools[1].function(["a", "b"]) == 2


def test_model_settings_become_realtime_model_options(tmp_path):
    write(
        tmp_path,
        "m",
        """
        instructions: hi
        model:
          model: gpt-realtime-mini
          voice: cedar
          modalities: [text]
          turn_detection: {type: server_vad, silence_duration_ms: 700}
        """,
    )
    options = load_role("m", tmp_path).realtime_options()
    assert options["model"] == "gpt-realtime-mini" and options["voice"] == "cedar"
    assert options["modalities"] == ["text"]
    assert options["turn_detection"].silence_duration_ms == 700
    write(tmp_path, "off", "instructions: hi\nmodel: {turn_detection: null}\n")
    assert load_role("off", tmp_path).realtime_options()["turn_detection"] is None


def test_unknown_role_lists_the_known_ones(tmp_path):
    write(tmp_path, "alpha", "instructions: hi\n")
    (tmp_path / "beta").mkdir()
    write(tmp_path / "beta", "role", "instructions: hi\n")
    with pytest.raises(RoleError, match=r"unknown role 'gamma'.*alpha, beta"):
        load_role("gamma", tmp_path)


BAD = {
    "yaml": ("instructions: hi\nvoice: [unclosed\n", 3, "not valid YAML"),
    "not a mapping": ("- a list\n", 1, "a role is a mapping"),
    "missing field": ("description: x\n", 1, "'instructions' is a required property"),
    "unknown key": ("instructions: hi\ncolour: red\n", 2, "unknown field 'colour'"),
    "nested unknown key": ("instructions: hi\nmodel:\n  voice: a\n  pitch: 3\n", 4, "unknown field 'model.pitch'"),
    "wrong type": ("instructions: hi\nmodel:\n  voice: 3\n", 3, "field 'model.voice': 3 is not of type 'string'"),
    "out of range": ("instructions: hi\nmodel:\n  turn_detection: {type: server_vad, threshold: 2}\n", 3, "field 'model.turn_detection' fits none"),
    "bad enum": ("instructions: hi\nmodel:\n  modalities: [video]\n", 3, "field 'model.modalities.0'"),
    "bad turn detection": ("instructions: hi\nmodel:\n  turn_detection: {type: magic}\n", 3, "field 'model.turn_detection'"),
    "name mismatch": ("name: other\ninstructions: hi\n", 1, "field 'name' is 'other'"),
    "template syntax": ("greeting: hi\ninstructions: |\n  line one\n  {% if %}\n", 4, "field 'instructions': template error"),
    "template variable": ("instructions: Sell {{ menu }}\n", 1, "'menu' is undefined"),
    "missing data file": ("instructions: hi\ndata: menu.csv\n", 2, "data file .*menu.csv does not exist"),
    "unknown client method": ("instructions: hi\ntools:\n  - name: t\n    description: d\n    ui: show_markdwn\n", 5, "field 'tools.0.ui': 'show_markdwn' is not one of \\['show_markdown'"),
    "tool schema invalid": ("instructions: hi\ntools:\n  - name: t\n    description: d\n    ui: ask\n    parameters: {type: object, properties: 3}\n", 6, "'tools.0.parameters' of tool 't' is not a valid JSON Schema"),
    "tool schema not object": ("instructions: hi\ntools:\n  - name: t\n    description: d\n    ui: ask\n    parameters: {type: string}\n", 6, "must have type: object"),
    "handler not importable": ("instructions: hi\ntools:\n  - name: t\n    description: d\n    python: no_such_module:f\n", 5, "'tools.0.python': cannot import 'no_such_module'"),
    "handler missing": ("instructions: hi\ntools:\n  - name: t\n    description: d\n    python: json:no_such_function\n", 5, "'json' has no function 'no_such_function'"),
    "key beside a merge key": ("instructions: hi\ntools:\n  - &note\n    name: note\n    description: d\n    ui: save_note\n  - <<: *note\n    description: 5\n", 8, "field 'tools.1.description': 5 is not of type 'string'"),
    # each of these never returned, or filled the memory: refused at once
    "alias bomb": ("instructions: hi\ndata:\n" + alias_bomb("  "), 9, r"YAML refused: the alias \*f expands the document past 1,000,000 nodes"),
    "alias cycle": ("instructions: hi\ndata: &a {a: *a}\n", 2, r"YAML refused: the alias \*a is inside the node it names"),
    # a ValueError and a RecursionError, past the message that names the line
    "date that is none": ("instructions: hi\ndata: {d: 2020-13-45}\n", 2, r"not valid YAML: '2020-13-45' is not a date: month must be in 1..12"),
    "nested too deep": ("instructions: hi\ndata: {d: " + "[" * 400 + "]" * 400 + "}\n", 2, r"YAML refused: nested deeper than 100 levels"),
    "endless loops": ("greeting: hi\ninstructions: |\n  {% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\n", 2, "field 'instructions': template error: over 1,000,000 loop iterations"),
    "huge text": ("instructions: \"{{ 'x' * 10**10 }}\"\n", 1, r"field 'instructions': template error: '\*' would make over 1,000,000 items"),
    "huge number": ("instructions: '{{ 10 ** (10 ** 10) }}'\n", 1, r"field 'instructions': template error: '\*\*' would make a number of over 100,000 bits"),
    "endless macro": ("instructions: '{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}'\n", 1, "field 'instructions': template error: RecursionError"),
    "macro called twice": ("instructions: '{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(99) }}'\n", 1, "field 'instructions': template error: over 50,000 calls"),
    "prompt too long": ("instructions: \"{{ 'x' * 600000 }}{{ 'x' * 600000 }}\"\n", 1, "field 'instructions': template error: the prompt runs past 1,000,000 characters"),
    "text doubled by ~": (f"instructions: \"{doubled('ns.s ~ ns.s')}\"\n", 1, "field 'instructions': template error: '~' would make over 1,000,000 items"),
    "text doubled by replace": ("instructions: \"" + doubled("ns.s|replace('x', 'xx')") + "\"\n", 1, "field 'instructions': template error: filter 'replace' would make over 1,000,000 items"),
    "text doubled by join": (f"instructions: \"{doubled('[ns.s, ns.s]|join')}\"\n", 1, "field 'instructions': template error: filter 'join' would make over 1,000,000 items"),
    "text doubled by a block": ("instructions: \"{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set s %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = s %}{% endfor %}\"\n", 1, "field 'instructions': template error: the output of a macro or block runs past 1,000,000 characters"),
    "list doubled by extend": ("instructions: '{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}'\n", 1, r"field 'instructions': template error: extend\(\) would make over 1,000,000 items"),
    "list of itself doubled, printed": ("instructions: '{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}'\n", 1, "field 'instructions': template error: '{{ }}' would make over 1,000,000 items"),
    "list of itself doubled, as a string": ("instructions: '{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l|string }}'\n", 1, "field 'instructions': template error: filter 'string' would make over 1,000,000 items"),
    "text grown by small steps": ("instructions: \"{% set ns = namespace(s='') %}{% for i in range(100000) %}{% for j in range(9) %}{% set ns.s = ns.s ~ 'xxxxxxxxxx' %}{% endfor %}{% endfor %}\"\n", 1, "field 'instructions': template error: '~' would take the texts and lists made past 20,000,000 items in all"),
    "many texts kept": ("instructions: \"{% set l = [] %}{% for i in range(1000) %}{% set _ = l.append('x' * 999999) %}{% endfor %}\"\n", 1, r"field 'instructions': template error: '\*' would take the texts and lists made past 20,000,000 items in all"),
    "many texts kept by a block": ("instructions: \"{% set big = 'x' * 400000 %}{% set l = [] %}{% for i in range(1000) %}{% set s %}{{ big }}{{ big }}{% endset %}{% set _ = l.append(s) %}{% endfor %}\"\n", 1, "field 'instructions': template error: the output of a macro or block would take the texts and lists made past 20,000,000 items in all"),
    "huge width": ("instructions: \"{{ 'x'.center(10**10) }}\"\n", 1, r"field 'instructions': template error: center\(\) would make over 1,000,000 items"),
    "huge indent": ("instructions: \"{{ 'x'|indent(10**10) }}\"\n", 1, "field 'instructions': template error: filter 'indent' would make over 1,000,000 items"),
    "huge % width": ("instructions: \"{{ '%0*d' % (10**10, 1) }}\"\n", 1, "field 'instructions': template error: '%' would make over 1,000,000 items"),
    "huge format width": ("instructions: \"{{ '{:>{}}'.format('x', 10**10) }}\"\n", 1, r"field 'instructions': template error: format\(\) would make over 1,000,000 items"),
    "huge slice count": ("instructions: '{{ [1]|slice(10**10)|list }}'\n", 1, "field 'instructions': template error: filter 'slice' would make over 1,000,000 items"),
    "huge lipsum": ("instructions: '{{ lipsum(10**10) }}'\n", 1, r"field 'instructions': template error: lipsum\(\) would make over 1,000,000 items"),
    "huge range with a step": ("instructions: '{{ range(0, 10**10, 2)|length }}'\n", 1, "field 'instructions': template error: OverflowError: Range too big"),
}  # fmt: skip


@pytest.mark.timeout(30)  # a hang is a failure, not a stalled suite
@pytest.mark.parametrize(("text", "line", "message"), BAD.values(), ids=BAD.keys())
def test_bad_role_names_file_line_and_field(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RoleError, match=message) as info:
        load_role("bad", tmp_path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)


def test_anchors_and_aliases_of_a_few_nodes_still_load(tmp_path):
    write(
        tmp_path,
        "a",
        """
        instructions: Sell {{ items | join(', ') }}; again {{ again | join(', ') }}.
        data:
          items: &items [soup, bread]
          again: *items
        tools:
          - &note {name: note, description: Save a note., ui: save_note}
          - {<<: *note, name: other_note}
        """,
    )
    role = load_role("a", tmp_path)
    assert role.render() == "Sell soup, bread; again soup, bread."
    assert [t.name for t in role.tools] == ["note", "other_note"]


def test_a_template_within_its_budgets_renders_as_jinja_does(tmp_path):
    write(
        tmp_path,
        "j",
        """
        instructions: >-
          {% for x in [1, 2, 3] if x > 1 %}{{ x }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}
          {% for x in [] %}{% else %}none{% endfor %}
          {% for x in [[1, [2]], 3] recursive %}[{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}]{% endfor %}
          {{ 'ab' * 2 }} {{ 2 * [0] }} {{ 2 ** 64 }} {{ 2 ** 0.5 }} {{ 10 ** 10 ** 10 > 0 }} {{ 'a' + 'b' }}
          {{ 'a' ~ 1 ~ none }} {{ '%03d|%-3s|%s' % (7, 'ab', [1]) }} {{ '{:>4}|{x:{w}}|'.format('b', x=1, w=2) }}
          {{ 'x'|center(5) }}|{{ 'x'.rjust(3, '.') }} {{ 'ab'|replace('b', 'cd') }} {{ [1, 2, 3]|batch(2, 0)|list }}
          {% set b %}{{ [1, 2]|join('+') }}{% endset %}{{ b }} {% macro m() %}<{{ caller() }}>{% endmacro %}{% call m() %}c{% endcall %}
        """,
    )
    assert load_role("j", tmp_path).render() == (
        "2/2,3/2 none [[1][[2]]][3] abab [0, 0] 18446744073709551616 1.4142135623730951 True ab"
        " a1None 007|ab |[1]    b| 1|   x  |..x acd [[1, 2], [3, 0]] 1+2 <c>"
    )


def test_round_trip_load_edit_save_load(tmp_path):
    write(
        tmp_path,
        "r",
        """
        name: r
        description: round trip
        model: {voice: cedar}
        instructions: |
          Line one.
          Line two.
        greeting: Hello.
        tools:
          - name: show
            description: Show text.
            parameters: {type: object, properties: {text: {type: string}}}
            ui: show_markdown
        """,
    )
    role = load_role("r", tmp_path)
    role.instructions = "New line one.\nNew line two."
    saved = role.save()
    text = saved.read_text()
    assert "instructions: |\n  New line one.\n  New line two.\n" in text
    assert text.index("description") < text.index("model") < text.index("instructions")
    again = load_role("r", tmp_path)
    assert again.to_dict() == role.to_dict() and again.version == role.version


def test_a_tool_bound_to_a_client_method_takes_its_arguments_by_default(tmp_path):
    write(
        tmp_path, "n", "instructions: hi\ntools:\n  - {name: note, description: d, ui: save_note}\n"
    )
    role = load_role("n", tmp_path)
    assert role.tools[0].parameters["required"] == ["text"]
    assert "parameters" not in role.save().read_text()  # the default is not written out
    assert load_role("n", tmp_path).to_dict() == role.to_dict()


def test_an_invalid_edit_raises_and_keeps_the_last_good_role(tmp_path):
    write(tmp_path, "r", "instructions: Sell {{ item }}\ndata: {item: soup}\n")
    role = load_role("r", tmp_path)
    seen = []
    role.on_change(lambda r: seen.append(r.version))
    good = role.version
    with pytest.raises(RoleError, match=r"r.yaml \(edited in Python\).*'nothing' is undefined"):
        role.instructions = "Sell {{ nothing }}"
    with pytest.raises(RoleError, match=r"field 'model.voice'"):
        role.model = {"voice": 7}
    assert role.instructions == "Sell {{ item }}" and role.version == good and seen == []
    role.instructions = "Sell {{ item }} and bread"
    assert role.render() == "Sell soup and bread"
    assert seen == [role.version] and role.version != good


def test_roles_lists_every_role_and_the_broken_ones_with_their_error(tmp_path):
    write(tmp_path, "a", "description: first\ninstructions: hi\nmodel: {voice: cedar}\n")
    write(tmp_path, "b", "instructions: [\n")
    (tmp_path / "c").mkdir()
    write(
        tmp_path / "c",
        "role",
        "instructions: hi\ntools:\n  - {name: t, description: d, ui: save_note}\n",
    )
    table = roles(tmp_path)
    assert list(table["name"]) == ["a", "b", "c"]
    a, b, c = (row for _, row in table.iterrows())
    assert (a["description"], a["voice"], a["error"]) == ("first", "cedar", "")
    assert len(a["version"]) == 8 and a["file"].endswith("a.yaml")
    assert "not valid YAML" in b["error"]
    assert c["tools"] == ["t"]


def test_role_shows_as_html_with_its_rendered_prompt(tmp_path):
    write(tmp_path, "h", "instructions: Sell <b>{{ item }}</b>\ndata: {item: soup}\n")
    page = load_role("h", tmp_path)._repr_html_()
    assert "Sell &lt;b&gt;soup&lt;/b&gt;" in page and "role h" in page


def test_role_modules_are_their_own_and_reload_when_edited(tmp_path):
    for name, answer in (("a", 1), ("b", 2)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "tools.py").write_text(
            f"calls = []\ndef f():\n    calls.append(1)\n    return {answer}\n"
        )
        write(
            folder,
            "role",
            "instructions: hi\ntools:\n  - {name: f, description: d, python: tools:f}\n",
        )
    a, b = load_role("a", tmp_path), load_role("b", tmp_path)
    assert (a.tools[0].function(), b.tools[0].function()) == (1, 2)
    a.instructions = "hello"  # the module is unchanged: same function, state kept
    assert a.tools[0].function.__globals__["calls"] == [1]
    source = tmp_path / "a" / "tools.py"
    source.write_text("def f():\n    return 'edited'\n")
    os.utime(source, (time.time() + 5, time.time() + 5))  # a new mtime even on coarse clocks
    assert load_role("a", tmp_path).tools[0].function() == "edited"


def test_a_replaced_or_copied_role_does_not_edit_the_original(tmp_path):
    """A copy is a new role: its edits must not reach the original's live conversations."""
    write(tmp_path, "r", "instructions: Original.\n")
    role = load_role("r", tmp_path)
    seen = []
    role.on_change(lambda r: seen.append(r.instructions))
    for duplicate in (dataclasses.replace(role), copy.copy(role), copy.deepcopy(role)):
        duplicate.instructions = "Copy."
        assert duplicate.instructions == "Copy."
    assert seen == [] and role.instructions == "Original."


def test_an_update_of_two_fields_is_one_edit(tmp_path):
    write(tmp_path, "r", "instructions: Sell {{ item }}\ndata: {item: soup}\n")
    role = load_role("r", tmp_path)
    seen = []
    role.on_change(lambda r: seen.append((r.render(), r.greeting, r.version)))
    with pytest.raises(RoleError, match="'drink' is undefined"):
        role.instructions = "Sell {{ drink }}"  # alone it needs data the role lacks
    role.update(instructions="Sell {{ drink }}", data={"drink": "tea"}, greeting="Tea?")
    assert seen == [("Sell tea", "Tea?", role.version)]


def test_a_bad_update_names_the_field_and_leaves_every_field_as_it_was(tmp_path):
    write(tmp_path, "r", "instructions: Sell {{ item }}\ndata: {item: soup}\ngreeting: Hi.\n")
    role = load_role("r", tmp_path)
    before = (role.to_dict(), role.version)
    seen = []
    role.on_change(seen.append)
    with pytest.raises(RoleError, match=r"\(edited in Python\): field 'model.voice'"):
        role.update(instructions="Sell {{ item }} now", greeting="Hello.", model={"voice": 7})
    with pytest.raises(RoleError, match=r"field 'voice'; editable fields: description, model"):
        role.update(greeting="Hello.", voice="cedar")
    with pytest.raises(RoleError, match=r"cannot edit field 'version'"):
        role.update(version="abcdef12")
    assert (role.to_dict(), role.version) == before and seen == []
