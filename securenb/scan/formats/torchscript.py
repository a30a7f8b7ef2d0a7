"""TorchScript source inside a ``torch.jit.save`` archive (``<root>/code/**/*.py``).

``torch.jit.load`` compiles this code and runs it when the model is called. TorchScript is
a closed language: it can only call TorchScript builtins, methods of values, the classes
compiled from the same archive (``__torch__.*``) and registered operators (``torch.<op>``,
``ops.<namespace>.<op>``). So the code is parsed (Python syntax, never run) and every
operator it names is checked: operators of the tensor namespaces are allowed, except
those that read or write files, talk to other processes or the network; custom operator
namespaces and custom classes (``torch.classes``) need a native library and are reported.
"""

from __future__ import annotations

import ast
import re

from securenb.scan.context import Ctx

MAX_CODE = 16 << 20
_TENSOR_NAMESPACES = frozenset({"aten", "prim", "quantized", "_quantized", "profiler"})
_RISKY = re.compile(
    r"file|save|load|open|rpc|remote|distributed|c10d|socket|system|exec|spawn|process|mmap|pickle"
    r"|_C\b|classes"
)


def check_torchscript_code(data: bytes, ctx: Ctx) -> None:
    """Report operators outside the tensor namespaces and file/process/network operators."""
    if len(data) > MAX_CODE:
        ctx.report("limit.exceeded", f"{len(data)} bytes of TorchScript code")
        return
    try:
        tree = ast.parse(data.decode("utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        ctx.report("torchscript.code", f"TorchScript code could not be parsed: {exc}"[:200])
        return
    for name, line in _operators(tree):
        parts = name.split(".")
        namespace = parts[1] if parts[0] == "ops" and len(parts) > 2 else "aten"
        if namespace not in _TENSOR_NAMESPACES or _RISKY.search(".".join(parts[1:])):
            ctx.report(
                "torchscript.risky-op",
                f"TorchScript code calls {name[:100]} (line {line})",
                construct=name[:100],
            )


def _operators(tree: ast.AST) -> list[tuple[str, int]]:
    """Dotted names rooted at ``torch`` or ``ops`` (``torch.ops.x.y`` is ``ops.x.y``)."""
    found: list[tuple[str, int]] = []
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts: list[str] = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name) and cur.id in ("torch", "ops"):
            parts.append(cur.id)
            dotted = ".".join(reversed(parts))
            if dotted.startswith("torch.ops."):
                dotted = dotted[len("torch.") :]
            found.append((dotted, getattr(node, "lineno", 0)))
    return found
