"""CPython's own unpicklers, driven over inert stand-ins in a resource-limited child.

The symbolic machine in :mod:`securenb.scan.pickle_analysis` re-implements the unpickler;
every place where it reads bytes differently from ``_pickle.c`` (number parsing, line
lengths, frames, the memo) is a way to hide an import from it. So the same bytes are also
read by the loader's own code: ``_pickle.Unpickler`` (``pickle.load``, ``torch.load``,
``np.load``) or ``pickle._Unpickler`` (``joblib.load``), subclassed so that ``find_class``
and ``persistent_load`` return stand-ins that record what a load would import and call
and never run anything. Framing, number parsing, memo and extension-registry handling are
then the loader's by construction.

The reading happens in :mod:`securenb.scan.unpickle_child`: a small helper process
(started once, standard library only) forks a grandchild per request with an
address-space and CPU limit (a memo index of 2**31 or a bomb costs the grandchild, not the
scan), which reads the file (its descriptor is passed over a Unix socket) through a stream
that serves ``read``/``readline`` exactly as asked (no ``peek``, so the unpickler asks for
each argument in turn). Constants the machine skipped by offset (tensors' bytes) are served
with their length field rewritten to 0, but only when the unpickler reads that length
field exactly where the machine found it; any other reading sees the original bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.scan.source import Source

CHILD = Path(__file__).with_name("unpickle_child.py")
BOOT = (
    "import sys, importlib.util as u\n"
    "s = u.spec_from_file_location('securenb_unpickle_child', sys.argv[1])\n"
    "m = u.module_from_spec(s)\n"
    "s.loader.exec_module(m)\n"
    "m.main(int(sys.argv[2]))\n"
)
"""How the helper starts: CHILD imported as a module, so that its bytecode is cached as
any module's is (a script run by path is compiled from source at every start)."""
ANSWER_SECONDS = 60.0
"""How long to wait for the helper (the grandchild's own wall limit is 30 s)."""


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
    request = {
        "base": src.start,
        "size": src.size,
        "start": start,
        "edits": [(e.at, e.width, e.length) for e in edits],
        "skips": sorted((skips or {}).items()),
        "python": python,
        "max_streams": max_streams,
        "has_fd": src.fd is not None,
    }
    with _HELPER.lock:
        try:
            answer = _HELPER.ask(request, src)
        except (OSError, ValueError) as exc:
            _HELPER.stop()
            return Probe([], f"CPython's unpickler could not run: {exc}")
    if "failure" in answer:
        return Probe([], str(answer["failure"]))
    return Probe([_from_json(item) for item in answer["streams"]])


class _Helper:
    """The helper process (started on first use, again if it died) and its socket."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.reader: Any = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = -1

    def start(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", BOOT, str(CHILD), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # it answers on the socket; a crash is a failed probe
            env={"PATH": os.environ.get("PATH", "")},
            start_new_session=True,  # a Ctrl-C in the terminal is the scan's, not the helper's
        )
        theirs.close()
        ours.settimeout(ANSWER_SECONDS)
        self.sock, self.reader, self.pid = ours, ours.makefile("rb"), os.getpid()
        return ours

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.pid == os.getpid():
            self.proc.kill()
            self.proc.wait()
        self.sock = self.reader = self.proc = None

    def ask(self, request: dict[str, Any], src: Source) -> dict[str, Any]:
        sock = self.sock if self.sock is not None and self.pid == os.getpid() else self.start()
        header = json.dumps(request).encode()
        sock.sendall(len(header).to_bytes(8, "little") + header)
        fd = src.fd
        if fd is not None:
            socket.send_fds(sock, [b"F"], [fd])
        elif src.size:
            sock.sendall(src.read_at(0, src.size))
        line = self.reader.readline()
        if not line:
            raise OSError("the unpickler helper stopped")
        answer: dict[str, Any] = json.loads(line)
        return answer


_HELPER = _Helper()


def warm_up() -> None:
    """Start the helper now, so its start overlaps with the rest of the scan."""
    with _HELPER.lock:
        if _HELPER.sock is None or _HELPER.pid != os.getpid():
            with contextlib.suppress(OSError):  # reported by the first probe that needs it
                _HELPER.start()


def helper_pid() -> int | None:
    """The helper's process id (benchmarks read its peak memory)."""
    return _HELPER.proc.pid if _HELPER.proc is not None else None


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
