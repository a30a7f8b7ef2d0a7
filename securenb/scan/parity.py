"""The symbolic machine's reading of a pickle, checked against CPython's own unpickler.

For every pickle the machine analysed, the same bytes are read by the unpickler the
loader uses (see :mod:`securenb.scan.unpickle_probe`). Both must agree on each stream:
where it ends, the names handed to ``find_class`` and the number of calls. If they do,
the machine's findings (which know the allowlist's argument rules) stand; if they do
not, the file is UNKNOWN (``pickle.parser-differential``) and every name CPython's
reading imports is checked against the allowlist on its own. Files the machine did not
read as pickles at all get the CPython reading too (``pickle.load`` reads any file from
offset 0): whatever it would import is reported.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field

from securenb.scan.allowlist import is_dotted_identifier, resolve_name
from securenb.scan.context import Ctx
from securenb.scan.pickle_analysis import Outcome, PickleMachine
from securenb.scan.source import Source
from securenb.scan.unpickle_probe import Edit, Probe, StreamTrace, probe

_OPCODES = frozenset(op.code.encode("latin-1") for op in pickletools.opcodes)
"""First bytes CPython's unpickler does not reject at once (``invalid load key``)."""


@dataclass
class MachineStream:
    """One stream as the machine read it."""

    start: int
    end: int
    complete: bool
    imports: list[tuple[str, str]]
    calls: int
    unfollowable: bool


@dataclass
class Reading:
    """The machine's streams of one source, in order, and what CPython must be told."""

    streams: list[MachineStream] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    skips: dict[int, int] = field(default_factory=dict)

    def add(self, machine: PickleMachine, start: int, out: Outcome) -> None:
        self.streams.append(
            MachineStream(
                start,
                out.end,
                out.complete,
                machine.raw_imports,
                machine.calls,
                machine.unfollowable,
            )
        )
        self.edits.extend(machine.edits)
        self.skips.update(machine.skips)


def cross_check_machine(src: Source, ctx: Ctx, machine: PickleMachine, out: Outcome) -> None:
    """Check one stream the machine read at its start (joblib object arrays)."""
    reading = Reading()
    reading.add(machine, machine.start, out)
    cross_check(src, ctx, reading, machine.start)


def cross_check(src: Source, ctx: Ctx, reading: Reading, start: int = 0) -> None:
    """Read ``src`` from ``start`` with CPython's unpicklers and compare with ``reading``.

    joblib files (raw arrays between opcodes) are compared with the pure-Python
    unpickler joblib uses, with the arrays skipped as joblib skips them; the C
    unpickler's reading of the same bytes (``pickle.load``) is checked for imports.
    """
    if not reading.streams and src.read_at(start, 1) not in _OPCODES:
        return  # CPython stops at the first byte: nothing is imported or called
    streams = max(len(reading.streams), 1) + 1
    if reading.skips:
        joblib = probe(
            src, start, edits=reading.edits, skips=reading.skips, python=True, max_streams=streams
        )
        _compare(ctx, reading, joblib, start, "Python's unpickler (joblib)")
        plain = probe(src, start, edits=reading.edits, max_streams=streams)
        # pickle.load of a joblib file reads the arrays as opcodes: checked, not compared
        _compare(ctx, Reading(), plain, start, "CPython's unpickler", compared=False)
    else:
        plain = probe(src, start, edits=reading.edits, max_streams=streams)
        _compare(ctx, reading, plain, start, "CPython's unpickler")


def _compare(
    ctx: Ctx, reading: Reading, result: Probe, start: int, who: str, compared: bool = True
) -> None:
    """Each stream CPython read against the machine's stream at the same offset, if any.

    ``compared``: a stream the machine did not read is a differential (False when the
    two readings are different interpretations, such as ``pickle.load`` of joblib files).
    """
    if result.failure is not None:
        ctx.report("limit.exceeded", result.failure)
        return
    for trace in result.streams:
        at = start
        mine = next((m for m in reading.streams if m.start == at), None)
        start = trace.end
        if mine is not None and mine.unfollowable:
            continue  # already UNSAFE; stand-ins cannot follow it
        if mine is not None and (mine.complete or trace.complete):
            why = _difference(mine, trace)
            if why is None:
                continue
            ctx.report(
                "pickle.parser-differential",
                f"{who} reads the stream at offset {mine.start} differently: {why}",
                offset=mine.start,
            )
        elif compared and mine is None and trace.complete and (trace.imports or trace.calls):
            ctx.report(
                "pickle.parser-differential",
                f"{who} reads a pickle at offset {at} that was not analysed",
                offset=at,
            )
        elif mine is not None and mine.imports == [(m, n) for m, n, _ in trace.imports]:
            continue  # both stop with an error after the same imports: already reported
        _report_trace(ctx, trace, who)


def _difference(mine: MachineStream, trace: StreamTrace) -> str | None:
    theirs = [(m, n) for m, n, _ in trace.imports]
    if mine.complete != trace.complete:
        return "it " + ("stops with an error" if mine.complete else "completes") + " there"
    if mine.imports != theirs:
        return f"it imports {len(theirs)} name(s), the analysis {len(mine.imports)}"
    if mine.end != trace.end:
        return f"it ends at offset {trace.end}, the analysis at {mine.end}"
    if mine.calls != trace.calls:
        return f"it makes {trace.calls} call(s), the analysis {mine.calls}"
    return None


def _report_trace(ctx: Ctx, trace: StreamTrace, who: str) -> None:
    """CPython's reading judged on its own: imports, state set on globals, value calls."""
    allowlist = ctx.allowlist
    if trace.imports or trace.complete:
        for key, offset in trace.global_state:
            ctx.report(
                "pickle.build-on-global",
                f"{who} sets state on or mutates {_short(key)} (read up to offset {offset})",
                offset=offset,
                construct=_short(key),
            )
    if trace.complete:
        for offset in trace.value_calls:
            ctx.report(
                "pickle.call-on-non-global",
                f"{who} calls a value that is not a global (read up to offset {offset})",
                offset=offset,
            )
    for module, name, offset in trace.imports:
        if not trace.complete and not (is_dotted_identifier(module) and is_dotted_identifier(name)):
            continue  # not importable: the loader stops there
        mapped = resolve_name(module, name, 2)
        if any(
            allowlist.allows(m, n) or allowlist.check_for(m, n) is not None
            for m, n in ((module, name), mapped)
        ):
            continue
        dangerous = allowlist.is_dangerous(module, name) or allowlist.is_dangerous(*mapped)
        ctx.report(
            "pickle.global-dangerous" if dangerous else "pickle.global-not-allowed",
            f"{who} imports {_short(module)}.{_short(name)} (read up to offset {offset})",
            offset=offset,
            construct=f"{_short(module)}.{_short(name)}",
        )


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
