import inspect
import subprocess
import sys

import pytest

import rico_lab

pytestmark = pytest.mark.unit


def test_all_is_sorted_and_complete():
    assert rico_lab.__all__ == sorted(rico_lab.__all__)
    public = {
        name
        for name, value in vars(rico_lab).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(rico_lab.__all__)


def test_every_export_is_documented():
    for name in rico_lab.__all__:
        assert inspect.getdoc(getattr(rico_lab, name)), name


def test_the_import_leaves_out_the_iri_parser_and_nothing_else():
    """jsonschema would compile rfc3987_syntax's grammar (3 s) for format checks roles never
    make: ``import rico_lab`` skips it, and leaves it importable for anyone who wants it."""
    pytest.importorskip("rfc3987_syntax")  # installed with JupyterLab
    code = (
        "import sys, rico_lab\n"
        "print('rfc3987_syntax' in sys.modules)\n"
        "import rfc3987_syntax\n"
        "print(rfc3987_syntax.is_valid_syntax('iri', 'https://example.org/ü'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
