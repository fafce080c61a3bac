"""What every fuzz door shares: the hypothesis profiles, the count of inputs, JSON-ish values.

Two profiles. ``suite`` (the default) runs a few dozen inputs per property, derandomized, so
``make test`` stays short and a failure comes back on every run. ``long`` is chosen by
``RICO_FUZZ_EXAMPLES=N``: N random inputs per property, as ``benchmarks/fuzz.py`` runs it.
Neither keeps a database: the shrunk input of every bug found goes into its test as an
``@example``, where a reader sees it.

With ``RICO_FUZZ_REPORT=<file>`` each input tried appends ``<door> ok|fail`` to the file:
the suite's process ends with ``os._exit`` (tests/conftest.py), so counts are written as
they happen, not at exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any, TextIO, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SUITE_EXAMPLES = 40
_LONG = os.environ.get("RICO_FUZZ_EXAMPLES")
_RELAXED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

settings.register_profile(
    "suite",
    max_examples=SUITE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_RELAXED,
)
settings.register_profile(
    "long",
    max_examples=int(_LONG or 0) or SUITE_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=_RELAXED,
)
settings.load_profile("long" if _LONG else "suite")
#: Inputs per property for a door each input of which needs a real server and a connection.
SERVER_EXAMPLES = int(_LONG or 0) or 15

F = TypeVar("F", bound=Callable[..., Any])
_report: list[TextIO] = []


def counted(door: str) -> Callable[[F], F]:
    """Count each input the wrapped property body sees, and whether it failed, for ``door``."""

    def wrap(body: F) -> F:
        @wraps(body)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                result = body(*args, **kwargs)
            except BaseException:
                _note(door, "fail")
                raise
            _note(door, "ok")
            return result

        return run  # type: ignore[return-value]

    return wrap


def _note(door: str, outcome: str) -> None:
    path = os.environ.get("RICO_FUZZ_REPORT")
    if not path:
        return
    if not _report:
        _report.append(open(path, "a"))  # kept open for the whole run
    _report[0].write(f"{door} {outcome}\n")
    _report[0].flush()


#: Scalars as YAML and JSON give them, NaN and infinities included.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
)

#: Any JSON-like value: what a file or a payload may hold where something else was meant.
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths_in(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a tree of dicts and lists (the root is ``()``), for mutations."""
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += paths_in(value, (*prefix, i))
    return found


def replaced(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``tree`` with the node at ``path`` replaced by ``value``."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, head: replaced(tree[head], rest, value)}
    copy = list(tree)
    copy[head] = replaced(copy[head], rest, value)
    return copy


def deleted(tree: Any, path: tuple[Any, ...]) -> Any:
    """A copy of ``tree`` without the node at ``path`` (the root stays)."""
    if not path:
        return tree
    if len(path) == 1:
        if isinstance(tree, dict):
            return {k: v for k, v in tree.items() if k != path[0]}
        return [v for i, v in enumerate(tree) if i != path[0]]
    return replaced(tree, path[:1], deleted(tree[path[0]], path[1:]))


@st.composite
def mutations(
    draw: st.DrawFn, tree: Any, new_values: st.SearchStrategy[Any] = values, least: int = 1
) -> Any:
    """``tree`` after ``least`` to three random edits: a node replaced, deleted, or a key added.

    ``least=0`` lets a focused change (a template, data) be tried on an otherwise valid tree.
    """
    for _ in range(draw(st.integers(least, 3))):
        path = draw(st.sampled_from(paths_in(tree)))
        kind = draw(st.sampled_from(["replace", "delete", "add"]))
        if kind == "replace":
            tree = replaced(tree, path, draw(new_values))
        elif kind == "delete":
            tree = deleted(tree, path)
        else:
            target = _at(tree, path)
            if isinstance(target, dict):
                known = sorted(map(str, target))
                key = draw(st.text(max_size=10) | st.sampled_from(known or [""]))
                tree = replaced(tree, path, {**target, key: draw(new_values)})
            elif isinstance(target, list):
                tree = replaced(tree, path, [*target, draw(new_values)])
    return tree


def _at(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


#: How a file's text is damaged: kept, cut short, spliced with text, or with raw bytes.
DAMAGES = ("as is", "truncated", "inserted", "bytes")


def damaged(draw: st.DrawFn, text: str, how: str) -> bytes:
    """``text`` as a file's bytes, damaged ``how`` (one of :data:`DAMAGES`) at a random place."""
    cut = draw(st.integers(0, len(text)))
    if how == "truncated":
        text = text[:cut]
    elif how == "inserted":
        text = text[:cut] + draw(st.text(max_size=8)) + text[cut:]
    encoded = text.encode()
    if how == "bytes":
        encoded = encoded[:cut] + draw(st.binary(min_size=1, max_size=4)) + encoded[cut:]
    return encoded


def alias_bomb(indent: str = "") -> str:
    """A "billion laughs": nine levels of nine aliases, 9**9 nodes once expanded, in 9 lines.

    Each line is indented by ``indent``, so the bomb can be a mapping under a key: where it
    stands alone, the unknown keys ``a`` to ``i`` are refused before anything walks it.
    """
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{level}: &{level} [{', '.join(['*' + below] * 9)}]"
        for below, level in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    return "".join(f"{indent}{line}\n" for line in levels)


def doubled(step: str) -> str:
    """A role template that doubles a text sixty times by ``step``, ``ns.s ~ ns.s`` say.

    Uses single quotes only, so it fits in a double-quoted YAML string.
    """
    return (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        f"{{% set ns.s = {step} %}}{{% endfor %}}{{{{ ns.s|length }}}}"
    )
