"""The docs' Python examples run, and their links lead somewhere.

Each page's ```python blocks run in order, as one script, the way a reader pastes them into
a notebook (shell blocks are commands for a shell, not run here).
"""

from __future__ import annotations

import json
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


# One interpreter runs every page, each in a namespace of its own: importing rico_lab (and
# livekit) once instead of once per page keeps the suite short.
RUNNER = """
import json, sys, traceback
results = {}
for name, code in json.loads(sys.stdin.read()).items():
    try:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
        results[name] = ""
    except BaseException:
        results[name] = traceback.format_exc()
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each page's traceback, or "" where its examples ran."""
    root = tmp_path_factory.mktemp("docs")
    roles = root / "roles"  # a copy, so the examples' records land in root/runs
    shutil.copytree(REPO / "roles", roles)
    pages = {
        str(p.relative_to(REPO)): "\n\n".join(python_blocks(p)) for p in PAGES if python_blocks(p)
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER], input=json.dumps(pages), cwd=root,
        env=os.environ | {"RICO_LAB_ROLES": str(roles)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULTS ")]
    assert lines, f"the examples' runner failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return dict(json.loads(lines[-1].removeprefix("RESULTS ")))


@pytest.mark.parametrize(
    "page",
    [str(p.relative_to(REPO)) for p in PAGES if python_blocks(p)],
)
def test_python_examples_run(page: str, page_runs: dict[str, str]):
    assert page_runs[page] == "", f"{page}:\n{page_runs[page]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_files(page: Path):
    targets = [t for t in LINK.findall(page.read_text()) if "://" not in t]
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing {missing}"
