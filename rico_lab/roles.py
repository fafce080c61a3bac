"""Roles: what an agent is told (instructions), how it sounds (voice), and how it opens."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import RoleError

_FIELDS = {"name": str, "instructions": str, "voice": str, "greeting": str}
_REQUIRED = ("instructions",)


@dataclass(frozen=True)
class Role:
    """One agent role, loaded from ``roles/<name>.yaml``.

    ``version`` is a short hash of the file's content, so every conversation can say which
    edit of a role it ran with.
    """

    name: str
    instructions: str
    voice: str = "marin"
    greeting: str = "Hello! How can I help?"
    path: Path | None = None
    version: str = ""


def default_roles_dir() -> Path:
    """``RICO_LAB_ROLES`` if set, else ``./roles`` if it exists, else the repository's roles."""
    env = os.environ.get("RICO_LAB_ROLES")
    if env:
        return Path(env)
    here = Path.cwd() / "roles"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "roles"


def load_role(name: str, roles_dir: Path | None = None) -> Role:
    """Load and validate ``<roles_dir>/<name>.yaml``.

    Raises:
        RoleError: unknown name (listing the known ones), bad YAML, or a bad field,
            always naming the file.
    """
    folder = Path(roles_dir) if roles_dir is not None else default_roles_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise RoleError(f"unknown role {name!r}: no file {path} (roles in {folder}: {known})")
    text = path.read_text()
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoleError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RoleError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise RoleError(
            f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}"
        )
    for key in _REQUIRED:
        if key not in data:
            raise RoleError(f"{path}: missing required field {key!r}")
    for key, kind in _FIELDS.items():
        if key in data and not (isinstance(data[key], kind) and data[key].strip()):
            raise RoleError(f"{path}: field {key!r} must be a non-empty {kind.__name__}")
    if data.get("name", name) != name:
        raise RoleError(f"{path}: field 'name' is {data['name']!r} but the file is named {name!r}")
    fields = {k: v.strip() for k, v in data.items() if k != "name"}
    version = hashlib.sha256(text.encode()).hexdigest()[:8]
    return Role(name=name, path=path, version=version, **fields)
