"""The docs' Python examples run, and their links lead somewhere.

Each page's ```python blocks run in order, as one script in a fresh interpreter, the way a
reader pastes them into a notebook (shell blocks are commands for a shell, not run here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if python_blocks(p)],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_python_examples_run(page: Path, tmp_path: Path):
    roles = tmp_path / "roles"  # a copy, so the examples' records land in tmp_path/runs
    shutil.copytree(REPO / "roles", roles)
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(python_blocks(page)))
    env = os.environ | {"RICO_LAB_ROLES": str(roles)}
    done = subprocess.run(
        [sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_files(page: Path):
    targets = [t for t in LINK.findall(page.read_text()) if "://" not in t]
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing {missing}"
