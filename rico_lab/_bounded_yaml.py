"""YAML read within bounds: no "billion laughs", no nesting past the stack, no bad dates.

``yaml.safe_load`` of ``a: &a [x,x,x,x,x,x,x,x,x]``, ``b: &b [*a,*a,...]`` and so on for nine
levels is quick, since an alias shares its anchor's object; but whatever walks the result
afterwards (a role's version hash, an error message quoting a value, a template, a repr)
walks 9**9 nodes and never returns. And ``a: &a [*a]`` is a list that contains itself, a
RecursionError for those walks. Both are refused here, as the document is composed, at the
line of the alias. So is nesting deeper than :data:`MAX_DEPTH` (``[[[[...]]]]`` four hundred
levels deep is a RecursionError in the composer itself), and a date that is no date
(``2020-13-45`` matches YAML's pattern, then ``datetime`` raises a bare ValueError): each
is a ``yaml.YAMLError`` with its line, as any other file that is not YAML.
"""

from __future__ import annotations

from typing import Any

import yaml

#: Nodes a document may have with every alias expanded. A role or a script has hundreds, a
#: large YAML data file tens of thousands; a billion laughs has a billion. Loading a role whose
#: data has a million (validated, hashed) takes about half a second: there reading stops.
MAX_NODES = 1_000_000
#: Levels of nesting a document may have. Roles and scripts have a handful; four hundred
#: overflow Python's stack in the composer, and whatever walks the data later (validation,
#: hashing) recurses too.
MAX_DEPTH = 100


class RefusedError(yaml.MarkedYAMLError):
    """A document past a bound: aliases past :data:`MAX_NODES` nodes, or too deep.

    Aliases may also not expand into themselves; nesting stops at :data:`MAX_DEPTH`.

    A ``yaml.YAMLError``, so whoever already refuses a file that is not YAML refuses this
    one too; ``problem_mark`` is the place of the alias or of the node too deep.
    """

    def __str__(self) -> str:
        mark = self.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {self.problem}"


class _Loader(yaml.SafeLoader):
    """A SafeLoader counting, as it composes, the nodes of the document aliases expanded.

    Each node's expanded size is computed once, when it is complete, from its children's
    (an alias is its anchor's node again), so the count is linear in the file. It also
    counts how deep the node being composed is.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size, for complete nodes
        self._expanded = 0  # nodes of the document so far, aliases expanded
        self._depth = 0  # collections open around the node being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # its anchor's node is not complete: it holds this alias
                self._refuse(event, f"the alias *{event.anchor} is inside the node it names")
            self._expanded += size
            if self._expanded > MAX_NODES:
                self._refuse(
                    event,
                    f"the alias *{event.anchor} expands the document past {MAX_NODES:,} nodes "
                    "(an alias bomb?)",
                )
            return node
        if self._depth >= MAX_DEPTH:
            self._refuse(self.peek_event(), f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        self._expanded += 1
        return node

    def _refuse(self, event: yaml.Event, problem: str) -> None:
        raise RefusedError(problem=problem, problem_mark=event.start_mark)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date or time, or a ConstructorError at its line if it is none (``2020-13-45``)."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a date: {exc}", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def compose(text: str) -> yaml.Node | None:
    """``yaml.compose``, refusing a document past the bounds (:class:`RefusedError`)."""
    return yaml.compose(text, Loader=_Loader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load``, refusing a document past the bounds (:class:`RefusedError`)."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
