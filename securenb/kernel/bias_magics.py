"""``%bias_check``: the bias check of a model's predictions, from kernel variables or a file.

    %bias_check --model model.pt --y-true y_test --y-pred pred --sensitive sex --sensitive race
    %bias_check --model model.pt --data scored.csv --label y --prediction p --sensitive sex

In JupyterLab the result is a widget: the policy checks with pass/fail, and a
Vega-Lite chart of each metric per group (bound drawn, CI whiskers with
``--bootstrap N``). Papermill notebooks and other renderers get the same checks
as HTML with a PNG of the chart, terminals a text table. The report is
returned; unless ``--no-fail``, a check that is not within policy stops the
cell, so a pipeline does not go on with a biased model. With ``--model`` in a
workspace, the result is a signed fairness attestation on the model's digest
(the model is hashed, never loaded).
"""

from __future__ import annotations

import base64
import html
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from securenb.errors import SecurenbError
from securenb.kernel.args import MagicArgumentParser
from securenb.kernel.display import in_kernel

if TYPE_CHECKING:  # numpy and pandas load when the magic runs, not at %load_ext
    from securenb.fairness import FairnessReport

_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "undefined": "#9a6700"}


def register(ipython: Any) -> None:
    """Add ``%bias_check`` to ``ipython``."""

    def bias_check(line: str) -> FairnessReport:
        return run(ipython, line)

    bias_check.__doc__ = __doc__
    ipython.register_magic_function(bias_check, "line", "bias_check")


_PARSER = MagicArgumentParser(prog="%bias_check", description="Bias check of predictions.")
_PARSER.add_argument("--model", help="model file: its digest is what the result is about")
_PARSER.add_argument("--y-true", help="kernel variable of true labels")
_PARSER.add_argument("--y-pred", help="kernel variable of predictions")
_PARSER.add_argument("--data", help="file with the columns (CSV, TSV, Parquet, JSON lines)")
_PARSER.add_argument("--label", help="column of true labels (with --data)")
_PARSER.add_argument("--prediction", help="column of predictions (with --data)")
_PARSER.add_argument("--sensitive", action="append", default=[], required=True,
                     help="sensitive feature: a variable (or column with --data); repeatable")
_PARSER.add_argument("--weight", help="sample weights: a variable (or column with --data)")
_PARSER.add_argument("--pos-label", default=None, help="the positive label (default 1)")
_PARSER.add_argument("--bootstrap", type=int, default=0, help="replicates for CIs")
_PARSER.add_argument("--seed", type=int, default=None)
_PARSER.add_argument("--no-fail", action="store_true", help="do not stop the cell on failure")
_PARSER.add_argument("--no-record", action="store_true", help="do not record in the workspace")


def run(ipython: Any, line: str) -> FairnessReport:
    """Assess, show, record; stop the cell unless every policy bound holds (or --no-fail)."""
    from securenb.fairness import assess

    args = _PARSER.parse_args(shlex.split(line))
    model = Path(args.model).expanduser().absolute() if args.model else None
    ws = _workspace(model.parent if model else Path.cwd())
    policy = ws.policy if ws is not None else _policy()
    try:
        y_true, y_pred, sensitive, weight, source = _inputs(ipython, args)
        pos_label = _pos_label(args.pos_label, y_true)
        report = assess(y_true, y_pred, sensitive, sample_weight=weight, pos_label=pos_label,
                        thresholds=policy.fairness, bootstrap=args.bootstrap,
                        random_state=args.seed)
    except SecurenbError as exc:
        raise UsageError(f"bias_check: {exc}") from None
    note = None
    if args.no_record:
        pass
    elif model is None:
        note = "not recorded: give --model to record the result on the model's digest"
    elif ws is None:
        note = "not recorded: no securenb workspace here"
    else:
        note = _record(ws, report, model, source)
    show(report, note)
    if report.status != "pass" and not args.no_fail:
        raise UsageError(f"bias_check: {report.status}: " + "; ".join(report.failures[:3]))
    return report


def _workspace(start: Path) -> Any:
    from securenb.core.workspace import Workspace

    try:
        return Workspace.find(start)
    except SecurenbError:
        return None


def _policy() -> Any:
    from securenb.core.policy import load_policy

    return load_policy(Path.cwd())[0]


def _inputs(ipython: Any, args: Any) -> tuple[Any, Any, Any, Any, dict[str, str]]:
    if args.data:
        from securenb.core.store import file_sha256
        from securenb.fairness.columns import read_columns

        if not (args.label and args.prediction) or args.y_true or args.y_pred:
            raise UsageError("bias_check: with --data give --label and --prediction (columns)")
        path = Path(args.data).expanduser()
        cols = read_columns(path, args.label, args.prediction, args.sensitive, args.weight)
        digest, _ = file_sha256(path)
        return cols.y_true, cols.y_pred, cols.sensitive, cols.weight, {
            "path": str(path), "sha256": digest}
    if not (args.y_true and args.y_pred):
        raise UsageError("bias_check: give --y-true and --y-pred (variables) or --data FILE")
    namespace = ipython.user_ns
    sensitive: dict[str, Any] = {}
    for name in args.sensitive:
        value = _variable(namespace, name)
        if hasattr(value, "columns"):  # a DataFrame: each column is a feature
            sensitive.update({str(c): value[c] for c in value.columns})
        else:
            sensitive[name] = value
    weight = _variable(namespace, args.weight) if args.weight else None
    return (_variable(namespace, args.y_true), _variable(namespace, args.y_pred), sensitive,
            weight, {"source": "kernel variables"})


def _variable(namespace: dict[str, Any], name: str) -> Any:
    if name not in namespace:
        raise UsageError(f"bias_check: no variable {name!r} in the kernel")
    return namespace[name]


def _pos_label(text: str | None, y_true: Any) -> Any:
    from securenb.fairness.inputs import parse_label

    return 1 if text is None else parse_label(text, y_true)


def _record(ws: Any, report: FairnessReport, model: Path, source: dict[str, str]) -> str:
    from securenb.fairness.record import record

    try:
        return f"recorded: attestation sha256:{record(ws, report, model, source)[:16]}..."
    except SecurenbError as exc:
        return f"not recorded: {exc}"


def to_html(report: FairnessReport, note: str | None) -> str:
    """The checks as a card coloured by the outcome (no chart)."""
    colour = _COLOURS[report.status]
    rows = "".join(
        f"<tr><td style='color:{_COLOURS[c.status]}'><b>{c.status.upper()}</b></td>"
        f"<td>{html.escape(c.describe())}</td></tr>" for c in report.checks)
    return (f"<div style='border-left:6px solid {colour};padding:4px 8px'>"
            f"<b style='color:{colour}'>bias check {report.status.upper()}</b> "
            f"{report.rows} rows; sensitive features {html.escape(', '.join(report.features))}"
            f"<table>{rows}</table>"
            + (f"<div><i>{html.escape(note)}</i></div>" if note else "") + "</div>")


def show(report: FairnessReport, note: str | None = None) -> None:
    """Widget (checks + Vega-Lite chart) in JupyterLab; HTML + PNG elsewhere; text in a
    terminal."""
    from IPython.display import display

    from securenb.fairness import charts

    text = report.to_text() + (f"\n{note}" if note else "")
    if not in_kernel():
        print(text)
        return
    card = to_html(report, note)
    png = base64.b64encode(charts.png(report)).decode()
    bundle: dict[str, Any] = {
        "text/plain": text,
        "text/html": card + f"<img alt='bias check chart' src='data:image/png;base64,{png}'/>",
    }
    try:
        import ipywidgets  # type: ignore[import-untyped]
    except ImportError:
        display(bundle, raw=True)  # type: ignore[no-untyped-call]
        return
    # The chart goes into the Output widget's state, not captured with `with chart:`: a
    # capture makes the frontend send the widget's outputs back on the shell channel
    # mid-cell, and nbclient/papermill then lose the cell's reply until their timeout.
    chart = ipywidgets.Output()
    chart.outputs = ({"output_type": "display_data", "metadata": {}, "data": {
        charts.MIME: charts.vega_lite(report), "image/png": png,
        "text/plain": "bias check chart"}},)
    box = ipywidgets.VBox([ipywidgets.HTML(value=card), chart])
    bundle["application/vnd.jupyter.widget-view+json"] = {
        "model_id": box.model_id, "version_major": 2, "version_minor": 0}
    display(bundle, raw=True)  # type: ignore[no-untyped-call]
