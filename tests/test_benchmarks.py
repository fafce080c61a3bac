"""The benchmarks still import: they run by hand, so nothing else notices when one rots."""

import importlib
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.stem)
def test_a_benchmark_imports(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # they import each other, as scripts do
    importlib.import_module(path.stem)
    if '__name__ == "__main__"' in path.read_text():  # a script, not a helper of the others
        assert callable(getattr(sys.modules[path.stem], "main", None)), "no main() to run"
