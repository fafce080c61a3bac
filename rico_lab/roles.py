"""Roles: what an agent is told, how it sounds, what it opens with and which tools it has.

A role is one YAML file, ``roles/<name>.yaml``, or a folder ``roles/<name>/role.yaml`` with
its data files (and Python tool modules) beside it. The format is ``role.schema.json``;
every error names the file, the line and the field at fault.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import yaml
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from .errors import RoleError

SCHEMA_PATH = Path(__file__).with_name("role.schema.json")
DEFAULT_VOICE = "marin"
DEFAULT_GREETING = "Hello! How can I help?"
DEFAULT_RECAP = "Summarise this conversation in three short bullet points."


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


@dataclass(frozen=True)
class Tool:
    """A function the model may call: a voice-client RPC method, a Python function, or both."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    ui: str | None = None
    python: str | None = None
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Role:
    """One agent role, validated; ``version`` is a short hash of everything that defines it.

    The version lets every conversation say which edit of a role it ran with.
    """

    name: str
    instructions: str
    description: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    greeting: str = DEFAULT_GREETING
    recap: str = DEFAULT_RECAP
    tools: tuple[Tool, ...] = ()
    path: Path | None = None
    version: str = ""

    @property
    def voice(self) -> str:
        """The realtime voice (``model.voice``)."""
        return str(self.model.get("voice", DEFAULT_VOICE))

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
        return _render(self.instructions, self.data, self.path, None)


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
    files = {p.stem for p in folder.glob("*.yaml")}
    known = sorted(files | {p.parent.name for p in folder.glob("*/role.yaml")})
    raise RoleError(
        f"unknown role {name!r}: no file {folder / name}.yaml or {folder / name}/role.yaml "
        f"(roles in {folder}: {', '.join(known) or 'none'})"
    )


def load_role(name: str, roles_dir: Path | None = None) -> Role:
    """Load, validate and hash role ``name`` (see :func:`role_file` for where it is looked up).

    Raises:
        RoleError: the file is missing or invalid; the message names file, line and field.
    """
    path = role_file(name, roles_dir)
    expected = path.parent.name if path.name == "role.yaml" else path.stem
    return parse_role(path.read_text(), path, expected_name=expected)


def parse_role(text: str, path: Path, expected_name: str | None = None) -> Role:
    """Build a :class:`Role` from YAML ``text`` that lives (or will live) at ``path``."""
    try:
        root = yaml.compose(text)
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RoleError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise RoleError(f"{path}:1: a role is a mapping of fields, got {type(raw).__name__}")
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise RoleError(_describe(errors[0], root, path))
    name = raw.get("name", expected_name or path.stem)
    if expected_name and name != expected_name:
        line = _line_of(root, ["name"])
        raise RoleError(
            f"{path}:{line}: field 'name' is {name!r} but the file says the role is "
            f"{expected_name!r}"
        )
    data = _load_data(raw.get("data"), path, root)
    tools = tuple(_tool(spec, i, path, root) for i, spec in enumerate(raw.get("tools", [])))
    instructions = raw["instructions"].strip()
    _render(instructions, data, path, _template_start(root))  # fail now, not mid-conversation
    version = hashlib.sha256(
        json.dumps([raw, data], sort_keys=True, default=str).encode()
    ).hexdigest()[:8]
    return Role(
        name=name,
        instructions=instructions,
        description=raw.get("description", "").strip(),
        model=dict(raw.get("model", {})),
        data=data,
        greeting=raw.get("greeting", DEFAULT_GREETING).strip(),
        recap=raw.get("recap", DEFAULT_RECAP).strip(),
        tools=tools,
        path=path,
        version=version,
    )


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


def _template_start(root: yaml.Node) -> int:
    """File line of the instructions' first template line (block scalars start one below)."""
    line = _line_of(root, ["instructions"])
    value = next(v for k, v in root.value if k.value == "instructions")
    return line + 1 if getattr(value, "style", None) in ("|", ">") else line


def _describe(error: jsonschema.ValidationError, root: yaml.Node, path: Path) -> str:
    keys = list(error.absolute_path)
    where = ".".join(map(str, keys)) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        keys.append(extra[0])
        field_name = ".".join(map(str, keys))
        return (
            f"{path}:{_line_of(root, keys)}: unknown field {field_name!r}; "
            f"expected one of: {', '.join(allowed)}"
        )
    if error.validator == "required":
        return f"{path}:{_line_of(root, keys)}: {where}: {error.message}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        detail = "; or ".join(sorted({e.message for e in error.context}))
        return f"{path}:{_line_of(root, keys)}: field {where!r} fits none of its forms: {detail}"
    return f"{path}:{_line_of(root, keys)}: field {where!r}: {error.message}"


def _load_data(spec: Any, path: Path, root: yaml.Node) -> dict[str, Any]:
    """Inline data as is; a file beside the role by its format (a CSV becomes its rows)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return spec
    file = path.parent / spec
    where = f"{path}:{_line_of(root, ['data'])}"
    if not file.is_file():
        raise RoleError(f"{where}: field 'data': data file {file} does not exist")
    try:
        if file.suffix == ".csv":
            with file.open(newline="") as f:
                return {file.stem: list(csv.DictReader(f))}
        loaded = (
            json.loads(file.read_text())
            if file.suffix == ".json"
            else yaml.safe_load(file.read_text())
        )
    except (ValueError, yaml.YAMLError, csv.Error) as exc:
        raise RoleError(f"{where}: field 'data': cannot read {file}: {exc}") from None
    if not isinstance(loaded, dict):
        raise RoleError(f"{where}: field 'data': {file} must hold a mapping")
    return loaded


def _tool(spec: dict[str, Any], index: int, path: Path, root: yaml.Node) -> Tool:
    parameters = spec.get("parameters", {"type": "object", "properties": {}})
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        line = _line_of(root, ["tools", index, "parameters"])
        raise RoleError(
            f"{path}:{line}: field 'tools.{index}.parameters' of tool {spec['name']!r} is not "
            f"a valid JSON Schema: {exc.message}"
        ) from None
    if parameters.get("type") != "object":
        line = _line_of(root, ["tools", index, "parameters"])
        raise RoleError(
            f"{path}:{line}: field 'tools.{index}.parameters' of tool {spec['name']!r} must "
            "have type: object (the arguments of a call are named)"
        )
    function = None
    if spec.get("python"):
        line = _line_of(root, ["tools", index, "python"])
        function = _import_handler(spec["python"], path.parent, f"{path}:{line}", index)
    return Tool(
        name=spec["name"],
        description=spec["description"].strip(),
        parameters=parameters,
        ui=spec.get("ui"),
        python=spec.get("python"),
        function=function,
    )


def _import_handler(target: str, folder: Path, where: str, index: int) -> Callable[..., Any]:
    """``module:function``, looked up beside the role first, then on sys.path."""
    module_name, _, attribute = target.partition(":")
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RoleError(
            f"{where}: field 'tools.{index}.python': cannot import {module_name!r} "
            f"(looked in {folder} and sys.path): {type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.path.remove(str(folder))
    function = getattr(module, attribute, None)
    if not callable(function):
        raise RoleError(
            f"{where}: field 'tools.{index}.python': {module_name!r} has no function {attribute!r}"
        )
    return function


def _render(template: str, data: dict[str, Any], path: Path | None, line: int | None) -> str:
    """Render instructions with StrictUndefined, so a typo'd variable is an error, not ''."""
    where = f"{path}:{line}" if line else str(path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return env.from_string(template).render(**data, data=data).strip()
    except jinja2.TemplateSyntaxError as exc:
        at = f"{path}:{line + exc.lineno - 1}" if line else where
        raise RoleError(f"{at}: field 'instructions': template error: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise RoleError(f"{where}: field 'instructions': template error: {exc}") from None
