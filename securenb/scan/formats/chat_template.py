"""Chat templates (GGUF ``tokenizer.chat_template``, Hugging Face ``tokenizer_config.json``).

Templates are Jinja2 programs rendered by the inference server; an unsandboxed renderer
(llama-cpp-python before 0.2.72, CVE-2024-34359) lets ``{{ ''.__class__.__mro__ ... }}``
reach ``os.popen``. The template is parsed, never rendered: any access to an underscore
attribute, any string that names a dunder (also when assembled from pieces: ``'_'*2``,
``'%c'|format(95)``, ``'__cla'~'ss__'``), and any attribute lookup through a computed name
is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from securenb.scan.context import Ctx

MAX_TEMPLATE = 1 << 20
_DUNDER = re.compile(r"__\w+__")
_NAME_FILTERS = frozenset(
    {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
)
_FOLD_FILTERS = frozenset(
    {
        "format",
        "join",
        "replace",
        "lower",
        "upper",
        "reverse",
        "string",
        "trim",
        "title",
        "capitalize",
    }
)


class _NotConstant(Exception):
    pass


def _fold(node: Any, nodes: Any, depth: int = 0) -> Any:
    """The value of an expression made only of constants and string operations."""
    if depth > 50:
        raise _NotConstant
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.List | nodes.Tuple):
        return [_fold(item, nodes, depth + 1) for item in node.items]
    if isinstance(node, nodes.Concat):
        return "".join(str(_fold(item, nodes, depth + 1)) for item in node.nodes)
    if isinstance(node, nodes.BinExpr) and node.operator in ("+", "*", "%", "~"):
        left, right = _fold(node.left, nodes, depth + 1), _fold(node.right, nodes, depth + 1)
        if node.operator == "~":
            return f"{left}{right}"
        if node.operator == "*" and isinstance(right, int) and right > 1000:
            raise _NotConstant
        if node.operator == "%":
            return str(left) % (tuple(right) if isinstance(right, list) else right)
        return left + right if node.operator == "+" else left * right
    if isinstance(node, nodes.Filter) and node.name in _FOLD_FILTERS and node.node is not None:
        value = _fold(node.node, nodes, depth + 1)
        args = [_fold(a, nodes, depth + 1) for a in node.args]
        if node.name == "format":
            return str(value) % tuple(args)
        if node.name == "join":
            return (args[0] if args else "").join(str(v) for v in value)
        if node.name == "replace":
            return str(value).replace(str(args[0]), str(args[1]))
        if node.name == "reverse":
            return str(value)[::-1]
        convert: dict[str, Callable[[str], str]] = {
            "lower": str.lower,
            "upper": str.upper,
            "trim": str.strip,
            "string": str,
            "title": str.title,
            "capitalize": str.capitalize,
        }
        return convert[node.name](str(value))
    raise _NotConstant


def check_chat_template(text: str, ctx: Ctx, where: str) -> None:
    """Report template injection in ``text`` (``where`` names the key it came from)."""
    try:
        import jinja2
        from jinja2 import nodes
    except ImportError:
        ctx.report("template.unparsable", f"{where}: jinja2 is not installed", construct=where)
        return
    if len(text) > MAX_TEMPLATE:
        ctx.report("template.unparsable", f"{where}: template larger than {MAX_TEMPLATE} bytes")
        return
    try:
        tree = jinja2.Environment(autoescape=True).parse(text)
    except (jinja2.TemplateSyntaxError, RecursionError) as exc:
        ctx.report("template.unparsable", f"{where}: {exc}", construct=where)
        return
    for problem in _problems(tree, nodes):
        ctx.report("template.injection", f"{where}: {problem}", construct=where)
        return


def _computed_names(tree: Any, nodes: Any) -> set[str]:
    """Variables the template itself computes (``{% set n = ... %}``, ``{% set n %}``)."""
    names: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.AssignBlock)):
        value = getattr(node, "node", None)
        if isinstance(node, nodes.AssignBlock) or not isinstance(value, nodes.Const):
            names.update(t.name for t in node.target.find_all(nodes.Name))
            if isinstance(node.target, nodes.Name):
                names.add(node.target.name)
    return names


def _problems(tree: Any, nodes: Any) -> list[str]:
    found: list[str] = []
    computed = _computed_names(tree, nodes)
    for node in tree.find_all(nodes.Node):
        if (
            isinstance(node, nodes.Getitem | nodes.Getattr)
            and isinstance(getattr(node, "arg", None), nodes.Name)
            and node.arg.name in computed
        ):
            found.append(f"indexes with the computed name {node.arg.name!r}")
            continue
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            found.append(f"reads attribute {node.attr!r}")
        elif isinstance(node, nodes.Getitem) and not isinstance(
            node.arg,
            nodes.Const | nodes.Name | nodes.Getattr | nodes.Getitem | nodes.Slice | nodes.BinExpr,
        ):
            found.append("indexes with a computed name")
        elif isinstance(node, nodes.Filter) and node.name in _NAME_FILTERS:
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                if not isinstance(arg, nodes.Const) or str(arg.value).startswith("_"):
                    found.append(f"filter {node.name!r} with a computed or private name")
        elif isinstance(node, nodes.Const | nodes.Concat | nodes.BinExpr | nodes.Filter):
            try:
                value = _fold(node, nodes)
            except (_NotConstant, TypeError, ValueError, KeyError, IndexError, OverflowError):
                continue
            if isinstance(value, str) and _DUNDER.search(value):
                found.append(f"builds the name {_DUNDER.search(value).group()!r}")  # type: ignore[union-attr]
    return found
