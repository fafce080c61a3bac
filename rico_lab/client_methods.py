"""The voice client's built-in UI methods: what a role tool may bind to with ``ui: <method>``.

The client (``widgets/src/ui_methods.ts``) registers each of these as a LiveKit RPC method;
the agent calls it with ``{"arguments": <the tool call's arguments>, "result": <the Python
function's return, when the tool has one>}`` and tells the model what it answers. Everything
about them is written once, in ``client_methods.json`` beside this file: the arguments'
schemas (a tool's default ``parameters``, so a role can bind a tool with no more than a name,
a description and ``ui:``), how each argument is checked and with which message, what each
method answers and what the user then sees. The voice client imports that file; this module
reads it for roles and for the headless client of rehearsals, which serves the methods
without a browser. ``docs/client_methods.md`` documents them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

_SPEC: dict[str, Any] = json.loads(Path(__file__).with_name("client_methods.json").read_text())
_MESSAGES: dict[str, str] = _SPEC["messages"]
_IMAGE_URI = re.compile(_SPEC["image_uri"], re.IGNORECASE)

#: Method name → JSON Schema of the arguments it takes.
CLIENT_METHODS: dict[str, dict[str, Any]] = {
    name: method["parameters"] for name, method in _SPEC["methods"].items()
}


class CallRefused(ValueError):
    """A call the client refuses: its message is what the model is told."""


@dataclass(frozen=True)
class Shown:
    """What the user saw of one call: the panel's title and its text, as on screen."""

    method: str
    title: str
    text: str


@dataclass(frozen=True)
class Call:
    """A call that passed the checks: what it shows, and what it answers (but ``ask``)."""

    method: str
    arguments: dict[str, Any]
    shown: Shown
    #: the answer, for every method but ``ask`` (whose answer is the user's)
    answer: str | None


def message(key: str, **values: object) -> str:
    """The client's message ``key``, with its placeholders filled in."""
    return fill(_MESSAGES[key], **values)


def fill(template: str, **values: object) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced; other braces stay as written."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m[1], m[0])), template)


def check_call(method: str, payload: str) -> Call:
    """Check one RPC payload of ``method`` as the voice client does.

    Raises:
        CallRefused: what the client would answer instead (the payload or an argument is
            wrong); nothing is shown then.
    """
    spec = _SPEC["methods"][method]
    arguments, result, has_result = _parse(payload)
    one_of = spec.get("exactly_one_of", [])
    values: dict[str, Any] = {}
    for name, kind in spec["arguments"].items():  # in the client's order: the first error
        given = arguments.get(name)
        if kind.endswith("_or_result") and given is None and has_result:
            given = result
        if name in one_of:
            if sum(_given(arguments.get(n)) for n in one_of) != 1:
                raise CallRefused(message("exactly_one_of"))
            if not _given(given):
                continue
        values[name] = _CHECKS[kind](given, name)
    return _call(method, values)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _parse(payload: str) -> tuple[dict[str, Any], Any, bool]:
    try:
        # as the page's JSON.parse reads it: no NaN or Infinity, and nesting of any depth
        # is refused, not a RecursionError
        call = json.loads(payload, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise CallRefused(message("payload_not_json")) from None
    if not isinstance(call, dict):
        raise CallRefused(message("payload_shape"))
    arguments = call.get("arguments")
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        raise CallRefused(message("arguments_shape"))
    return arguments, call.get("result"), "result" in call


def _given(value: Any) -> bool:
    """A model may send the other one of two as null or []: that is not giving it."""
    return value is not None and value != []


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise CallRefused(message("text", name=name))
    return value


def _optional_text(value: Any, name: str) -> str:
    return "" if value is None else _text(value, name)


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not value or any(not isinstance(v, str) for v in value):
        raise CallRefused(message("strings", name=name))
    return value


def _optional_strings(value: Any, name: str) -> list[str] | None:
    return None if value is None else _strings(value, name)


def _rows(value: Any, _name: str) -> list[Any]:
    if not isinstance(value, list):
        raise CallRefused(message("rows_list"))
    if any(not isinstance(row, dict | list) for row in value):
        raise CallRefused(message("rows_items"))
    return value


def _image(value: Any, name: str) -> str:
    image = re.sub(r"\s+", "", _text(value, name))
    if not _IMAGE_URI.match(image):
        raise CallRefused(message("image"))
    return image


def _fields(value: Any, _name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise CallRefused(message("fields"))
    seen: set[str] = set()
    fields = []
    for i, field in enumerate(value):
        if not isinstance(field, dict):
            raise CallRefused(message("field_object", i=i))
        name, kind = field.get("name"), field.get("type", "text")
        if not isinstance(name, str) or not name:
            raise CallRefused(message("field_name", i=i))
        if name in seen:
            raise CallRefused(message("field_twice", i=i, field=name))
        seen.add(name)
        if kind not in ("text", "number"):
            raise CallRefused(message("field_type", i=i))
        label = _optional_text(field.get("label"), f"fields[{i}].label") or name
        fields.append({"name": name, "label": label, "type": kind})
    return fields


_CHECKS = {
    "text": _text,
    "optional_text": _optional_text,
    "text_or_result": _text,
    "strings": _strings,
    "optional_strings": _optional_strings,
    "rows_or_result": _rows,
    "image": _image,
    "fields": _fields,
}


def _call(method: str, values: dict[str, Any]) -> Call:
    """What the checked call shows (text as the page reports it) and answers."""
    title = values.get("title", "")
    if method == "show_markdown":
        text = _markdown_text(values["markdown"])
    elif method == "show_table":
        columns = values["columns"] or list(
            dict.fromkeys(k for row in values["rows"] if isinstance(row, dict) for k in row)
        )
        lines = [" | ".join(columns)]
        for row in values["rows"]:
            cells = row if isinstance(row, list) else [row.get(c) for c in columns]
            lines.append(" | ".join(_cell_text(cell) for cell in cells))
        text = "\n".join(lines)
    elif method == "show_image":
        text = values["alt"]
    elif method == "ask":
        title = values["question"]
        labels = values.get("choices") or [field["label"] for field in values["fields"]]
        text = " | ".join(labels)
    elif method == "end_session":
        text = values["reason"]
    else:  # save_note
        text = values["text"]
    template = _SPEC["methods"][method]["answer"]
    answer = None if method == "ask" else fill(template, rows=len(values.get("rows", ())))
    shown = Shown(method, normalized(title), normalized(text))
    return Call(method, values, shown, answer)


def _cell_text(cell: Any) -> str:
    """A cell as the page shows it: nothing for null, JSON for objects and lists."""
    if cell is None:
        return ""
    if isinstance(cell, dict | list):
        return json.dumps(cell, separators=(",", ":"), ensure_ascii=False)
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # JSON has one kind of number: 2.0 reads as 2 in the page
    return str(cell)


def normalized(text: str) -> str:
    """Text as reported: its lines trimmed, empty ones dropped (what layout leaves)."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


class _TextOf(HTMLParser):
    """The text of rendered HTML, as the page's ``textContent`` has it once sanitized.

    What the page's sanitizer removes whole (scripts, styles, form controls) is no text.
    """

    _DROPPED = frozenset({"script", "style", "textarea", "select", "button"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._inside: list[str] = []

    def handle_starttag(self, tag: str, _attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._DROPPED:
            self._inside.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._inside and self._inside[-1] == tag:
            self._inside.pop()

    def handle_data(self, data: str) -> None:
        if not self._inside:
            self.parts.append(data)


def _markdown_text(source: str) -> str:
    """The text of Markdown rendered as the page renders it (CommonMark, as marked does)."""
    reader = _TextOf()
    reader.feed(MarkdownIt("commonmark").enable("table").render(source))
    return "".join(reader.parts)
