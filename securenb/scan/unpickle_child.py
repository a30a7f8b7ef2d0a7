"""The child side of :mod:`securenb.scan.unpickle_probe` (standard library only).

Runs under ``python -I -S`` (imported by ``unpickle_probe.BOOT``, then ``main(FD)``): a
small helper that serves requests on a Unix socket. Each request (a JSON line, the
file's descriptor or its bytes) is read in a forked grandchild with an address-space and
CPU limit by CPython's own unpickler over inert stand-ins; the grandchild answers with
one JSON line. The helper stays small, so a fork costs about a millisecond whatever the
scanning process has imported (a process that imported torch takes ~80 ms to fork).
"""

from __future__ import annotations

import copyreg
import io
import json
import os
import pickle
import resource
import select
import signal
import socket
import sys

TYPE_CHECKING = False  # the helper's start-up time counts: do not import typing for types
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_READ = 64 << 20
"""Largest single read served to the unpickler (a frame or a constant not edited away)."""
MAX_LINE = 64 << 20
"""Longest text line served in full; longer lines are cut (their position is kept)."""
MAX_EVENTS = 4096
"""Events kept per stream; further imports still count."""
MEMORY_BUDGET = 512 << 20
"""Address space the reading may add to the helper's."""
CPU_SECONDS = 20
WALL_SECONDS = 30.0


class _Bytes:
    """What to read: a window of a file descriptor, or bytes sent with the request."""

    BLOCK = 1 << 16

    def __init__(self, fd: int | None, base: int, size: int, data: bytes) -> None:
        self.fd, self.base, self.size, self.data = fd, base, size, data
        self.block_at, self.block = -1, b""

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        n = min(n, self.size - offset)
        if self.fd is None:
            return self.data[offset : offset + n]
        if n > self.BLOCK:
            return os.pread(self.fd, n, self.base + offset)
        rel = offset - self.block_at
        if self.block_at < 0 or rel < 0 or rel + n > len(self.block):
            # the unpickler asks for a few bytes at a time: read ahead one block
            size = min(self.BLOCK, self.size - offset)
            self.block_at, self.block = offset, os.pread(self.fd, size, self.base + offset)
            rel = 0
        return self.block[rel : rel + n]


class _Stream:
    """The file as the unpickler's ``file`` argument: exact reads, edits and skips applied."""

    def __init__(
        self, src: _Bytes, pos: int, edits: dict[int, tuple[int, int]], skips: dict[int, int]
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
        if edit is not None and edit[0] == n:
            self.pos = pos + n + edit[1]
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
    src: _Bytes,
    start: int,
    edits: dict[int, tuple[int, int]],
    skips: dict[int, int],
    python: bool,
    max_streams: int,
) -> list[dict[str, Any]]:
    copyreg._extension_cache.clear()  # type: ignore[attr-defined]
    stream: Any
    if not edits and not skips and src.size <= MAX_READ:
        # nothing to rewrite: BytesIO serves the same exact reads (no peek) at C speed
        stream = io.BytesIO(src.read_at(0, src.size))
        stream.seek(start)
        where = stream.tell
    else:
        stream = _Stream(src, start, edits, skips)
        where = lambda: stream.pos  # noqa: E731
    base: Any = pickle._Unpickler if python else pickle.Unpickler
    traces: list[dict[str, Any]] = []
    while len(traces) < max_streams and where() < src.size:
        trace = _new_trace()
        traces.append(trace)
        reader = _Recorder(trace, where)

        class Unpickler(base):  # type: ignore[misc]
            find_class = staticmethod(reader.find_class)
            persistent_load = staticmethod(reader.persistent_load)

        unpickler = Unpickler(stream, encoding="latin1", fix_imports=True)
        try:
            unpickler.load()
        except BaseException as exc:
            trace["error"] = type(exc).__name__
            trace["end"] = where()
            break
        trace["end"] = where()
    return traces


def _new_trace() -> dict[str, Any]:
    return {
        "imports": [],
        "calls": 0,
        "value_calls": [],
        "global_state": [],
        "persistent": 0,
        "end": 0,
        "error": None,
    }


class _Recorder:
    """Answers the unpickler's imports and persistent ids with stand-ins; records them."""

    def __init__(self, trace: dict[str, Any], where: Callable[[], int]) -> None:
        self.trace = trace
        self.where = where
        _CURRENT[0] = self

    def find_class(self, module: Any, name: Any) -> Any:
        imports = self.trace["imports"]
        if len(imports) < MAX_EVENTS:
            imports.append((_text(module), _text(name), self.where()))
        cls = _Meta(_text(name)[:100] or "?", (_Global,), {})
        cls._key = f"{_text(module)}:{_text(name)}"
        return cls

    def persistent_load(self, pid: Any) -> Any:
        self.trace["persistent"] += 1
        if (  # torch's legacy format: the saved module's class
            isinstance(pid, tuple)
            and len(pid) == 4
            and pid[0] == "module"
            and isinstance(pid[1], _Meta)
        ):
            return pid[1]
        return _Value()

    def call(self, callee: Any) -> None:
        self.trace["calls"] += 1
        if not isinstance(callee, _Meta) and len(self.trace["value_calls"]) < MAX_EVENTS:
            self.trace["value_calls"].append(self.where())

    def on_global(self, cls: Any) -> None:
        if len(self.trace["global_state"]) < MAX_EVENTS:
            self.trace["global_state"].append((str(cls._key), self.where()))


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


# -- serving -------------------------------------------------------------------------------


def _limit() -> None:
    with open("/proc/self/statm", "rb") as fh:
        pages = int(fh.read().split()[0])
    limit = pages * resource.getpagesize() + MEMORY_BUDGET
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _answer(request: dict[str, Any], fd: int | None, data: bytes) -> bytes:
    """Read one request in a limited grandchild; its JSON answer, or a failure."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            _limit()
            src = _Bytes(fd, request["base"], request["size"], data)
            edits = {int(at): (int(w), int(n)) for at, w, n in request["edits"]}
            skips = {int(a): int(b) for a, b in request["skips"]}
            streams = _run(
                src, request["start"], edits, skips, request["python"], request["max_streams"]
            )
            out = memoryview(json.dumps({"streams": streams}).encode() + b"\n")
            while out:
                out = out[os.write(wfd, out) :]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    failure = None
    try:
        while True:
            ready, _, _ = select.select([rfd], [], [], WALL_SECONDS)
            if not ready:
                failure = f"CPython's unpickler did not finish within {WALL_SECONDS:.0f} s"
                os.kill(pid, signal.SIGKILL)
                break
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
        return json.dumps({"failure": failure}).encode() + b"\n"
    return b"".join(chunks)


def _exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes, unbuffered (a buffered reader would swallow the descriptor message)."""
    parts, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            request = json.loads(_exactly(sock, int.from_bytes(_exactly(sock, 8), "little")))
        except EOFError:
            return
        fd = None
        data = b""
        if request["has_fd"]:
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            fd = fds[0]
        elif request["size"]:
            data = _exactly(sock, request["size"])
        try:
            sock.sendall(_answer(request, fd, data))
        finally:
            if fd is not None:
                os.close(fd)


def main(fileno: int) -> None:
    """Serve requests on the socket inherited as ``fileno`` until it closes."""
    _serve(socket.socket(fileno=fileno))


if __name__ == "__main__":
    main(int(sys.argv[1]))
