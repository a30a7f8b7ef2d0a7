"""Symbolic execution of pickle streams: every import and call is seen, nothing is run.

The machine mirrors CPython's unpickler opcode by opcode (protocols 0-5, the memo, marks,
Python 2 name mapping below protocol 3) but its values are symbols: constants, the
globals a load would import, and the objects calls would return. Because names are
tracked through the stack and the memo exactly as the unpickler tracks them, a name built
by STACK_GLOBAL from memoized strings is checked like a plain GLOBAL, and a name that is
computed at load time (a call's result) is reported rather than guessed.

Findings: any import outside the allowlist; a call on anything that is not an allowlisted
global; BUILD on a global (monkey-patching) or with dunder state (``__setstate__``
injection); mutation of global objects; extension-registry imports. Byte strings that are
themselves pickles are analysed too. joblib's arrays, written raw between opcodes, are
skipped by their recorded dtype and shape, and the skipped bytes are also read as opcodes
the way a plain ``pickle.load`` would read them.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
from dataclasses import dataclass
from typing import Any

from securenb.scan.allowlist import (
    BIT_GENERATORS,
    TEXT_CODECS,
    ArgCheck,
    is_dotted_identifier,
    resolve_name,
)
from securenb.scan.context import Ctx
from securenb.scan.source import Cursor, Source
from securenb.scan.unpickle_probe import Edit

MAX_LINE = 1 << 20
"""Protocol-0 text arguments longer than this are refused as malformed."""
KEEP = 1 << 16
"""Constants up to this size are kept in full; longer ones by offset, length and head."""
CAP = 4096
"""Items kept per symbolic container (the rest are counted, not stored)."""
TENTATIVE_OPS = 100_000
"""Opcodes an alternative reading of raw bytes may run before it counts as a pickle."""

PROTO_MAGIC = frozenset(bytes([0x80, p]) for p in range(2, 6))
_NESTED_STARTS = (b"\x80", b"c", b"(")
_DUNDER = re.compile(r"__\w+__\Z")
_HARMLESS_DUNDER_KEYS = frozenset(
    {
        "__dict__",
        "__doc__",
        "__version__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    }
)
JOBLIB_WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle:NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle:NumpyArrayWrapper",
    }
)


class Malformed(Exception):
    """The stream is not a pickle CPython would finish loading."""


class Glob:
    """A global the load would import: ``module`` and (possibly dotted) ``name``."""

    __slots__ = ("check", "denied", "module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self.check: ArgCheck | None = None
        self.denied = False

    @property
    def key(self) -> str:
        return f"{self.module}:{self.name}"

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class Obj:
    """What a call or instantiation would return; ``cls`` is None if the callee was not a global."""

    __slots__ = ("args", "cls", "dunder", "state")

    def __init__(self, cls: Glob | None, args: Any) -> None:
        self.cls = cls
        self.args = args
        self.state: Any = None
        self.dunder = False

    def __repr__(self) -> str:
        return f"<result of {self.cls!r}(...)>" if self.cls else "<computed object>"


class Big:
    """A byte or text constant too long to keep: where it is and how it starts."""

    __slots__ = ("head", "length", "offset", "text")

    def __init__(self, offset: int, length: int, head: bytes, text: bool) -> None:
        self.offset = offset
        self.length = length
        self.head = head
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.length}-byte {'text' if self.text else 'bytes'}>"


class Pers:
    """A persistent id (torch storages); loaded by the loader's own ``persistent_load``."""

    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid

    def __repr__(self) -> str:
        return "<persistent object>"


class SList:
    """A list (or set) value: the first CAP items and the count."""

    __slots__ = ("items", "n")

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = []
        self.n = 0
        if items:
            self.extend(items)

    def extend(self, items: list[Any]) -> None:
        room = CAP - len(self.items)
        if room > 0:
            self.items.extend(items[:room])
        self.n += len(items)


class SDict:
    """A dict value: the first CAP pairs, the count, and whether any key is a dunder name."""

    __slots__ = ("dunder", "n", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.n = 0
        self.dunder: str | None = None

    def update(self, pairs: list[tuple[Any, Any]]) -> None:
        for k, _ in pairs:
            if (
                self.dunder is None
                and isinstance(k, str)
                and _DUNDER.match(k)
                and k not in _HARMLESS_DUNDER_KEYS
            ):
                self.dunder = k
        room = CAP - len(self.pairs)
        if room > 0:
            self.pairs.extend(pairs[:room])
        self.n += len(pairs)

    def get(self, key: str) -> Any:
        for k, v in self.pairs:
            if k == key:
                return v
        return None


_CONSTANTS = (bool, int, float, str, bytes, tuple, SList, SDict, Big)


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


OPAQUE = _Opaque()


def describe(value: Any) -> str:
    """A short human description of a symbolic value for messages."""
    if isinstance(value, str | bytes):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, tuple | int | float | bool) or value is None:
        return type(value).__name__ if isinstance(value, tuple) else repr(value)
    return repr(value)


@dataclass
class Outcome:
    """How a run ended: at STOP (``complete``) or at ``error`` (offset ``end``)."""

    complete: bool
    end: int
    value: Any
    imports: int
    error: str | None = None


class PickleMachine:
    """Runs one pickle stream symbolically from ``start`` in ``src``.

    ``tentative`` runs read bytes that may not be a pickle at all (data after a stream,
    raw array bytes): findings are held back until :meth:`commit` and identifiers that
    cannot be imported do not count as imports. ``torchscript``: the pickle belongs to a
    TorchScript archive, whose ``__torch__.*`` names are classes compiled from the
    archive's code (reported as not analysed), not Python imports.
    """

    def __init__(
        self,
        src: Source,
        start: int,
        ctx: Ctx,
        *,
        tentative: bool = False,
        joblib: bool = True,
        torchscript: bool = False,
        max_ops: int | None = None,
    ) -> None:
        self.src = src
        self.start = start
        self.cur = Cursor(src, start)
        self.ctx = ctx
        self.tentative = tentative
        self.joblib = joblib
        self.torchscript = torchscript
        self.max_ops = max_ops or ctx.options.max_pickle_ops
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.imports = 0
        self.op_offset = start
        self.value: Any = None
        self.persistent_ids: list[Any] = []
        self.pending: list[tuple[str, str, int | None, str | None]] = []
        self.raw_imports: list[tuple[str, str]] = []
        """Names the opcodes hand to ``find_class`` (GLOBAL, STACK_GLOBAL, INST), unmapped."""
        self.calls = 0
        self.unfollowable = False
        """Reported UNSAFE for what stand-ins cannot follow (computed names, EXT codes)."""
        self.edits: list[Edit] = []
        """Constants skipped by offset, for the CPython reading (see unpickle_probe)."""
        self.skips: dict[int, int] = {}
        """joblib's raw arrays: where reading jumps from and to."""
        self._ops = self._opcode_table()

    # -- driving ---------------------------------------------------------------------

    def run(self) -> Outcome:
        cur = self.cur
        ops = self._ops
        n = 0
        limit = self.max_ops
        try:
            while True:
                pos = cur._pos  # inlined Cursor.byte(): this loop is the scan's hot path
                if pos < len(cur._buf):
                    code = cur._buf[pos]
                    cur._pos = pos + 1
                    self.op_offset = cur._base + pos
                else:
                    self.op_offset = cur.tell()
                    code = cur.byte()
                    if code < 0:
                        raise Malformed("stream ends before the STOP opcode")
                handler = ops.get(code)
                if handler is None:
                    raise Malformed(f"unknown opcode 0x{code:02x}")
                n += 1
                if n > limit:
                    raise Malformed(f"more than {limit} opcodes")
                if handler():
                    return Outcome(True, cur.tell(), self.value, self.imports)
        except Malformed as exc:
            return Outcome(False, self.op_offset, None, self.imports, str(exc))
        except (IndexError, KeyError, ValueError, TypeError, struct.error, OverflowError) as exc:
            reason = "stack underflow" if isinstance(exc, IndexError) else str(exc) or repr(exc)
            return Outcome(False, self.op_offset, None, self.imports, reason)
        except RecursionError:
            return Outcome(False, self.op_offset, None, self.imports, "nesting too deep")

    def commit(self) -> None:
        """Report the findings a tentative run held back."""
        for rule, msg, offset, construct in self.pending:
            self.ctx.report(rule, msg, offset=offset, construct=construct)
        self.pending.clear()

    def _flag(
        self,
        rule: str,
        message: str,
        offset: int | None = None,
        construct: str | None = None,
    ) -> None:
        at = self.op_offset if offset is None else offset
        if self.tentative:
            self.pending.append((rule, message, at, construct))
        else:
            self.ctx.report(rule, message, offset=at, construct=construct)

    # -- reading arguments -------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        if n < 0:
            raise Malformed("negative length")
        out = self.cur.take(n)
        if len(out) != n:
            raise Malformed("argument runs past the end of the stream")
        return out

    def _u1(self) -> int:
        b = self.cur.byte()
        if b < 0:
            raise Malformed("argument runs past the end of the stream")
        return b

    def _line(self) -> bytes:
        line = self.cur.line(MAX_LINE)
        if line is None:
            raise Malformed("text argument without newline")
        return line[:-1]

    def _u(self, n: int) -> int:
        return int.from_bytes(self._take(n), "little")

    def _const(self, n: int, kind: str) -> Any:
        """Read a length-prefixed constant: ``bytes``, ``utf8`` or ``latin1`` text."""
        if n > KEEP:
            offset = self.cur.tell()
            if n > self.cur.remaining():
                raise Malformed("constant runs past the end of the stream")
            width = offset - self.op_offset - 1
            self.edits.append(Edit(offset - width, width, n))
            head = self.cur.take(64)
            self.cur.seek(offset + n)
            big = Big(offset, n, head, kind != "bytes")
            self._sniff_nested(big, offset)
            return big
        data = self._take(n)
        if data[:1] in _NESTED_STARTS:
            self._sniff_nested(data, self.cur.tell() - n)
        if kind == "bytes":
            return data
        return data.decode("utf-8", "surrogatepass") if kind == "utf8" else data.decode("latin-1")

    # -- stack helpers -----------------------------------------------------------------

    def _pop_mark(self) -> list[Any]:
        items = self.stack
        if not self.metastack:
            raise Malformed("MARK missing")
        self.stack = self.metastack.pop()
        return items

    def _push(self, value: Any) -> None:
        self.stack.append(value)

    def _memo_put(self, index: int, value: Any) -> None:
        if index < 0:
            raise Malformed("negative memo index")
        if len(self.memo) >= self.ctx.options.max_memo and index not in self.memo:
            raise Malformed(f"more than {self.ctx.options.max_memo} memo entries")
        self.memo[index] = value

    def _memo_get(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise Malformed(f"memo entry {index} was never stored") from None

    # -- imports and calls ---------------------------------------------------------------

    def _import(self, module: str, name: str, via: str, offset: int | None = None) -> Glob:
        at = self.op_offset if offset is None else offset
        if via in ("GLOBAL", "STACK_GLOBAL", "INST"):
            self.raw_imports.append((module, name))
        module, name = resolve_name(module, name, self.proto)
        glob = Glob(module, name)
        if self.tentative and not (is_dotted_identifier(module) and is_dotted_identifier(name)):
            raise Malformed("not an importable name")
        self.imports += 1
        allowlist = self.ctx.allowlist
        glob.check = allowlist.check_for(module, name)
        compiled = self.torchscript and (module == "__torch__" or module.startswith("__torch__."))
        if glob.check is None and not compiled and not allowlist.allows(module, name):
            glob.denied = True
            dangerous = allowlist.is_dangerous(module, name)
            self._flag(
                "pickle.global-dangerous" if dangerous else "pickle.global-not-allowed",
                f"{via} imports {module}.{name}"
                + ("" if dangerous else ", which is not in the allowlist"),
                at,
                f"{module}.{name}",
            )
        elif not self.tentative:
            self.ctx.file.globals.add(glob.key)
        return glob

    def _call(self, func: Any, args: Any, kind: str) -> Any:
        self.calls += 1
        if isinstance(func, _CONSTANTS) or func is None:
            raise Malformed(f"{kind} calls a constant")
        if not isinstance(func, Glob):
            self._flag(
                "pickle.call-on-non-global",
                f"{kind} calls {describe(func)}, not an allowlisted global",
                construct=kind,
            )
            return Obj(None, args)
        loose = _checked_value(args)
        if loose is not None and not (
            func.check is ArgCheck.RNG_CTOR and loose.key == _BIT_GENERATOR_CTOR
        ):
            return self._reject(loose, f"is passed as a value to {func!r}, which may call it")
        if func.check is not None and not func.denied:
            return self._checked_call(func, args if isinstance(args, tuple) else ())
        return Obj(func, args)

    def _reject(self, func: Glob, why: str) -> Obj:
        self._flag(
            "pickle.checked-call-rejected",
            f"{func.module}.{func.name} {why}",
            construct=f"{func.module}.{func.name}",
        )
        return Obj(func, None)

    def _checked_call(self, func: Glob, args: tuple[Any, ...]) -> Any:
        check = func.check
        if check is ArgCheck.GETATTR:
            if len(args) == 2 and isinstance(args[0], Glob) and isinstance(args[1], str):
                target = args[0]
                if target.denied or target.check is not None:
                    return self._reject(func, f"reads an attribute of {target!r}")
                return self._import(target.module, f"{target.name}.{args[1]}", "getattr")
            return self._reject(func, "is called on a computed object or name")
        if check is ArgCheck.NAMED_GLOBAL:
            if len(args) == 2 and all(isinstance(a, str) for a in args):
                return self._import(args[0], args[1], f"{func.name}()")
            return self._reject(func, "is called with computed names")
        if check is ArgCheck.TEXT_CODEC:
            encoding = args[1] if len(args) > 1 else "utf-8"
            if isinstance(encoding, str) and encoding.lower().replace("_", "-") in TEXT_CODECS:
                return Obj(func, args)
            return self._reject(func, f"is called with codec {describe(encoding)}")
        if check is ArgCheck.TORCH_REBUILD:
            rebuild = args[0] if args else None
            if (
                len(args) == 4
                and isinstance(rebuild, Glob)
                and rebuild.module == "torch._utils"
                and rebuild.name.startswith("_rebuild_")
                and not rebuild.denied
                and isinstance(args[1], Glob)
            ):
                return Obj(func, args)
            return self._reject(func, "is called with something other than a tensor rebuild")
        if check is ArgCheck.RNG_CTOR:
            ctor = args[1] if len(args) > 1 else None
            if (
                len(args) <= 2
                and (ctor is None or (isinstance(ctor, Glob) and ctor.key == _BIT_GENERATOR_CTOR))
                and (not args or _is_bit_generator(args[0]))
            ):
                return Obj(func, args)
            return self._reject(func, "is called with a non-default bit generator constructor")
        if check is ArgCheck.BIT_GENERATOR:
            if len(args) <= 1 and (not args or _is_bit_generator(args[0], instance=False)):
                return Obj(func, args)
            return self._reject(func, "is called with something other than a bit generator")
        if check is ArgCheck.GLOBAL_TYPES:
            if len(args) >= 2 and isinstance(args[0], Glob) and isinstance(args[1], Glob):
                return Obj(args[0], args)
            return self._reject(func, "is called with classes that are not globals")
        data = _constant_bytes(args[0]) if len(args) == 1 else None
        if data is not None:
            self._scan_nested_file(data)
            return Obj(func, args)
        return self._reject(func, "is called without a constant byte string")

    def _scan_nested_file(self, data: bytes | Big) -> None:
        name = f"<bytes@{self.op_offset}>"
        if isinstance(data, Big) and data.text and data.length > self.ctx.options.max_header_bytes:
            self.ctx.report("limit.exceeded", f"{data.length}-byte text for a nested torch file")
            return
        if isinstance(data, Big) and data.text:
            text = self.src.read_at(data.offset, data.length).decode("utf-8", "surrogatepass")
            data = text.encode("latin-1", "replace")
        if isinstance(data, Big):
            self.ctx.scan(self.src.window(data.offset, data.length), name)
        else:
            self.ctx.scan(Source(io.BytesIO(data)), name)

    def _sniff_nested(self, data: bytes | Big, offset: int) -> None:
        """Analyse byte strings that are pickles themselves (an application may load them)."""
        head = data.head if isinstance(data, Big) else data
        length = data.length if isinstance(data, Big) else len(data)
        if length < 4 or self.ctx.depth >= self.ctx.options.max_depth:
            return
        if head[:2] not in PROTO_MAGIC and not (head[:1] in (b"c", b"(") and b"\n" in head):
            return
        if isinstance(data, Big):
            src = self.src.window(data.offset, data.length)
        else:
            src = Source(io.BytesIO(data))
        inner = PickleMachine(src, 0, self.ctx.child(f"<bytes@{offset}>"), tentative=True)
        out = inner.run()
        if out.complete or out.imports:
            inner.commit()
            if out.complete and inner.imports:
                inner.ctx.report("pickle.nested-pickle", "byte string holds a pickle", offset=0)
            if not out.complete:
                inner.ctx.report("pickle.malformed", f"nested pickle: {out.error}", offset=out.end)

    # -- containers and state ------------------------------------------------------------

    def _mutate(self, target: Any, what: str) -> None:
        if isinstance(target, Glob):
            self._flag(
                "pickle.mutates-global",
                f"{what} on the global {target!r}",
                construct=f"{target.module}.{target.name}",
            )

    def _append(self, items: list[Any]) -> None:
        target = self.stack[-1]
        if isinstance(target, SList):
            target.extend(items)
        elif isinstance(target, Glob):
            self._mutate(target, "APPEND")
        elif not isinstance(target, Obj | Pers | _Opaque):
            raise Malformed("APPEND to a value that is not a list")

    def _setitems(self, pairs: list[tuple[Any, Any]]) -> None:
        target = self.stack[-1]
        if isinstance(target, SDict):
            target.update(pairs)
        elif isinstance(target, Glob):
            self._mutate(target, "SETITEM")
        elif isinstance(target, Obj):
            for k, _ in pairs:
                if isinstance(k, str) and _DUNDER.match(k) and k not in _HARMLESS_DUNDER_KEYS:
                    target.dunder = True
        elif not isinstance(target, Pers | _Opaque):
            raise Malformed("SETITEM on a value that is not a dict")

    def _build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Glob):
            self._flag(
                "pickle.build-on-global",
                f"BUILD sets state on the global {inst!r}",
                construct=f"{inst.module}.{inst.name}",
            )
            return
        dunder = _dunder_in(state)
        if dunder:
            self._flag(
                "pickle.dunder-state",
                f"BUILD state sets {dunder} on {describe(inst)}",
                construct=dunder,
            )
        if isinstance(inst, Obj):
            inst.state = state
            if self.joblib and inst.cls is not None and inst.cls.key in JOBLIB_WRAPPERS:
                self._joblib_array(inst)

    def _joblib_array(self, wrapper: Obj) -> None:
        """Skip (or unpickle, for object dtype) the array joblib wrote after this wrapper."""
        state = wrapper.state
        layout = _array_layout(state) if isinstance(state, SDict) else None
        if layout is None:
            raise Malformed("joblib array wrapper without a readable dtype and shape")
        itemsize, count, has_object, aligned = layout
        cur = self.cur
        begin = cur.tell()
        if has_object:
            inner = PickleMachine(self.src, begin, self.ctx, joblib=False)
            out = inner.run()
            if not out.complete:
                raise Malformed(f"joblib object array: {out.error}")
            from securenb.scan.parity import cross_check_machine

            cross_check_machine(self.src, self.ctx, inner, out)
            cur.seek(out.end)
            self.skips[begin] = out.end
            return
        if aligned:
            pad = cur.byte()
            if pad < 0:
                raise Malformed("joblib array padding missing")
            cur.skip(pad)
        nbytes = itemsize * count
        if nbytes > cur.remaining():
            raise Malformed("joblib array data runs past the end of the file")
        self._probe_raw(cur.tell())
        cur.skip(nbytes)
        self.skips[begin] = cur.tell()

    def _probe_raw(self, offset: int) -> None:
        """Read raw bytes as a plain ``pickle.load`` would: report imports found there."""
        if self.ctx.depth >= self.ctx.options.max_depth:
            return
        probe = PickleMachine(
            self.src, offset, self.ctx, tentative=True, joblib=False, max_ops=TENTATIVE_OPS
        )
        out = probe.run()
        if out.imports:
            probe.commit()
        if out.error is not None and out.error.startswith("more than"):
            self.ctx.report(
                "limit.exceeded",
                f"raw array bytes read as opcodes: {out.error} without an end",
                offset=offset,
            )

    # -- the opcode table ------------------------------------------------------------------

    def _opcode_table(self) -> dict[int, Any]:
        s = self
        push = s._push

        def proto() -> None:
            p = s._u1()
            if p > 5:
                raise Malformed(f"unsupported protocol {p}")
            s.proto = p

        def frame() -> None:
            s._take(8)

        def stop() -> bool:
            s.value = s.stack.pop()
            return True

        def mark() -> None:
            s.metastack.append(s.stack)
            s.stack = []

        def pop() -> None:
            if s.stack:
                s.stack.pop()
            else:
                s._pop_mark()

        def pop_mark() -> None:
            s._pop_mark()

        def dup() -> None:
            push(s.stack[-1])

        def int_() -> None:
            data = s._line()
            push(False if data == b"00" else True if data == b"01" else int(data, 0))

        def long_() -> None:
            data = s._line()
            push(int(data[:-1] if data.endswith(b"L") else data, 0))

        def long4() -> None:
            n = struct.unpack("<i", s._take(4))[0]
            if n > KEEP:
                if not 0 <= n <= s.cur.remaining():
                    raise Malformed("LONG4 runs past the end of the stream")
                s.edits.append(Edit(s.cur.tell() - 4, 4, n))
                s.cur.skip(n)
                push(OPAQUE)
            else:
                push(int.from_bytes(s._take(n), "little", signed=True))

        def string() -> None:
            data = s._line()
            if len(data) < 2 or data[0] != data[-1] or data[:1] not in (b"'", b'"'):
                raise Malformed("STRING argument is not quoted")
            raw = codecs.escape_decode(data[1:-1])[0]
            s._sniff_nested(raw, s.op_offset)
            push(raw.decode("latin-1"))

        def unicode_() -> None:
            push(s._line().decode("raw-unicode-escape"))

        def global_() -> None:
            module = s._line().decode("utf-8")
            name = s._line().decode("utf-8")
            push(s._import(module, name, "GLOBAL"))

        def stack_global() -> None:
            name = s.stack.pop()
            module = s.stack.pop()
            if isinstance(module, str) and isinstance(name, str):
                push(s._import(module, name, "STACK_GLOBAL"))
                return
            glob = Glob(describe(module), describe(name))
            glob.denied = True
            if s.tentative:
                raise Malformed("STACK_GLOBAL on computed names")
            s.unfollowable = True
            s.imports += 1
            s._flag(
                "pickle.dynamic-global",
                f"STACK_GLOBAL imports a name computed at load time ({glob!r})",
                construct="STACK_GLOBAL",
            )
            push(glob)

        def inst() -> None:
            module = s._line().decode("utf-8")
            name = s._line().decode("utf-8")
            cls = s._import(module, name, "INST")
            push(s._call(cls, tuple(s._pop_mark()), "INST"))

        def obj() -> None:
            items = s._pop_mark()
            if not items:
                raise Malformed("OBJ without a class")
            push(s._call(items[0], tuple(items[1:]), "OBJ"))

        def newobj() -> None:
            args = s.stack.pop()
            cls = s.stack.pop()
            push(s._call(cls, args, "NEWOBJ"))

        def newobj_ex() -> None:
            s.stack.pop()
            args = s.stack.pop()
            cls = s.stack.pop()
            push(s._call(cls, args, "NEWOBJ_EX"))

        def reduce() -> None:
            args = s.stack.pop()
            func = s.stack.pop()
            push(s._call(func, args, "REDUCE"))

        def ext(size: int) -> Any:
            def handler() -> None:
                code = s._u(size)
                if s.tentative:
                    raise Malformed("extension code in raw data")
                s.unfollowable = True
                s.imports += 1
                glob = Glob("<extension>", str(code))
                glob.denied = True
                s._flag(
                    "pickle.extension-code",
                    f"EXT{size} imports extension code {code} from the copyreg registry",
                    construct=f"EXT{size}:{code}",
                )
                push(glob)

            return handler

        def persid() -> None:
            push(Pers(s._line().decode("ascii")))

        def binpersid() -> None:
            pid = s.stack.pop()
            if len(s.persistent_ids) < s.ctx.options.max_members:
                s.persistent_ids.append(pid)
            push(_persistent_value(pid))

        def build() -> None:
            s._build()

        def tuple_n(n: int) -> Any:
            def handler() -> None:
                if n:
                    items = tuple(s.stack[-n:])
                    if len(items) != n:
                        raise Malformed("stack underflow")
                    del s.stack[-n:]
                    push(items)
                else:
                    push(())

            return handler

        def tuple_mark() -> None:
            push(tuple(s._pop_mark()))

        def list_mark() -> None:
            push(SList(s._pop_mark()))

        def dict_mark() -> None:
            items = s._pop_mark()
            d = SDict()
            d.update(list(zip(items[::2], items[1::2], strict=False)))
            push(d)

        def append() -> None:
            value = s.stack.pop()
            s._append([value])

        def appends() -> None:
            items = s._pop_mark()
            s._append(items)

        def setitem() -> None:
            value = s.stack.pop()
            key = s.stack.pop()
            s._setitems([(key, value)])

        def setitems() -> None:
            items = s._pop_mark()
            s._setitems(list(zip(items[::2], items[1::2], strict=False)))

        def additems() -> None:
            items = s._pop_mark()
            target = s.stack[-1]
            if isinstance(target, SList):
                target.extend(items)
            else:
                s._mutate(target, "ADDITEMS")

        def frozenset_() -> None:
            push(SList(s._pop_mark()))

        def get() -> None:
            s._memo_get(int(s._line()))

        def put() -> None:
            s._memo_put(int(s._line()), s.stack[-1])

        def memoize() -> None:
            s._memo_put(len(s.memo), s.stack[-1])

        def readonly_buffer() -> None:
            s.stack[-1]

        table: dict[bytes, Any] = {
            b"\x80": proto,
            b"\x95": frame,
            b".": stop,
            b"(": mark,
            b"0": pop,
            b"1": pop_mark,
            b"2": dup,
            b"N": lambda: push(None),
            b"\x88": lambda: push(True),
            b"\x89": lambda: push(False),
            b"I": int_,
            b"J": lambda: push(struct.unpack("<i", s._take(4))[0]),
            b"K": lambda: push(s._u1()),
            b"M": lambda: push(s._u(2)),
            b"L": long_,
            b"\x8a": lambda: push(int.from_bytes(s._take(s._u1()), "little", signed=True)),
            b"\x8b": long4,
            b"F": lambda: push(float(s._line())),
            b"G": lambda: push(struct.unpack(">d", s._take(8))[0]),
            b"S": string,
            b"T": lambda: push(s._const(struct.unpack("<i", s._take(4))[0], "latin1")),
            b"U": lambda: push(s._const(s._u1(), "latin1")),
            b"V": unicode_,
            b"X": lambda: push(s._const(s._u(4), "utf8")),
            b"\x8c": lambda: push(s._const(s._u1(), "utf8")),
            b"\x8d": lambda: push(s._const(s._u(8), "utf8")),
            b"B": lambda: push(s._const(s._u(4), "bytes")),
            b"C": lambda: push(s._const(s._u1(), "bytes")),
            b"\x8e": lambda: push(s._const(s._u(8), "bytes")),
            b"\x96": lambda: push(s._const(s._u(8), "bytes")),
            b"\x97": lambda: push(OPAQUE),
            b"\x98": readonly_buffer,
            b")": tuple_n(0),
            b"\x85": tuple_n(1),
            b"\x86": tuple_n(2),
            b"\x87": tuple_n(3),
            b"t": tuple_mark,
            b"]": lambda: push(SList()),
            b"l": list_mark,
            b"}": lambda: push(SDict()),
            b"d": dict_mark,
            b"\x8f": lambda: push(SList()),
            b"\x90": additems,
            b"\x91": frozenset_,
            b"a": append,
            b"e": appends,
            b"s": setitem,
            b"u": setitems,
            b"g": get,
            b"h": lambda: s._memo_get(s._u1()),
            b"j": lambda: s._memo_get(s._u(4)),
            b"p": put,
            b"q": lambda: s._memo_put(s._u1(), s.stack[-1]),
            b"r": lambda: s._memo_put(s._u(4), s.stack[-1]),
            b"\x94": memoize,
            b"c": global_,
            b"\x93": stack_global,
            b"i": inst,
            b"o": obj,
            b"\x81": newobj,
            b"\x92": newobj_ex,
            b"R": reduce,
            b"b": build,
            b"\x82": ext(1),
            b"\x83": ext(2),
            b"\x84": ext(4),
            b"P": persid,
            b"Q": binpersid,
        }
        return {k[0]: v for k, v in table.items()}


_BIT_GENERATOR_CTOR = "numpy.random._pickle:__bit_generator_ctor"


def _persistent_value(pid: Any) -> Any:
    """What the loader's ``persistent_load`` returns: torch's legacy format gives back the
    class of a saved module (``("module", cls, file, source)``), anything else is opaque."""
    if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module" and isinstance(pid[1], Glob):
        return pid[1]
    return Pers(pid)


def _is_bit_generator(value: Any, instance: bool = True) -> bool:
    """A default bit generator: its name, its class, or (``instance``) one built by numpy."""
    if isinstance(value, str):
        return value in BIT_GENERATORS
    if isinstance(value, Glob):
        return value.module.startswith("numpy.random.") and value.name in BIT_GENERATORS
    return (
        instance
        and isinstance(value, Obj)
        and value.cls is not None
        and (value.cls.key == _BIT_GENERATOR_CTOR or _is_bit_generator(value.cls, False))
    )


def _checked_value(args: Any) -> Glob | None:
    """A checked callable handed over as an argument (one container level deep)."""
    items = args if isinstance(args, tuple) else (args,)
    for item in items:
        inner: Any = item
        if isinstance(item, SList):
            inner = item.items
        elif isinstance(item, SDict):
            inner = [v for _, v in item.pairs]
        for value in inner if isinstance(inner, list | tuple) else (inner,):
            if isinstance(value, Glob) and value.check is not None and not value.denied:
                return value
    return None


def _constant_bytes(value: Any) -> bytes | Big | None:
    """Bytes known before load: a constant, or protocol 2's ``_codecs.encode(text, "latin1")``."""
    if isinstance(value, bytes) or (isinstance(value, Big) and not value.text):
        return value
    if isinstance(value, Obj) and value.cls is not None and value.cls.key == "_codecs:encode":
        args = value.args if isinstance(value.args, tuple) else ()
        if len(args) == 2 and str(args[1]).lower().replace("_", "-") in ("latin1", "latin-1"):
            text = args[0]
            if isinstance(text, str):
                return text.encode("latin-1", "replace")
            if isinstance(text, Big):
                return text
    return None


def _dunder_in(state: Any) -> str | None:
    """The first dunder attribute name a BUILD state would set, if any."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, SDict) and part.dunder:
            return part.dunder
        if isinstance(part, Obj) and part.dunder:
            return "a dunder attribute"
    return None


def _array_layout(state: SDict) -> tuple[int, int, bool, bool] | None:
    """(itemsize, count, has_object, aligned) of a joblib NumpyArrayWrapper, if readable."""
    dtype = state.get("dtype")
    shape = state.get("shape")
    if not isinstance(dtype, Obj) or dtype.cls is None or dtype.cls.key != "numpy:dtype":
        return None
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    descr = dtype.args[0] if isinstance(dtype.args, tuple) and dtype.args else None
    if not isinstance(descr, str) or not descr:
        return None
    dstate = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = dstate[7] if len(dstate) > 7 and isinstance(dstate[7], int) else 0
    has_object = descr[0] == "O" or bool(flags & 1)
    elsize = dstate[5] if len(dstate) > 5 and isinstance(dstate[5], int) else -1
    if elsize <= 0:
        digits = descr[1:]
        if not digits.isdigit():
            return None
        elsize = int(digits)
    count = 1
    for d in shape:
        count *= d
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return elsize, count, has_object, aligned
