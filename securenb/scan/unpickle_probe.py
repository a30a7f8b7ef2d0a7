"""CPython's own unpicklers, driven over inert stand-ins in a resource-limited child.

The symbolic machine in :mod:`securenb.scan.pickle_analysis` re-implements the unpickler;
every place where it reads bytes differently from ``_pickle.c`` (number parsing, line
lengths, frames, the memo) is a way to hide an import from it. So the same bytes are also
read by the loader's own code: ``_pickle.Unpickler`` (``pickle.load``, ``torch.load``,
``np.load``) or ``pickle._Unpickler`` (``joblib.load``), subclassed so that ``find_class``
and ``persistent_load`` return stand-ins that record what a load would import and call
and never run anything. Framing, number parsing, memo and extension-registry handling are
then the loader's by construction.

The reader runs in a forked child with an address-space and CPU limit (a memo index of
2**31 or a bomb costs the child, not the scan), reading the file through a stream that
serves ``read``/``readline`` exactly as asked (no ``peek``, so the unpickler asks for each
argument in turn). Constants the machine skipped by offset (tensors' bytes) are served
with their length field rewritten to 0, but only when the unpickler reads that length
field exactly where the machine found it; any other reading sees the original bytes.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from securenb.scan.source import Source

MAX_READ = 64 << 20
"""Largest single read served to the unpickler (a frame or a constant not edited away)."""
MAX_LINE = 64 << 20
"""Longest text line served in full; longer lines are cut (their position is kept)."""
MAX_EVENTS = 4096
"""Events kept per stream; further imports still count."""
MEMORY_BUDGET = 512 << 20
"""Address space the child may add to what it inherited."""
CPU_SECONDS = 20
WALL_SECONDS = 30.0


@dataclass
class Edit:
    """A constant read by offset: its length field (``width`` bytes) and payload length."""

    at: int
    width: int
    length: int


@dataclass
class StreamTrace:
    """What one ``load()`` call imported and called, and where it stopped."""

    imports: list[tuple[str, str, int]] = field(default_factory=list)
    calls: int = 0
    value_calls: list[int] = field(default_factory=list)
    global_state: list[tuple[str, int]] = field(default_factory=list)
    persistent: int = 0
    end: int = 0
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None


@dataclass
class Probe:
    """The streams read from ``start`` in order, or why the child gave no answer."""

    streams: list[StreamTrace]
    failure: str | None = None


def probe(
    src: Source,
    start: int,
    *,
    edits: list[Edit] | tuple[Edit, ...] = (),
    skips: dict[int, int] | None = None,
    python: bool = False,
    max_streams: int = 1,
) -> Probe:
    """Unpickle ``src`` from ``start`` with stand-ins, up to ``max_streams`` streams.

    ``python`` selects the pure-Python unpickler (joblib's base class); ``skips`` maps an
    offset to where reading continues when a read starts there (joblib's raw arrays).
    """
    if not hasattr(os, "fork"):
        return Probe([], "no fork() on this platform")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(rfd)
            _limit_child()
            streams = _run(src, start, edits, skips or {}, python, max_streams)
            data = json.dumps([_as_json(s) for s in streams]).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    return _collect(pid, rfd)


def _collect(pid: int, rfd: int) -> Probe:
    chunks: list[bytes] = []
    deadline = time.monotonic() + WALL_SECONDS
    failure: str | None = None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                failure = f"CPython's unpickler did not finish within {WALL_SECONDS:.0f} s"
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    if failure is None and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        failure = "CPython's unpickler was stopped by its resource limits"
    if failure is not None:
        return Probe([], failure)
    raw = json.loads(b"".join(chunks))
    return Probe([_from_json(item) for item in raw])


def _limit_child() -> None:
    with open("/proc/self/statm", "rb") as fh:
        pages = int(fh.read().split()[0])
    limit = pages * resource.getpagesize() + MEMORY_BUDGET
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _as_json(s: StreamTrace) -> dict[str, Any]:
    return {
        "imports": s.imports,
        "calls": s.calls,
        "value_calls": s.value_calls,
        "global_state": s.global_state,
        "persistent": s.persistent,
        "end": s.end,
        "error": s.error,
    }


def _from_json(d: dict[str, Any]) -> StreamTrace:
    return StreamTrace(
        imports=[(str(m), str(n), int(o)) for m, n, o in d["imports"]],
        calls=int(d["calls"]),
        value_calls=[int(o) for o in d["value_calls"]],
        global_state=[(str(k), int(o)) for k, o in d["global_state"]],
        persistent=int(d["persistent"]),
        end=int(d["end"]),
        error=d["error"],
    )


# -- the child ---------------------------------------------------------------------------


class _Stream:
    """The file as the unpickler's ``file`` argument: exact reads, edits and skips applied."""

    def __init__(
        self, src: Source, pos: int, edits: dict[int, Edit], skips: dict[int, int]
    ) -> None:
        self.src = src
        self.pos = pos
        self.edits = edits
        self.skips = skips

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_READ:
            raise MemoryError(f"read of {n} bytes")
        pos = self.skips.get(self.pos, self.pos)
        edit = self.edits.get(pos)
        if edit is not None and edit.width == n:
            self.pos = pos + n + edit.length
            return bytes(n)
        data = self.src.read_at(pos, n)
        self.pos = pos + len(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        pos = self.skips.get(self.pos, self.pos)
        start, parts, kept = pos, [], 0
        while True:
            chunk = self.src.read_at(pos, 1 << 16)
            if not chunk:
                break
            nl = chunk.find(b"\n")
            piece = chunk if nl < 0 else chunk[: nl + 1]
            pos += len(piece)
            if kept < MAX_LINE:
                parts.append(piece[: MAX_LINE - kept])
                kept += len(parts[-1])
            if nl >= 0:
                break
            if pos - start > 16 * MAX_LINE:
                raise MemoryError("line longer than the reading limit")
        self.pos = pos
        line = b"".join(parts)
        if kept >= MAX_LINE and not line.endswith(b"\n"):
            line += b"\n"
        return line


def _run(
    src: Source,
    start: int,
    edits: list[Edit] | tuple[Edit, ...],
    skips: dict[int, int],
    python: bool,
    max_streams: int,
) -> list[StreamTrace]:
    import copyreg
    import pickle

    copyreg._extension_cache.clear()  # type: ignore[attr-defined]
    stream = _Stream(src, start, {e.at: e for e in edits}, skips)
    base: Any = pickle._Unpickler if python else pickle.Unpickler
    traces: list[StreamTrace] = []
    while len(traces) < max_streams and stream.pos < src.size:
        trace = StreamTrace()
        traces.append(trace)
        reader = _Recorder(trace, stream)

        class Unpickler(base):  # type: ignore[misc]
            find_class = staticmethod(reader.find_class)
            persistent_load = staticmethod(reader.persistent_load)

        unpickler = Unpickler(stream, encoding="latin1", fix_imports=True)
        try:
            unpickler.load()
        except BaseException as exc:
            trace.error = type(exc).__name__
            trace.end = stream.pos
            break
        trace.end = stream.pos
    return traces


class _Recorder:
    """Answers the unpickler's imports and persistent ids with stand-ins; records them."""

    def __init__(self, trace: StreamTrace, stream: _Stream) -> None:
        self.trace = trace
        self.stream = stream
        _CURRENT[0] = self

    def find_class(self, module: Any, name: Any) -> Any:
        t = self.trace
        if len(t.imports) < MAX_EVENTS:
            t.imports.append((_text(module), _text(name), self.stream.pos))
        cls = _Meta(_text(name)[:100] or "?", (_Global,), {})
        cls._key = f"{_text(module)}:{_text(name)}"
        return cls

    def persistent_load(self, pid: Any) -> Any:
        self.trace.persistent += 1
        if (  # torch's legacy format: the saved module's class
            isinstance(pid, tuple)
            and len(pid) == 4
            and pid[0] == "module"
            and isinstance(pid[1], _Meta)
        ):
            return pid[1]
        return _Value()

    def call(self, callee: Any) -> None:
        self.trace.calls += 1
        if not isinstance(callee, _Meta) and len(self.trace.value_calls) < MAX_EVENTS:
            self.trace.value_calls.append(self.stream.pos)

    def on_global(self, cls: Any) -> None:
        if len(self.trace.global_state) < MAX_EVENTS:
            self.trace.global_state.append((str(cls._key), self.stream.pos))


_CURRENT: list[Any] = [None]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else f"<{type(value).__name__}>"


class _Meta(type):
    """The type of global stand-ins: calling one records a call and returns a value."""

    _key = "?"

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        _CURRENT[0].call(cls)
        return _Value()

    def __setitem__(cls, key: Any, value: Any) -> None:
        _CURRENT[0].on_global(cls)


class _OnGlobal:
    """A method that records a state change when reached through a global stand-in."""

    def __get__(self, inst: Any, owner: Any) -> Any:
        def method(*args: Any) -> None:
            if inst is None:
                _CURRENT[0].on_global(owner)

        return method


class _Global(metaclass=_Meta):
    """Base of the classes ``find_class`` returns (NEWOBJ needs a type)."""

    __setstate__ = _OnGlobal()
    append = _OnGlobal()
    extend = _OnGlobal()
    add = _OnGlobal()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # NEWOBJ / OBJ
        _CURRENT[0].call(cls)
        return _Value()


class _Value:
    """A call result or persistent object: accepts state and items, records calls."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _CURRENT[0].call(self)
        return _Value()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass
