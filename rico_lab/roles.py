"""Roles: what an agent is told, how it sounds, what it opens with and which tools it has.

A role is one YAML file, ``roles/<name>.yaml``, or a folder ``roles/<name>/role.yaml`` with
its data files (and Python tool modules) beside it. The format is ``role.schema.json``;
every error names the file, the line and the field at fault.
"""

from __future__ import annotations

import csv
import hashlib
import html
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import pandas as pd
import yaml
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from . import _bounded_template, _bounded_yaml
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
    #: the audio path overriding the lab's (``input_frame_ms``, ``send_chunk_ms``,
    #: ``output_lead_ms``), read as a conversation starts
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
        what = "YAML refused" if isinstance(exc, _bounded_yaml.RefusedError) else "not valid YAML"
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


def _render(template: str, data: dict[str, Any], source: _Source) -> str:
    """Render instructions in a bounded sandbox, with StrictUndefined (a typo is an error)."""
    where = source.at(["instructions"])
    try:
        # a mapping, not keywords: data may have keys that are no names (1, "data", None)
        return _bounded_template.render(template, {"data": data, **data})
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
