"""The ``%%role`` cell magic: a cell whose body becomes a live role's instructions."""

from __future__ import annotations

from typing import Any

from .errors import LabError
from .lab import current_lab


def role_magic(line: str, cell: str) -> str:
    """``%%role NAME``: replace the instructions of role NAME in the running lab.

    The edit is validated like a file; an invalid one raises here and the conversations
    keep the last good version. Returns a line naming the new version.
    """
    name = line.strip()
    if not name:
        raise LabError("%%role needs a role name: %%role demo")
    lab = current_lab()
    if lab is None:
        raise LabError("%%role edits a role of the running lab: start one with rico_lab.Lab()")
    role = lab.role(name)
    role.instructions = cell
    return f"role {name}: version {role.version}"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext rico_lab`` registers ``%%role``."""
    ipython.register_magic_function(role_magic, magic_kind="cell", magic_name="role")
