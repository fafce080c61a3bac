"""Jinja templates rendered within budgets: no template renders forever or fills the memory.

A role's instructions are a Jinja template, and a typo in one (a loop over the wrong range, a
macro calling itself twice, a text doubled in a loop) must be an error naming the role's
file, not a kernel that hangs or dies. Jinja's own sandbox bounds ``range``; the environment
here counts loops, calls, the size of every text or list made and of all of them together,
and refuses past the budgets below.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from operator import index
from string import Formatter
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter, SecurityError
from jinja2.utils import generate_lorem_ipsum

#: Budgets of one rendering of a role's instructions, so that no template renders forever or
#: fills the memory (nested loops, a macro calling itself twice, ``'x' * 10**10``,
#: ``10 ** (10 ** 10)``, a text doubled in a loop, ``'x'.center(10**10)``): each is refused
#: within a fraction of a second. A real role's prompt is a few thousand characters, made in
#: tens of loop iterations and calls, and a realtime model's context holds some 100,000
#: characters: the budgets are far beyond both.
#: ...characters of the prompt, and characters or items of any one text or list made on the way
MAX_RENDERED_CHARS = 1_000_000
#: ...loop iterations, all loops together (a million take under 0.1 s)
MAX_LOOP_ITERATIONS = 1_000_000
#: ...calls of macros, functions and methods (each costs tens of iterations: 50,000 take 0.1-0.4 s)
MAX_TEMPLATE_CALLS = 50_000
#: ...characters and items of all the texts and lists made, together: each within the budget
#: above, a loop could still keep thousands of them at once (``l.append('x' * 999999)``)
MAX_MADE_CHARS = 20_000_000
#: ...bits of a number made by ``*`` or ``**`` (about 30,000 digits)
MAX_NUMBER_BITS = 100_000
#: ...seconds, for what grows by many small steps, each within the budgets above (a text
#: grown by ten characters a step for a million steps takes minutes)
MAX_RENDER_SECONDS = 2.0


def _check(size: int, what: str) -> None:
    """Refuse to make ``what`` of ``size`` characters or items, if over the budget."""
    if size > MAX_RENDERED_CHARS:
        raise SecurityError(f"{what} would make over {MAX_RENDERED_CHARS:,} items")


def _expanded_size(value: Any, memo: dict[int, int] | None = None) -> int:
    """Items of ``value`` with every part it holds more than once counted each time.

    ``[l, l]`` made sixty times in a loop is 60 small lists, but its text has 2**60 items:
    ``str()`` would run in C, past every check here. Each container is walked once
    (``memo``), so this is linear in the objects there are; one inside itself counts once,
    as ``str()`` prints it ``[...]``.
    """
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 1
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    memo[id(value)] = 1
    parts = itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value
    size = 1
    for part in parts:
        size += _expanded_size(part, memo)
        if size > MAX_RENDERED_CHARS:
            break  # too large already: no need to count the rest
    memo[id(value)] = size
    return size


def _text_len(values: Collection[Any]) -> int:
    """How long ``values`` are as text, each object's ``str()`` made once.

    A list holding one long text a thousand times is measured in one ``str()``, not a thousand.
    """
    lengths: dict[int, int] = {}
    total = 0
    for value in values:
        if isinstance(value, str):
            total += len(value)
            continue
        if id(value) not in lengths:
            _check(_expanded_size(value), "'~'")
            lengths[id(value)] = len(str(value))
        total += lengths[id(value)]
    return total


def _replace_size(text: Any, old: Any, new: Any, count: int | None = -1) -> int:
    """How long ``text.replace(old, new, count)`` would be: ``new`` once per match of ``old``.

    An empty ``old`` matches around every character.
    """
    matches = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        matches = min(matches, count)
    return len(text) + matches * len(new)


#: what follows ``%`` and its ``(key)`` in a %-format: flags, width, precision, type
_PERCENT_SPEC = re.compile(r"[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.?)", re.DOTALL)


def _percent_size(text: str, args: Any) -> int:
    """About how long ``text % args`` would be, before Python makes it.

    Each value shown, padded to the widths and precisions the format names
    (``'%010000000000d'``) or takes from ``args`` (``'%0*d'``). The format is read as Python
    reads it, a ``(key)`` with nested parentheses too.
    """
    values = iter(args if isinstance(args, tuple) else (args,))
    size, at = len(text), text.find("%")
    while at >= 0:
        at, key = at + 1, None
        if text.startswith("(", at):
            depth, start = 1, at + 1
            while depth:  # IndexError if unclosed, as Python refuses it too
                at += 1
                depth += {"(": 1, ")": -1}.get(text[at], 0)
            key, at = text[start:at], at + 1
        spec = _PERCENT_SPEC.match(text, at)
        assert spec is not None  # every part of it is optional
        for number in spec.group(1, 2):
            size += abs(next(values, 0)) if number == "*" else int(number or 0)
        if spec.group(3) != "%":
            size += _text_len([args[key] if key is not None else next(values, "")])
        at = text.find("%", spec.end())
    return size


def _format_size(formatter: SandboxedFormatter, text: str, args: Any, kwargs: Any) -> int:
    """About how long ``text.format(*args, **kwargs)`` would be, before Python makes it.

    Each field's value shown, padded to the widths its spec names or takes from other fields
    (``'{:>{}}'.format('x', 10**10)``). ``formatter`` is the sandbox's, which finds a field's
    value as the formatting will.
    """
    auto = itertools.count()

    def value(field: str) -> Any:
        if not field or field[0] in ".[":
            field = f"{next(auto)}{field}"
        return formatter.get_field(field, args, kwargs)[0]

    size = 0
    for literal, name, spec, _ in Formatter().parse(text):
        size += len(literal)
        if name is not None:
            shown = _text_len([value(name)])
            inner = [str(value(f)) for _, f, _, _ in Formatter().parse(spec or "") if f is not None]
            spec = "".join([spec or "", *inner])
            size += shown + len(spec) + sum(int(digits) for digits in re.findall(r"\d+", spec))
    return size


def _pad(width: Any) -> int:
    """The characters of an indent given as a number of spaces or as the text itself."""
    return len(width) if isinstance(width, str) else int(width or 0)


def _lines(text: Any) -> int:
    """The lines of ``text`` shown as a string."""
    return str(text).count("\n") + 1


#: What a filter that can make far more than it is given would make, from its arguments (those
#: of Jinja's filter, after the context Jinja passes some): a width or count, a text put in
#: at every match, line, word or item. Any other filter makes at most a few times what it is
#: given, and its result is checked.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "batch": lambda value, linecount, fill_with=None: 0 if fill_with is None else linecount,
    "center": lambda value, width=80: width,
    "format": lambda value, *args, **kwargs: _percent_size(str(value), kwargs or args),
    "indent": lambda s, width=4, first=False, blank=False: len(str(s)) + _lines(s) * _pad(width),
    "join": lambda value, d="", attribute=None: _text_len(value) + len(value) * len(str(d)),
    "replace": lambda s, old, new, count=None: _replace_size(str(s), str(old), str(new), count),
    "slice": lambda value, slices, fill_with=None: slices,
    "tojson": lambda value, indent=None: _text_len([value]) * (1 + _pad(indent)),
    "urlize": lambda value, trim_url_limit=None, nofollow=False, target=None, rel=None, **_: (
        3 * len(str(value)) + len(str(value).split()) * len(f"{target or ''}{rel or ''}")
    ),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, **_: (
        len(str(s))
        + (2 * len(str(s)) // max(int(width), 1) + _lines(s)) * len(str(wrapstring or "\n"))
    ),
}
#: ...and a method of a text: the others take widths, lengths and counts only, which
#: :meth:`_BoundedEnvironment.call` holds to MAX_RENDERED_CHARS
_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "expandtabs": lambda text, tabsize=8: (
        len(text) + text.count("\t" if isinstance(text, str) else b"\t") * index(tabsize)
    ),
    "join": lambda sep, iterable: _text_len(iterable) + len(iterable) * len(sep),
    "replace": _replace_size,
    "translate": lambda text, table: (
        len(text)
        * max(
            (_text_len([v]) for v in (table.values() if isinstance(table, dict) else table)),
            default=1,
        )
    ),
}


def _estimated(size_of: Callable[..., int], *args: Any, **kwargs: Any) -> int:
    """``size_of(*args, **kwargs)``, or 0 if they are arguments the operation itself refuses.

    Of a wrong number or type, say: the operation's own error then says what is wrong.
    """
    try:
        return index(size_of(*args, **kwargs))
    except (TypeError, ValueError, LookupError):
        return 0


def _lists(args: Iterable[Any]) -> tuple[Any, ...]:
    """``args`` with each iterator read into a list, so that it can be measured and still used."""
    return tuple(list(arg) if isinstance(arg, Iterator) else arg for arg in args)


class _Gathered(list[str]):
    """The output a macro or a ``{% set %}``, ``{% filter %}`` or ``{% call %}`` block gathers.

    It is refused past MAX_RENDERED_CHARS: Jinja gathers it in a list, joined at the end, so
    a loop printing a long text a million times in a block kept a million copies of it, or
    references that the join made into one huge text.
    """

    def __init__(self) -> None:
        super().__init__()
        self.length = 0

    def append(self, piece: str) -> None:
        self.length += len(piece)
        if self.length > MAX_RENDERED_CHARS:
            raise SecurityError(
                f"the output of a macro or block runs past {MAX_RENDERED_CHARS:,} characters"
            )
        super().append(piece)

    def extend(self, pieces: Iterable[str]) -> None:
        for piece in pieces:
            self.append(piece)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` measured before it joins, and output gathered bounded.

    ``a ~ b`` compiles to a join that no hook of the sandbox sees, so a loop doubling a text
    with it (``{% set ns.s = ns.s ~ ns.s %}``) grew it until the memory ran out; so did the
    output a block gathers (:class:`_Gathered`).
    """

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()  # as Jinja's, but not a plain list
        self.writeline(f"{frame.buffer} = environment.gathered()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # the join Jinja's own visit_Concat picks, given the pieces through environment.measured
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"{join}(environment.measured((")
        for piece in node.nodes:
            self.visit(piece, frame)
            self.write(", ")
        self.write(")))")


class _BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the budgets above, for one rendering (it counts as it goes).

    The sandbox already refuses unsafe attributes and a ``range`` of over 100,000 items, and
    calls :meth:`call` and :meth:`call_binop` for the template's calls and operators; these
    count the calls and refuse an operation whose result would be too large before Python
    computes it. Loops are counted as :meth:`compile_counted` makes them. Filters, ``~`` and
    the output a macro or block gathers (:class:`_BoundedCodeGenerator`) are measured too:
    any one text or list is at most MAX_RENDERED_CHARS long, so that no loop can double one
    until the memory runs out, and no width or count (``'x'.center(10**10)``) can ask for more;
    and all of them together at most MAX_MADE_CHARS (:meth:`_made`), so that no loop can keep
    thousands.
    """

    code_generator_class = _BoundedCodeGenerator
    gathered = _Gathered
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False)
        self.iterations = 0
        self.calls = 0
        self.made = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.finalize = self._finalized
        # one object, so that call() knows the loops' wrapper by identity
        self.loop_budget = self._count_iterations
        self.filters = {name: self._bounded(name, run) for name, run in self.filters.items()}
        self.globals["lipsum"] = self._lipsum

    def _count_iterations(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_LOOP_ITERATIONS:
                raise SecurityError(f"over {MAX_LOOP_ITERATIONS:,} loop iterations")
            self._in_time()
            yield item

    def _in_time(self) -> None:
        """Refuse to go on past MAX_RENDER_SECONDS; every loop step and call asks."""
        if time.monotonic() > self.deadline:
            raise SecurityError(f"rendering takes over {MAX_RENDER_SECONDS:g} s")

    def _made(self, size: int, what: str) -> None:
        """Count ``what``, a text or list of ``size`` made, refusing it past either budget."""
        _check(size, what)
        self.made += size
        if self.made > MAX_MADE_CHARS:
            raise SecurityError(
                f"{what} would take the texts and lists made past {MAX_MADE_CHARS:,} items in all"
            )

    def _finalized(self, value: Any) -> Any:
        """What ``{{ ... }}`` prints, if its text is within the budget (before ``str()``)."""
        _check(_expanded_size(value), "'{{ }}'")
        return value

    def compile_counted(self, template: str) -> jinja2.Template:
        """``from_string``, with every ``for`` loop iterating through :attr:`loop_budget`."""
        tree = self.parse(template)
        for loop in tree.find_all(nodes.For):
            budget = nodes.EnvironmentAttribute("loop_budget", lineno=loop.lineno)
            loop.iter = nodes.Call(budget, [loop.iter], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return self.from_string(tree)

    def _checked(self, result: Any, what: str) -> Any:
        """``result``, if a text or container within the budget.

        So what grows a few times in each call (``|escape``, ``|tojson``, ``.upper()``) cannot
        grow past it in a loop.
        """
        if isinstance(result, (str, bytes, list, tuple, dict)):
            self._made(len(result), what)
        return result

    def measured(self, pieces: tuple[Any, ...]) -> tuple[Any, ...]:
        """The pieces of ``a ~ b ~ ...``, if joined they are within the budget."""
        self._made(_text_len(pieces), "'~'")
        return pieces

    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        """Join the output of a macro or a block: Jinja's ``concat``, within the budget."""
        if not isinstance(pieces, _Gathered):  # a block's output, read as it comes
            pieces, gathered = _Gathered(), pieces
            pieces.extend(gathered)
        self._made(pieces.length, "the output of a macro or block")
        return "".join(pieces)

    def _bounded(self, name: str, run: Callable[..., Any]) -> Callable[..., Any]:
        """The filter ``run``, what it makes checked before (:data:`_FILTER_SIZES`) and after."""
        size_of = _FILTER_SIZES.get(name)
        # Jinja passes some filters a context, eval context or environment first
        skip = 1 if hasattr(run, "jinja_pass_arg") else 0

        @functools.wraps(run)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self._in_time()
            for arg in itertools.chain(args[skip:], kwargs.values()):
                _check(_expanded_size(arg), f"filter '{name}'")
            if size_of is not None:
                args = _lists(args)
                _check(_estimated(size_of, *args[skip:], **kwargs), f"filter '{name}'")
            return self._checked(run(*args, **kwargs), f"filter '{name}'")

        return bounded

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        """Jinja's ``lipsum``: ``n`` paragraphs of up to ``max`` words of up to 15 characters."""
        words = n * max if isinstance(n, int) and isinstance(max, int) else 0
        self._made(words * 15, "lipsum()")
        return generate_lorem_ipsum(n, html, min, max)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        what = f"{getattr(obj, '__name__', 'the call')}()"
        if obj is not self.loop_budget:
            self._in_time()
            self.calls += 1
            if self.calls > MAX_TEMPLATE_CALLS:
                raise SecurityError(f"over {MAX_TEMPLATE_CALLS:,} calls")
            args = self._check_call(obj, what, args, kwargs)
        receiver = getattr(obj, "__self__", None)
        before = len(receiver) if isinstance(receiver, (list, dict, set)) else None
        result = super().call(context, obj, *args, **kwargs)
        if before is not None:
            _check(len(receiver), what)  # l.extend(l), in a loop, doubles l
            self._made(max(len(receiver) - before, 0), what)
        return self._checked(result, what)

    def _check_call(
        self, obj: Any, what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Refuse a call of a text's or number's method that would make too much; ``args``.

        A method's number is a width, a length, a count or a place in a text, so none may be
        over the longest text allowed (``'x'.center(10**10)``, ``(1).to_bytes(10**10)``); a
        few methods put a text in many times (:data:`_METHOD_SIZES`), and ``format`` pads to
        widths it reads in its text. ``format``, wrapped by the sandbox, takes any number.
        """
        receiver = getattr(obj, "__self__", None)
        text = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
        if isinstance(receiver, (str, bytes, int)):
            args = _lists(args)
            numbers = [arg for arg in (*args, *kwargs.values()) if isinstance(arg, int)]
            _check(max(numbers, default=0), what)
            if (size_of := _METHOD_SIZES.get(what[:-2])) is not None:
                _check(_estimated(size_of, receiver, *args, **kwargs), what)
        elif isinstance(text, str) and what in ("format()", "format_map()"):
            positional, named = (args, kwargs) if what == "format()" else ((), (*args, {})[0])
            size = _estimated(_format_size, SandboxedFormatter(self), text, positional, named)
            _check(size, what)
        return args

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        sequences = (str, bytes, list, tuple)
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            self._made(len(left) + len(right), "'+'")
        elif operator == "*" and ints:
            if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
                raise SecurityError(f"'*' would make a number of over {MAX_NUMBER_BITS:,} bits")
        elif operator == "*" and isinstance(left, (*sequences, int)) and isinstance(right, int):
            times, sequence = (left, right) if isinstance(left, int) else (right, left)
            self._made(len(sequence) * times, "'*'")
        elif operator == "**" and ints and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_NUMBER_BITS:
                raise SecurityError(f"'**' would make a number of over {MAX_NUMBER_BITS:,} bits")
        elif operator == "%" and isinstance(left, (str, bytes)):
            text = left if isinstance(left, str) else left.decode("latin-1")
            self._made(_estimated(_percent_size, text, right), "'%'")
        return super().call_binop(context, operator, left, right)


def render(template: str, context: dict[str, Any]) -> str:
    """``template`` rendered with ``context``, stripped; SecurityError past a budget."""
    env = _BoundedEnvironment()
    pieces: list[str] = []
    length = 0
    for piece in env.compile_counted(template).generate(context):
        length += len(piece)
        if length > MAX_RENDERED_CHARS:
            raise SecurityError(f"the prompt runs past {MAX_RENDERED_CHARS:,} characters")
        pieces.append(piece)
    return "".join(pieces).strip()
