"""The package's layout holds: each flow imports only those below it, and nothing cycles.

The rules are import-linter contracts in pyproject.toml; this runs them on the package, and
on a copy with one forbidden import added, to show they bite.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree)},
        check=False,
    )


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "rico_lab", tmp_path / "rico_lab", ignore=shutil.ignore_patterns("static")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # a lower flow reaching up: the local model importing the agent
        ("local_model/server.py", "from ..agent import host", "each flow imports only"),
        # the local model importing LiveKit
        ("local_model/_vad.py", "import livekit.rtc", "knows nothing of LiveKit"),
        # the record importing the agent
        ("evaluation/record.py", "from ..agent import worker", "the record knows nothing"),
        # two modules of one folder importing each other
        ("agent/tools.py", "from . import conversation", "no import cycles"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    tree = copy_of_the_package(tmp_path)
    target = tree / "rico_lab" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout
