"""``%gate PATH [--no-record] [--no-fail]``: the gate verdict for an artifact, in a notebook.

Shows one line per rule (widget in JupyterLab, HTML elsewhere, text in a
terminal) and returns the verdict, so ``verdict = %gate model.npy`` keeps it.
Unless ``--no-fail``, anything but PASS stops the cell: a pipeline does not go
on to publish an artifact the gate did not allow.

In a kernel of a securenb server the server evaluates (over its records, for
the kernel's users' ``securenb:gate``) and records the verdict with its key,
as ``POST gate`` does: a kernel's own verdict is never signed. Without a
server the kernel evaluates and records itself, as the CLI does; under a
Jupyter server without the extension only with ``--no-record``.
"""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from securenb.errors import SecurenbError
from securenb.kernel.args import MagicArgumentParser
from securenb.kernel.display import show_result

if TYPE_CHECKING:  # the workspace and its records load when the magic runs
    from securenb.gate import GateVerdict

_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCOMPLETE": "#9a6700",
            "pass": "#1a7f37", "fail": "#cf222e", "unknown": "#9a6700", "skipped": "#57606a"}


def register(ipython: Any) -> None:
    """Add ``%gate`` to ``ipython``."""
    ipython.register_magic_function(gate, "line", "gate")


_PARSER = MagicArgumentParser(prog="%gate", description="Gate verdict for an artifact.")
_PARSER.add_argument("artifact", help="a file, or sha256:<hex> of a recorded artifact")
_PARSER.add_argument("--no-record", action="store_true", help="do not record the verdict")
_PARSER.add_argument("--no-fail", action="store_true", help="do not stop the cell unless PASS")


def gate(line: str) -> GateVerdict:
    """Evaluate, show; stop the cell unless PASS (or --no-fail)."""
    from securenb.core.workspace import Workspace
    from securenb.gate import GateVerdict, evaluate
    from securenb.signing.remote import RemoteSigner

    args = _PARSER.parse_args(shlex.split(line))
    path = Path(args.artifact).expanduser()
    try:
        try:
            server = RemoteSigner.for_this_kernel()
        except SecurenbError:  # a Jupyter server without securenb: it must not sign here
            if not args.no_record:
                raise
            server = None
        if server is not None:
            target = args.artifact if args.artifact.lower().startswith("sha256:") \
                else str(path.absolute())
            verdict = GateVerdict.from_json(server.gate(target, record=not args.no_record))
        else:
            ws = Workspace.find(path.absolute().parent if path.exists() else None)
            verdict = evaluate(ws, args.artifact, record=not args.no_record)
    except SecurenbError as exc:
        raise UsageError(f"gate: {exc}") from None
    show_result(verdict.to_text(), lambda: to_html(verdict))
    if verdict.outcome != "PASS" and not args.no_fail:
        bad = [r.rule for r in verdict.rules if r.status in ("fail", "unknown")]
        raise UsageError(f"gate: {verdict.outcome} for {verdict.artifact} ({', '.join(bad)})")
    return verdict


def to_html(verdict: GateVerdict) -> str:
    """A card coloured by the outcome, one row per rule."""
    colour = _COLOURS[verdict.outcome]
    rows = "".join(
        f"<tr><td style='color:{_COLOURS[r.status]}'><b>{r.status.upper()}</b></td>"
        f"<td><code>{html.escape(r.rule)}</code>{'' if r.required else ' (optional)'}</td>"
        f"<td>{html.escape(r.found)}</td><td>{html.escape(r.why)}</td></tr>"
        for r in verdict.rules)
    recorded = (f"<div><i>recorded: attestation sha256:{verdict.attestation[:16]}...</i></div>"
                if verdict.attestation else "")
    return (f"<div style='border-left:6px solid {colour};padding:4px 8px'>"
            f"<b style='color:{colour}'>gate {verdict.outcome}</b> "
            f"{html.escape(verdict.artifact)} <code>sha256:{verdict.digest[:16]}...</code>"
            f"<table>{rows}</table>"
            f"<div>policy {html.escape(verdict.policy_source)} "
            f"<code>sha256:{verdict.policy_digest[:16]}...</code></div>{recorded}</div>")
