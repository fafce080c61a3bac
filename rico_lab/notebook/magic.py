"""The ``%%role`` cell magic: a cell whose body becomes a live role's instructions."""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from ..errors import LabError
from ..roles import Role


class RoleSource(Protocol):
    """What ``%%role`` edits: a lab's live roles."""

    @property
    def closed(self) -> bool:
        """Whether the lab has been closed."""

    def role(self, name: str) -> Role:
        """The lab's live copy of role ``name``."""


_current: weakref.ref[RoleSource] | None = None


def edit_roles_of(lab: RoleSource) -> None:
    """Make ``lab`` the one ``%%role`` edits: the lab started last (held weakly)."""
    global _current
    _current = weakref.ref(lab)


def current_lab() -> RoleSource | None:
    """The lab started last, if it is still open (what ``%%role`` edits)."""
    lab = _current() if _current is not None else None
    return lab if lab is not None and not lab.closed else None


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
