"""YAML read with its aliases' expansion bounded: no "billion laughs".

``yaml.safe_load`` of ``a: &a [x,x,x,x,x,x,x,x,x]``, ``b: &b [*a,*a,...]`` and so on for nine
levels is quick, since an alias shares its anchor's object; but whatever walks the result
afterwards (a role's version hash, an error message quoting a value, a template, a repr)
walks 9**9 nodes and never returns. And ``a: &a [*a]`` is a list that contains itself, a
RecursionError for those walks. Both are refused here, as the document is composed, at the
line of the alias.
"""

from __future__ import annotations

from typing import Any

import yaml

#: Nodes a document may have with every alias expanded. A role or a script has hundreds, a
#: large YAML data file tens of thousands; a billion laughs has a billion. Loading a role whose
#: data has a million (validated, hashed) takes about half a second: there reading stops.
MAX_NODES = 1_000_000

#: Tags of the keys that make SafeConstructor rewrite the mapping holding them: a merge key
#: (``<<``) is replaced by the pairs it merges, a value key (``=``) is retagged a string.
_REWRITTEN_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})
#: ...such a mapping as composed: its node, its pairs and their keys' tags
_Written = tuple[yaml.MappingNode, list[tuple[yaml.Node, yaml.Node]], list[str]]


class AliasBombError(yaml.MarkedYAMLError):
    """A document whose aliases expand past :data:`MAX_NODES` nodes, or into themselves.

    A ``yaml.YAMLError``, so whoever already refuses a file that is not YAML refuses this
    one too; ``problem_mark`` is the alias's place.
    """

    def __str__(self) -> str:
        mark = self.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {self.problem}"


class _Loader(yaml.SafeLoader):
    """A SafeLoader counting, as it composes, the nodes of the document aliases expanded.

    Each node's expanded size is computed once, when it is complete, from its children's
    (an alias is its anchor's node again), so the count is linear in the file. It also
    keeps, as written, each mapping that constructing the data would rewrite in place, so
    that :meth:`construct_as_written` can leave the node tree as composed.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size, for complete nodes
        self._expanded = 0  # nodes of the document so far, aliases expanded
        self._as_written: list[_Written] = []  # mappings with a merge or value key

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
        node = super().compose_node(parent, index)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
            if any(key.tag in _REWRITTEN_KEY_TAGS for key, _ in node.value):
                pairs = list(node.value)
                self._as_written.append((node, pairs, [key.tag for key, _ in pairs]))
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        self._expanded += 1
        return node

    def _refuse(self, event: yaml.Event, problem: str) -> None:
        raise AliasBombError(problem=problem, problem_mark=event.start_mark)

    def construct_as_written(self, node: yaml.Node) -> Any:
        """The data of ``node``, composed by this loader, as ``yaml.load`` constructs it.

        SafeConstructor flattens a mapping's merge keys into it in place (the merged pairs
        first, the ``<<`` gone) and retags its value keys: each such mapping gets back its
        pairs and tags, so that the tree still says on which line each key was written.
        """
        data = self.construct_document(node)
        for mapping, pairs, tags in self._as_written:
            mapping.value = pairs
            for (key, _), tag in zip(pairs, tags, strict=True):
                key.tag = tag
        return data


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """``yaml.compose`` and ``yaml.safe_load`` of ``text`` from one parse; both bounded.

    For a reader that needs the data and where each part of it was written (a role's
    errors name the line): the data is constructed from the composed node tree, as
    ``yaml.load`` does, so the aliases are counted as in :func:`safe_load`, and the tree is
    as :func:`yaml.compose` gives it. Refuses an alias bomb (:class:`AliasBombError`).
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_as_written(root)
    finally:
        loader.dispose()


def safe_load(text: str) -> Any:
    """``yaml.safe_load``, refusing an alias bomb (:class:`AliasBombError`)."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
