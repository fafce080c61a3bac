"""Roles: what an agent is told, how it sounds, what it opens with and which tools it has.

A role is one YAML file, ``roles/<name>.yaml``, or a folder ``roles/<name>/role.yaml`` with
its data files (and Python tool modules) beside it. The format is ``role.schema.json``;
every error names the file, the line and the field at fault.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import importlib
import importlib.util
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from operator import index
from pathlib import Path
from string import Formatter
from types import ModuleType
from typing import Any

import jinja2
import pandas as pd
import yaml
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter, SecurityError
from jinja2.utils import generate_lorem_ipsum
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from . import _bounded_yaml
from ._jsonschema import jsonschema
from .client_methods import CLIENT_METHODS
from .errors import RoleError

SCHEMA_PATH = Path(__file__).with_name("role.schema.json")
DEFAULT_VOICE = "marin"
DEFAULT_GREETING = "Hello! How can I help?"
DEFAULT_RECAP = "Summarise this conversation in three short bullet points."


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    # the client's methods are listed once, in client_methods.py; the schema names them
    schema["properties"]["tools"]["items"]["properties"]["ui"]["enum"] = list(CLIENT_METHODS)
    return jsonschema.Draft202012Validator(schema)


@dataclass(frozen=True)
class Tool:
    """A function the model may call.

    It runs a Python function (``python``), a voice-client method (``ui``), both (the
    client shows what the function returned), or neither: then a notebook handler
    registered with :meth:`rico_lab.Lab.on_tool` answers it.
    """

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    ui: str | None = None
    python: str | None = None
    timeout_s: float = 10.0
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


_EDITABLE = (
    "description",
    "model",
    "instructions",
    "data",
    "greeting",
    "recap",
    "record_audio",
    "audio_path",
    "tools",
)


@dataclass(eq=False)
class Role:
    """One agent role, validated; ``version`` is a short hash of everything that defines it.

    Edit it with :meth:`update` (``role.update(instructions=..., greeting=...)``) or by
    assigning one field (``role.instructions = "..."``, an update of that field). The
    listeners :meth:`on_change` adds belong to this object alone: a copy
    (``dataclasses.replace``, ``copy.copy``, ``copy.deepcopy``) starts with none, so editing
    it never reaches the original's live conversations.
    """

    name: str
    instructions: str
    description: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    data_file: str | None = None
    greeting: str = DEFAULT_GREETING
    recap: str = DEFAULT_RECAP
    #: False keeps this role's conversations off the recording, whatever the lab does
    #: (read as a conversation starts)
    record_audio: bool = True
    #: frame sizes overriding the lab's (``input_frame_ms``, ``send_chunk_ms``), read as a
    #: conversation starts
    audio_path: dict[str, int] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()
    path: Path | None = None
    version: str = ""

    def __post_init__(self) -> None:
        # not a field: replace() would pass the original's list to the copy; set last, so
        # __setattr__ knows construction is over
        self._listeners: list[Callable[[Role], None]] = []

    def __getstate__(self) -> dict[str, Any]:
        """The fields without the listeners: what copy, deepcopy and pickle carry."""
        return {k: v for k, v in self.__dict__.items() if k != "_listeners"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._listeners = []

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _EDITABLE and "_listeners" in self.__dict__:
            self.update(**{key: value})
        else:
            object.__setattr__(self, key, value)  # construction, or a field edits don't touch

    def update(self, **changes: Any) -> None:
        """Edit several fields at once, e.g. ``role.update(instructions=..., greeting=...)``.

        The edited role is validated as a whole, exactly as a file is validated, so fields
        that only make sense together can change together; a valid edit gets a new
        ``version`` and is pushed once to every live conversation using this role, which
        picks it up on its next turn.

        Raises:
            RoleError: a field that cannot be edited (the message lists those that can), or
                an edit that makes the role invalid (the message names the field); either
                way the role is left as it was.
        """
        for key in changes:
            if key not in _EDITABLE:
                raise RoleError(
                    f"role {self.name!r}: cannot edit field {key!r}; "
                    f"editable fields: {', '.join(_EDITABLE)}"
                )
        raw = self.to_dict()
        for key, value in changes.items():
            # Tool objects become their file form; anything else is left to the schema
            tools = key == "tools" and isinstance(value, list | tuple)
            raw[key] = (
                [_tool_dict(t) if isinstance(t, Tool) else t for t in value] if tools else value
            )
        fields = _build(raw, _Source(self.path or Path(f"{self.name}.yaml")))
        for name, new in fields.items():
            object.__setattr__(self, name, new)
        for listener in list(self._listeners):
            listener(self)

    def on_change(self, listener: Callable[[Role], None]) -> Callable[[], None]:
        """Call ``listener(role)`` after every valid edit; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def voice(self) -> str:
        """The realtime voice (``model.voice``)."""
        return str(self.model.get("voice", DEFAULT_VOICE))

    def to_dict(self) -> dict[str, Any]:
        """The role as its YAML file holds it, keys in the file's order."""
        raw: dict[str, Any] = {"name": self.name}
        if self.description:
            raw["description"] = self.description
        if self.model:
            raw["model"] = self.model
        raw["instructions"] = self.instructions
        if self.data_file or self.data:
            raw["data"] = self.data_file or self.data
        raw["greeting"] = self.greeting
        raw["recap"] = self.recap
        if not self.record_audio:
            raw["record_audio"] = False
        if self.audio_path:
            raw["audio_path"] = self.audio_path
        if self.tools:
            raw["tools"] = [_tool_dict(t) for t in self.tools]
        return raw

    def realtime_options(self) -> dict[str, Any]:
        """Keyword arguments for ``RealtimeModel`` from the role's ``model`` settings."""
        options: dict[str, Any] = {"voice": self.voice}
        for key in ("model", "modalities"):
            if key in self.model:
                options[key] = self.model[key]
        if "turn_detection" in self.model:
            detection = self.model["turn_detection"]
            kinds = {"server_vad": ServerVad, "semantic_vad": SemanticVad}
            options["turn_detection"] = detection and kinds[detection["type"]](**detection)
        return options

    def render(self) -> str:
        """The instructions with the role's data filled in: the prompt the model gets."""
        return _render(self.instructions, self.data, _Source(self.path or Path(self.name)))

    def _repr_html_(self) -> str:
        """How a role shows in a notebook: its settings, prompt and tools at a glance."""
        rows = [
            ("version", self.version),
            ("description", self.description),
            ("voice", self.voice),
            ("greeting", self.greeting),
            ("tools", ", ".join(t.name for t in self.tools) or "none"),
            ("file", str(self.path or "")),
        ]
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        prompt = html.escape(self.render())
        return (
            f"<div><b>role {html.escape(self.name)}</b><table>{cells}</table>"
            f"<pre style='white-space:pre-wrap'>{prompt}</pre></div>"
        )

    def save(self, path: str | Path | None = None) -> Path:
        """Write the role as YAML (multi-line text as readable ``|`` blocks); returns the file."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise RoleError(f"role {self.name!r} has no file yet: pass save(path)")
        target.write_text(yaml.dump(self.to_dict(), Dumper=_BlockDumper, sort_keys=False))
        return target


def _tool_dict(tool: Tool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.name, "description": tool.description}
    if tool.parameters != _default_parameters(tool.ui, tool.python):
        spec["parameters"] = tool.parameters
    for key in ("ui", "python"):
        if getattr(tool, key):
            spec[key] = getattr(tool, key)
    if tool.timeout_s != 10.0:
        spec["timeout_s"] = tool.timeout_s
    return spec


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, so a saved prompt reads like the original."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if "\n" not in text:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text)
    block = text if text.endswith("\n") else text + "\n"  # `|`, not `|-`: loading strips it
    return dumper.represent_scalar("tag:yaml.org,2002:str", block, style="|")


_BlockDumper.add_representer(str, _represent_str)


def default_roles_dir() -> Path:
    """``RICO_LAB_ROLES`` if set, else ``./roles`` if it exists, else the repository's roles."""
    env = os.environ.get("RICO_LAB_ROLES")
    if env:
        return Path(env)
    here = Path.cwd() / "roles"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "roles"


def role_file(name: str, roles_dir: Path | None = None) -> Path:
    """The file of role ``name``: ``<dir>/<name>.yaml`` or ``<dir>/<name>/role.yaml``.

    Raises:
        RoleError: no such role; the message lists the known ones.
    """
    folder = Path(roles_dir) if roles_dir is not None else default_roles_dir()
    for path in (folder / f"{name}.yaml", folder / name / "role.yaml"):
        if path.is_file():
            return path
    known = _role_names(folder)
    raise RoleError(
        f"unknown role {name!r}: no file {folder / name}.yaml or {folder / name}/role.yaml "
        f"(roles in {folder}: {', '.join(known) or 'none'})"
    )


def _role_names(folder: Path) -> list[str]:
    files = {p.stem for p in folder.glob("*.yaml")}
    return sorted(files | {p.parent.name for p in folder.glob("*/role.yaml")})


def roles(roles_dir: Path | None = None) -> pd.DataFrame:
    """Every role in ``roles_dir``: name, description, voice, tools, file and version.

    A role that does not load is listed with its error, so one broken file does not hide
    the others.
    """
    folder = Path(roles_dir) if roles_dir is not None else default_roles_dir()
    rows = []
    for name in _role_names(folder):
        try:
            role = load_role(name, folder)
        except RoleError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append(
            {
                "name": role.name,
                "description": role.description,
                "voice": role.voice,
                "tools": [t.name for t in role.tools],
                "file": str(role.path),
                "version": role.version,
                "error": "",
            }
        )
    columns = ["name", "description", "voice", "tools", "file", "version", "error"]
    return pd.DataFrame(rows, columns=columns)


def load_role(name: str | Path, roles_dir: Path | None = None) -> Role:
    """Load, validate and hash a role, by its name or by its file's path.

    A name is looked up in ``roles_dir`` (see :func:`role_file`); a path (a ``Path``, or a
    string ending in ``.yaml`` or holding a ``/``) is read wherever it is, a folder role's
    ``role.yaml`` included.

    Raises:
        RoleError: the file is missing or invalid; the message names file, line and field.
    """
    if isinstance(name, Path) or name.endswith((".yaml", ".yml")) or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise RoleError(f"no role file {path}")
    else:
        path = role_file(name, roles_dir)
    expected = path.parent.name if path.name == "role.yaml" else path.stem
    return parse_role(_read_text(path, path), path, expected_name=expected)


def _read_text(file: Path, where: Path | str) -> str:
    """A file's text; bytes that are not UTF-8 are an error at their line, not a traceback."""
    content = file.read_bytes()
    try:
        return content.decode()
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise RoleError(
            f"{where}:{line}: not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None


def parse_role(text: str, path: Path, expected_name: str | None = None) -> Role:
    """Build a :class:`Role` from YAML ``text`` that lives (or will live) at ``path``."""
    try:
        root = _bounded_yaml.compose(text)
        raw: Any = _bounded_yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # a character YAML refuses outright (a ReaderError) has a position, not a mark
        line = mark.line + 1 if mark else text[: getattr(exc, "position", 0)].count("\n") + 1
        what = "YAML refused" if isinstance(exc, _bounded_yaml.AliasBombError) else "not valid YAML"
        raise RoleError(f"{path}:{line}: {what}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise RoleError(f"{path}:1: a role is a mapping of fields, got {type(raw).__name__}")
    source = _Source(path, root)
    name = raw.get("name", expected_name or path.stem)
    if expected_name and name != expected_name:
        raise RoleError(
            f"{source.at(['name'])}: field 'name' is {name!r} but the file says the role is "
            f"{expected_name!r}"
        )
    return Role(**_build(raw, source), name=name, path=path)


def _build(raw: dict[str, Any], source: _Source) -> dict[str, Any]:
    """Validate a role's fields (from a file or an edit); returns Role's keyword arguments."""
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise RoleError(_describe(errors[0], source))
    data = _load_data(raw.get("data"), source)
    instructions = raw["instructions"].strip()
    _render(instructions, data, source)  # fail now, not in the middle of a conversation
    fields: dict[str, Any] = {
        "instructions": instructions,
        "description": raw.get("description", "").strip(),
        "model": dict(raw.get("model", {})),
        "data": data,
        "data_file": raw["data"] if isinstance(raw.get("data"), str) else None,
        "greeting": raw.get("greeting", DEFAULT_GREETING).strip(),
        "recap": raw.get("recap", DEFAULT_RECAP).strip(),
        "record_audio": raw.get("record_audio", True),
        "audio_path": dict(raw.get("audio_path", {})),
        "tools": tuple(_tool(spec, i, source) for i, spec in enumerate(raw.get("tools", []))),
    }
    # the version hashes what the role means, not how its file happens to be written
    meaning = _canonical({**fields, "tools": [_tool_dict(t) for t in fields["tools"]]})
    digest = hashlib.sha256(json.dumps(meaning, sort_keys=True, default=str).encode())
    return {**fields, "version": digest.hexdigest()[:8]}


def _canonical(value: Any) -> Any:
    """``value`` with string keys only, so that JSON can sort it for the version's hash.

    Data from YAML or a CSV may have keys of any type (``1``, a date, the ``None`` of a row's
    extra cells); each is kept apart from the string it reads as.
    """
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else f"{type(k).__name__}:{k!r}": _canonical(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


@dataclass(frozen=True)
class _Source:
    """Where a role's fields came from, so an error can point at them.

    ``root`` is the YAML node tree of a file; an edit made in Python has none, and its
    errors name the field of the edit instead of a line.
    """

    path: Path
    root: yaml.Node | None = None

    def at(self, keys: list[str | int]) -> str:
        if self.root is None:
            return f"{self.path} (edited in Python)"
        return f"{self.path}:{_line_of(self.root, keys)}"


def _line_of(root: yaml.Node | None, keys: list[str | int]) -> int:
    """1-based line of the node at ``keys`` (the deepest one that exists)."""
    node, line = root, 1
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            line = match[0][0].start_mark.line + 1
            node = match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _template_start(source: _Source) -> int | None:
    """File line of the instructions' first template line (block scalars start one below)."""
    if not isinstance(source.root, yaml.MappingNode):
        return None
    value = next((v for k, v in source.root.value if k.value == "instructions"), None)
    if value is None:
        return None  # given through a merge key (<<): no line of its own to count from
    line = _line_of(source.root, ["instructions"])
    return line + 1 if getattr(value, "style", None) in ("|", ">") else line


def _describe(error: jsonschema.ValidationError, source: _Source) -> str:
    keys = list(error.absolute_path)
    where = ".".join(map(str, keys)) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        keys.append(extra[0])
        field_name = ".".join(map(str, keys))
        return (
            f"{source.at(keys)}: unknown field {field_name!r}; "
            f"expected one of: {', '.join(allowed)}"
        )
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        field_name = ".".join(map(str, [*keys, missing]))
        return f"{source.at(keys)}: field {field_name!r}: {error.message}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        detail = "; or ".join(sorted({e.message for e in error.context}))
        return f"{source.at(keys)}: field {where!r} fits none of its forms: {detail}"
    return f"{source.at(keys)}: field {where!r}: {error.message}"


def _load_data(spec: Any, source: _Source) -> dict[str, Any]:
    """Inline data as is; a file beside the role by its format (a CSV becomes its rows)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return spec
    file = source.path.parent / spec
    where = source.at(["data"])
    if not file.is_file():
        raise RoleError(f"{where}: field 'data': data file {file} does not exist")
    try:
        if file.suffix == ".csv":
            with file.open(newline="") as f:
                return {file.stem: list(csv.DictReader(f))}
        loaded = (
            json.loads(file.read_text())
            if file.suffix == ".json"
            else _bounded_yaml.safe_load(file.read_text())
        )
    except (ValueError, yaml.YAMLError, csv.Error) as exc:
        raise RoleError(f"{where}: field 'data': cannot read {file}: {exc}") from None
    if not isinstance(loaded, dict):
        raise RoleError(f"{where}: field 'data': {file} must hold a mapping")
    return loaded


def _default_parameters(ui: str | None, python: str | None) -> dict[str, Any]:
    """A tool that only calls a client method takes that method's arguments by default."""
    if ui and not python:
        return CLIENT_METHODS[ui]
    return {"type": "object", "properties": {}}


def _tool(spec: dict[str, Any], index: int, source: _Source) -> Tool:
    parameters = spec.get("parameters", _default_parameters(spec.get("ui"), spec.get("python")))
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        raise RoleError(
            f"{source.at(['tools', index, 'parameters'])}: field 'tools.{index}.parameters' "
            f"of tool {spec['name']!r} is not "
            f"a valid JSON Schema: {exc.message}"
        ) from None
    if parameters.get("type") != "object":
        raise RoleError(
            f"{source.at(['tools', index, 'parameters'])}: field 'tools.{index}.parameters' "
            f"of tool {spec['name']!r} must "
            "have type: object (the arguments of a call are named)"
        )
    function = None
    if spec.get("python"):
        where = source.at(["tools", index, "python"])
        function = _import_handler(spec["python"], source.path.parent, where, index)
    return Tool(
        name=spec["name"],
        description=spec["description"].strip(),
        parameters=parameters,
        ui=spec.get("ui"),
        python=spec.get("python"),
        timeout_s=float(spec.get("timeout_s", 10.0)),
        function=function,
    )


def _import_handler(target: str, folder: Path, where: str, index: int) -> Callable[..., Any]:
    """``module:function``: a module file beside the role first, else one on sys.path."""
    module_name, _, attribute = target.partition(":")
    file = folder.joinpath(*module_name.split(".")).with_suffix(".py")
    try:
        module = _role_module(file) if file.is_file() else importlib.import_module(module_name)
    except Exception as exc:
        raise RoleError(
            f"{where}: field 'tools.{index}.python': cannot import {module_name!r} "
            f"(looked in {folder} and sys.path): {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise RoleError(
            f"{where}: field 'tools.{index}.python': {module_name!r} has no function {attribute!r}"
        )
    return function


_role_modules: dict[Path, tuple[float, ModuleType]] = {}


def _role_module(file: Path) -> ModuleType:
    """The module in ``file``, run again only when the file has changed.

    Each role's modules get a name of their own (two roles may both have a ``tools.py``),
    an edited file is picked up the next time its role loads, and an unchanged one keeps
    its state (a food order in progress) across edits of the role's other fields.
    """
    file = file.resolve()
    mtime = file.stat().st_mtime
    cached = _role_modules.get(file)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:8]
    name = f"rico_lab._role_modules.{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look modules up by name
    sys.path.insert(0, str(file.parent))  # so it can import its neighbours
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(str(file.parent))
    _role_modules[file] = (mtime, module)
    return module


#: Budgets of one rendering of a role's instructions, so that no template renders forever or
#: fills the memory (nested loops, a macro calling itself twice, ``'x' * 10**10``,
#: ``10 ** (10 ** 10)``, a text doubled in a loop, ``'x'.center(10**10)``): each is refused
#: within a fraction of a second. A real role's prompt is a few thousand characters, made in
#: tens of loop iterations and calls, and a realtime model's context holds some 100,000
#: characters: the budgets are far beyond both.
#: ...characters of the prompt, and characters or items of any one text or list made on the way
MAX_RENDERED_CHARS = 1_000_000
#: ...loop iterations, all loops together (a million take under 0.1 s)
MAX_LOOP_ITERATIONS = 1_000_000
#: ...calls of macros, functions and methods (each costs tens of iterations: 50,000 take 0.1-0.4 s)
MAX_TEMPLATE_CALLS = 50_000
#: ...bits of a number made by ``*`` or ``**`` (about 30,000 digits)
MAX_NUMBER_BITS = 100_000


def _text_len(values: Collection[Any]) -> int:
    """How long ``values`` are as text, each object's ``str()`` made once.

    A list holding one long text a thousand times is measured in one ``str()``, not a thousand.
    """
    lengths: dict[int, int] = {}
    total = 0
    for value in values:
        if isinstance(value, str):
            total += len(value)
            continue
        if id(value) not in lengths:
            lengths[id(value)] = len(str(value))
        total += lengths[id(value)]
    return total


def _replace_size(text: Any, old: Any, new: Any, count: int | None = -1) -> int:
    """How long ``text.replace(old, new, count)`` would be: ``new`` once per match of ``old``.

    An empty ``old`` matches around every character.
    """
    matches = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        matches = min(matches, count)
    return len(text) + matches * len(new)


#: what follows ``%`` and its ``(key)`` in a %-format: flags, width, precision, type
_PERCENT_SPEC = re.compile(r"[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.?)", re.DOTALL)


def _percent_size(text: str, args: Any) -> int:
    """About how long ``text % args`` would be, before Python makes it.

    Each value shown, padded to the widths and precisions the format names
    (``'%010000000000d'``) or takes from ``args`` (``'%0*d'``). The format is read as Python
    reads it, a ``(key)`` with nested parentheses too.
    """
    values = iter(args if isinstance(args, tuple) else (args,))
    size, at = len(text), text.find("%")
    while at >= 0:
        at, key = at + 1, None
        if text.startswith("(", at):
            depth, start = 1, at + 1
            while depth:  # IndexError if unclosed, as Python refuses it too
                at += 1
                depth += {"(": 1, ")": -1}.get(text[at], 0)
            key, at = text[start:at], at + 1
        spec = _PERCENT_SPEC.match(text, at)
        assert spec is not None  # every part of it is optional
        for number in spec.group(1, 2):
            size += abs(next(values, 0)) if number == "*" else int(number or 0)
        if spec.group(3) != "%":
            size += _text_len([args[key] if key is not None else next(values, "")])
        at = text.find("%", spec.end())
    return size


def _format_size(formatter: SandboxedFormatter, text: str, args: Any, kwargs: Any) -> int:
    """About how long ``text.format(*args, **kwargs)`` would be, before Python makes it.

    Each field's value shown, padded to the widths its spec names or takes from other fields
    (``'{:>{}}'.format('x', 10**10)``). ``formatter`` is the sandbox's, which finds a field's
    value as the formatting will.
    """
    auto = itertools.count()

    def value(field: str) -> Any:
        if not field or field[0] in ".[":
            field = f"{next(auto)}{field}"
        return formatter.get_field(field, args, kwargs)[0]

    size = 0
    for literal, name, spec, _ in Formatter().parse(text):
        size += len(literal)
        if name is not None:
            shown = _text_len([value(name)])
            inner = [str(value(f)) for _, f, _, _ in Formatter().parse(spec or "") if f is not None]
            spec = "".join([spec or "", *inner])
            size += shown + len(spec) + sum(int(digits) for digits in re.findall(r"\d+", spec))
    return size


def _pad(width: Any) -> int:
    """The characters of an indent given as a number of spaces or as the text itself."""
    return len(width) if isinstance(width, str) else int(width or 0)


def _lines(text: Any) -> int:
    """The lines of ``text`` shown as a string."""
    return str(text).count("\n") + 1


#: What a filter that can make far more than it is given would make, from its arguments (those
#: of Jinja's filter, after the context Jinja passes some): a width or count, a text put in
#: at every match, line, word or item. Any other filter makes at most a few times what it is
#: given, and its result is checked.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "batch": lambda value, linecount, fill_with=None: 0 if fill_with is None else linecount,
    "center": lambda value, width=80: width,
    "format": lambda value, *args, **kwargs: _percent_size(str(value), kwargs or args),
    "indent": lambda s, width=4, first=False, blank=False: len(str(s)) + _lines(s) * _pad(width),
    "join": lambda value, d="", attribute=None: _text_len(value) + len(value) * len(str(d)),
    "replace": lambda s, old, new, count=None: _replace_size(str(s), str(old), str(new), count),
    "slice": lambda value, slices, fill_with=None: slices,
    "tojson": lambda value, indent=None: _text_len([value]) * (1 + _pad(indent)),
    "urlize": lambda value, trim_url_limit=None, nofollow=False, target=None, rel=None, **_: (
        3 * len(str(value)) + len(str(value).split()) * len(f"{target or ''}{rel or ''}")
    ),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, **_: (
        len(str(s))
        + (2 * len(str(s)) // max(int(width), 1) + _lines(s)) * len(str(wrapstring or "\n"))
    ),
}
#: ...and a method of a text: the others take widths, lengths and counts only, which
#: :meth:`_BoundedEnvironment.call` holds to MAX_RENDERED_CHARS
_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "expandtabs": lambda text, tabsize=8: (
        len(text) + text.count("\t" if isinstance(text, str) else b"\t") * index(tabsize)
    ),
    "join": lambda sep, iterable: _text_len(iterable) + len(iterable) * len(sep),
    "replace": _replace_size,
    "translate": lambda text, table: (
        len(text)
        * max(
            (_text_len([v]) for v in (table.values() if isinstance(table, dict) else table)),
            default=1,
        )
    ),
}


def _estimated(size_of: Callable[..., int], *args: Any, **kwargs: Any) -> int:
    """``size_of(*args, **kwargs)``, or 0 if they are arguments the operation itself refuses.

    Of a wrong number or type, say: the operation's own error then says what is wrong.
    """
    try:
        return index(size_of(*args, **kwargs))
    except (TypeError, ValueError, LookupError):
        return 0


def _lists(args: Iterable[Any]) -> tuple[Any, ...]:
    """``args`` with each iterator read into a list, so that it can be measured and still used."""
    return tuple(list(arg) if isinstance(arg, Iterator) else arg for arg in args)


class _Gathered(list[str]):
    """The output a macro or a ``{% set %}``, ``{% filter %}`` or ``{% call %}`` block gathers.

    It is refused past MAX_RENDERED_CHARS: Jinja gathers it in a list, joined at the end, so
    a loop printing a long text a million times in a block kept a million copies of it, or
    references that the join made into one huge text.
    """

    def __init__(self) -> None:
        super().__init__()
        self.length = 0

    def append(self, piece: str) -> None:
        self.length += len(piece)
        if self.length > MAX_RENDERED_CHARS:
            raise SecurityError(
                f"the output of a macro or block runs past {MAX_RENDERED_CHARS:,} characters"
            )
        super().append(piece)

    def extend(self, pieces: Iterable[str]) -> None:
        for piece in pieces:
            self.append(piece)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` measured before it joins, and output gathered bounded.

    ``a ~ b`` compiles to a join that no hook of the sandbox sees, so a loop doubling a text
    with it (``{% set ns.s = ns.s ~ ns.s %}``) grew it until the memory ran out; so did the
    output a block gathers (:class:`_Gathered`).
    """

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()  # as Jinja's, but not a plain list
        self.writeline(f"{frame.buffer} = environment.gathered()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # the join Jinja's own visit_Concat picks, given the pieces through environment.measured
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"{join}(environment.measured((")
        for piece in node.nodes:
            self.visit(piece, frame)
            self.write(", ")
        self.write(")))")


class _BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the budgets above, for one rendering (it counts as it goes).

    The sandbox already refuses unsafe attributes and a ``range`` of over 100,000 items, and
    calls :meth:`call` and :meth:`call_binop` for the template's calls and operators; these
    count the calls and refuse an operation whose result would be too large before Python
    computes it. Loops are counted as :meth:`compile_counted` makes them. Filters, ``~`` and
    the output a macro or block gathers (:class:`_BoundedCodeGenerator`) are measured too:
    any one text or list is at most MAX_RENDERED_CHARS long, so that no loop can double one
    until the memory runs out, and no width or count (``'x'.center(10**10)``) can ask for more.
    """

    code_generator_class = _BoundedCodeGenerator
    gathered = _Gathered
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False)
        self.iterations = 0
        self.calls = 0
        # one object, so that call() knows the loops' wrapper by identity
        self.loop_budget = self._count_iterations
        self.filters = {name: self._bounded(name, run) for name, run in self.filters.items()}
        self.globals["lipsum"] = self._lipsum

    def _count_iterations(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_LOOP_ITERATIONS:
                raise SecurityError(f"over {MAX_LOOP_ITERATIONS:,} loop iterations")
            yield item

    def compile_counted(self, template: str) -> jinja2.Template:
        """``from_string``, with every ``for`` loop iterating through :attr:`loop_budget`."""
        tree = self.parse(template)
        for loop in tree.find_all(nodes.For):
            budget = nodes.EnvironmentAttribute("loop_budget", lineno=loop.lineno)
            loop.iter = nodes.Call(budget, [loop.iter], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return self.from_string(tree)

    @staticmethod
    def _check(size: int, what: str) -> None:
        """Refuse to make ``what`` of ``size`` characters or items, if over the budget."""
        if size > MAX_RENDERED_CHARS:
            raise SecurityError(f"{what} would make over {MAX_RENDERED_CHARS:,} items")

    def _checked(self, result: Any, what: str) -> Any:
        """``result``, if a text or container within the budget.

        So what grows a few times in each call (``|escape``, ``|tojson``, ``.upper()``) cannot
        grow past it in a loop.
        """
        if isinstance(result, (str, bytes, list, tuple, dict)):
            self._check(len(result), what)
        return result

    def measured(self, pieces: tuple[Any, ...]) -> tuple[Any, ...]:
        """The pieces of ``a ~ b ~ ...``, if joined they are within the budget."""
        self._check(_text_len(pieces), "'~'")
        return pieces

    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        """Join the output of a macro or a block: Jinja's ``concat``, within the budget."""
        if not isinstance(pieces, _Gathered):  # a block's output, read as it comes
            pieces, gathered = _Gathered(), pieces
            pieces.extend(gathered)
        return "".join(pieces)

    def _bounded(self, name: str, run: Callable[..., Any]) -> Callable[..., Any]:
        """The filter ``run``, what it makes checked before (:data:`_FILTER_SIZES`) and after."""
        size_of = _FILTER_SIZES.get(name)
        # Jinja passes some filters a context, eval context or environment first
        skip = 1 if hasattr(run, "jinja_pass_arg") else 0

        @functools.wraps(run)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            if size_of is not None:
                args = _lists(args)
                self._check(_estimated(size_of, *args[skip:], **kwargs), f"filter '{name}'")
            return self._checked(run(*args, **kwargs), f"filter '{name}'")

        return bounded

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        """Jinja's ``lipsum``: ``n`` paragraphs of up to ``max`` words of up to 15 characters."""
        words = n * max if isinstance(n, int) and isinstance(max, int) else 0
        self._check(words * 15, "lipsum()")
        return generate_lorem_ipsum(n, html, min, max)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        what = f"{getattr(obj, '__name__', 'the call')}()"
        if obj is not self.loop_budget:
            self.calls += 1
            if self.calls > MAX_TEMPLATE_CALLS:
                raise SecurityError(f"over {MAX_TEMPLATE_CALLS:,} calls")
            args = self._check_call(obj, what, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(getattr(obj, "__self__", None), (list, dict, set)):
            self._check(len(obj.__self__), what)  # l.extend(l), in a loop, doubles l
        return self._checked(result, what)

    def _check_call(
        self, obj: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Refuse a call of a text's or number's method that would make too much; ``args``.

        A method's number is a width, a length, a count or a place in a text, so none may be
        over the longest text allowed (``'x'.center(10**10)``, ``(1).to_bytes(10**10)``); a
        few methods put a text in many times (:data:`_METHOD_SIZES`), and ``format`` pads to
        widths it reads in its text. ``format``, wrapped by the sandbox, takes any number.
        """
        receiver = getattr(obj, "__self__", None)
        text = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
        if isinstance(receiver, (str, bytes, int)):
            args = _lists(args)
            numbers = [arg for arg in (*args, *kwargs.values()) if isinstance(arg, int)]
            self._check(max(numbers, default=0), what)
            if (size_of := _METHOD_SIZES.get(what[:-2])) is not None:
                self._check(_estimated(size_of, receiver, *args, **kwargs), what)
        elif isinstance(text, str) and what in ("format()", "format_map()"):
            positional, named = (args, kwargs) if what == "format()" else ((), (*args, {})[0])
            size = _estimated(_format_size, SandboxedFormatter(self), text, positional, named)
            self._check(size, what)
        return args

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        sequences = (str, bytes, list, tuple)
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            self._check(len(left) + len(right), "'+'")
        elif operator == "*" and ints:
            if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
                raise SecurityError(f"'*' would make a number of over {MAX_NUMBER_BITS:,} bits")
        elif operator == "*" and isinstance(left, (*sequences, int)) and isinstance(right, int):
            times, sequence = (left, right) if isinstance(left, int) else (right, left)
            self._check(len(sequence) * times, "'*'")
        elif operator == "**" and ints and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_NUMBER_BITS:
                raise SecurityError(f"'**' would make a number of over {MAX_NUMBER_BITS:,} bits")
        elif operator == "%" and isinstance(left, (str, bytes)):
            text = left if isinstance(left, str) else left.decode("latin-1")
            self._check(_estimated(_percent_size, text, right), "'%'")
        return super().call_binop(context, operator, left, right)


def _render(template: str, data: dict[str, Any], source: _Source) -> str:
    """Render instructions in a bounded sandbox, with StrictUndefined (a typo is an error)."""
    where = source.at(["instructions"])
    try:
        env = _BoundedEnvironment()
        pieces: list[str] = []
        length = 0
        # a mapping, not keywords: data may have keys that are no names (1, "data", None)
        for piece in env.compile_counted(template).generate({"data": data, **data}):
            length += len(piece)
            if length > MAX_RENDERED_CHARS:
                raise SecurityError(f"the prompt runs past {MAX_RENDERED_CHARS:,} characters")
            pieces.append(piece)
        return "".join(pieces).strip()
    except jinja2.TemplateSyntaxError as exc:
        first = _template_start(source)
        at = f"{source.path}:{first + exc.lineno - 1}" if first else where
        raise RoleError(f"{at}: field 'instructions': template error: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise RoleError(f"{where}: field 'instructions': template error: {exc}") from None
    except Exception as exc:  # the template's own Python ({{ 1 / 0 }}, {% include %})
        raise RoleError(
            f"{where}: field 'instructions': template error: {type(exc).__name__}: {exc}"
        ) from None
