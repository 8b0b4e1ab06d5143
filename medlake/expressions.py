"""Source-mapping expressions: a small, safe vocabulary for deriving a canonical column.

A plant's mapping (`conf/sources/<plant>.yaml`, `fields.<column>.expr`) may compute a
canonical column from the delivered text instead of copying one column: concatenate a key
from two columns, cut a code out of a longer text, convert a unit. Expressions are written
in a Python-like syntax and parsed here into a tree of known operations; anything outside
the vocabulary (attribute access, other functions, comprehensions, lambdas) is a
configuration error, so a mapping can never run arbitrary code. The silver conformance
(`medlake/silver/conform.py`) turns the tree into a Spark column.

Vocabulary (docs/onboarding.md has examples):

- `col('Local name')`: the delivered text of a column; `'text'`, `12`, `1.5`: literals
- `concat(a, b, ...)`, `substring(x, start, length)` (1-based), `split(x, separator, n)`
  (the n-th part, 1-based), `regex(x, pattern[, group])` (the group's text, missing when
  the pattern does not match), `coalesce(a, b, ...)`, `upper(x)`, `lower(x)`, `trim(x)`
- `number(x)`: the text as a number; `+ - * /` on numbers (text operands are read as
  numbers), `round(x, digits)`
- `convert(x, 'lb', 'kg')`: a quantity from one unit to another of the same dimension
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["FUNCTIONS", "UNITS", "Node", "columns", "parse"]

# unit -> (dimension, factor to the dimension's base unit); factors are exact definitions
UNITS: dict[str, tuple[str, Decimal]] = {
    "mg": ("mass", Decimal("0.000001")),
    "g": ("mass", Decimal("0.001")),
    "kg": ("mass", Decimal(1)),
    "t": ("mass", Decimal(1000)),
    "lb": ("mass", Decimal("0.45359237")),
    "oz": ("mass", Decimal("0.028349523125")),
    "mm": ("length", Decimal("0.001")),
    "cm": ("length", Decimal("0.01")),
    "m": ("length", Decimal(1)),
    "in": ("length", Decimal("0.0254")),
    "ft": ("length", Decimal("0.3048")),
    "ml": ("volume", Decimal("0.001")),
    "l": ("volume", Decimal(1)),
    "gal": ("volume", Decimal("3.785411784")),
    "s": ("time", Decimal(1)),
    "min": ("time", Decimal(60)),
    "h": ("time", Decimal(3600)),
    "d": ("time", Decimal(86400)),
}

# name -> (fewest arguments, most arguments or None for any number)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "col": (1, 1),
    "concat": (1, None),
    "substring": (3, 3),
    "split": (3, 3),
    "regex": (2, 3),
    "coalesce": (1, None),
    "upper": (1, 1),
    "lower": (1, 1),
    "trim": (1, 1),
    "number": (1, 1),
    "round": (2, 2),
    "convert": (3, 3),
}
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
# arguments that must be literals: (function, position) -> what
_LITERAL_ARGS = {
    ("col", 0): str,
    ("substring", 1): int,
    ("substring", 2): int,
    ("split", 1): str,
    ("split", 2): int,
    ("regex", 1): str,
    ("regex", 2): int,
    ("round", 1): int,
    ("convert", 1): str,
    ("convert", 2): str,
}


@dataclass(frozen=True)
class Node:
    """One operation: `op` is `col`, `lit`, a function name, an operator or `neg`."""

    op: str
    args: tuple[Node, ...] = ()
    value: str | int | Decimal | None = None  # for `col` (the name) and `lit`


def parse(text: str) -> Node:
    """The expression's tree; ValueError naming the problem when it is outside the vocabulary."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _node(tree.body, text)
    except SyntaxError as exc:
        raise ValueError(f"expression {text!r} is not valid: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"expression {text[:40]!r}...: nested too deeply") from None


def columns(node: Node) -> list[str]:
    """The local columns an expression reads, in order of first mention."""
    found: dict[str, None] = {}
    if node.op == "col":
        found[str(node.value)] = None
    for arg in node.args:
        found.update(dict.fromkeys(columns(arg)))
    return list(found)


def _node(tree: ast.expr, text: str) -> Node:
    if isinstance(tree, ast.Constant) and isinstance(tree.value, str | int | float):
        if isinstance(tree.value, bool):
            raise ValueError(f"expression {text!r}: booleans are not supported")
        value = Decimal(str(tree.value)) if isinstance(tree.value, float) else tree.value
        return Node("lit", value=value)
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.USub):
        return Node("neg", (_node(tree.operand, text),))
    if isinstance(tree, ast.BinOp) and type(tree.op) in _OPERATORS:
        return Node(_OPERATORS[type(tree.op)], (_node(tree.left, text), _node(tree.right, text)))
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and not tree.keywords:
        return _call(tree.func.id, tree.args, text)
    shown = ast.get_source_segment(text.strip(), tree) or type(tree).__name__
    raise ValueError(
        f"expression {text!r}: {shown!r} is not allowed; use col('name'), literals, + - * / "
        f"and the functions {', '.join(sorted(FUNCTIONS))}"
    )


def _call(name: str, raw_args: list[ast.expr], text: str) -> Node:
    if name not in FUNCTIONS:
        raise ValueError(
            f"expression {text!r}: unknown function {name}(); known: {', '.join(sorted(FUNCTIONS))}"
        )
    least, most = FUNCTIONS[name]
    if len(raw_args) < least or (most is not None and len(raw_args) > most):
        wanted = f"{least}" if least == most else f"{least} to {most or 'any number of'}"
        raise ValueError(
            f"expression {text!r}: {name}() takes {wanted} arguments, got {len(raw_args)}"
        )
    args = tuple(_node(a, text) for a in raw_args)
    for position, arg in enumerate(args):
        kind = _LITERAL_ARGS.get((name, position))
        if kind is None:
            continue
        if arg.op != "lit" or not isinstance(arg.value, kind) or isinstance(arg.value, Decimal):
            what = "text" if kind is str else "a whole number"
            raise ValueError(
                f"expression {text!r}: argument {position + 1} of {name}() must be {what} "
                "written in the expression"
            )
    if name == "col":
        return Node("col", value=args[0].value)
    if name == "regex":
        groups = check_regex(str(args[1].value), f"expression {text!r}: regex()")
        if len(args) > 2 and not 0 <= int(str(args[2].value)) <= groups:
            raise ValueError(
                f"expression {text!r}: the pattern has {groups} groups, so the group must be "
                f"0 to {groups}"
            )
    if name == "split" and int(str(args[2].value)) < 1:
        raise ValueError(f"expression {text!r}: split() counts parts from 1")
    if name == "substring" and (int(str(args[1].value)) < 1 or int(str(args[2].value)) < 0):
        raise ValueError(f"expression {text!r}: substring() starts at 1, with a length >= 0")
    if name == "convert":
        units = [str(args[1].value), str(args[2].value)]
        unknown = [u for u in units if u not in UNITS]
        if unknown:
            raise ValueError(
                f"expression {text!r}: unknown unit {', '.join(unknown)}; known: {', '.join(UNITS)}"
            )
        if UNITS[units[0]][0] != UNITS[units[1]][0]:
            raise ValueError(
                f"expression {text!r}: cannot convert {UNITS[units[0]][0]} ({units[0]}) "
                f"to {UNITS[units[1]][0]} ({units[1]})"
            )
    return Node(name, args)


def factor(source_unit: str, target_unit: str) -> Decimal:
    """What a quantity in `source_unit` is multiplied by to be in `target_unit`."""
    return UNITS[source_unit][1] / UNITS[target_unit][1]


def check_regex(pattern: str, where: str) -> int:
    """The number of groups of a pattern that means the same to Python and to Spark (Java);
    ValueError naming `where` otherwise."""
    if "(?P" in pattern:
        raise ValueError(
            f"{where}: write a named group as (?<name>...) or unnamed: (?P is Python only"
        )
    try:
        return re.compile(pattern).groups
    except re.error as exc:
        raise ValueError(
            f"{where}: {pattern!r} is not a valid regular expression ({exc})"
        ) from None
