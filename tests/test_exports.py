import inspect

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
