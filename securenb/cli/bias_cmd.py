"""`securenb bias MODEL --data FILE --label COL --prediction COL --sensitive COL...`.

The predictions are already in the data file: the model is only hashed (its
digest is the attestation's subject), never loaded, since a model from
elsewhere may run code on load. Exit codes: 0 within policy, 1 a bound is
broken, 2 a bound could not be checked (an undefined disparity) or bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from securenb.core.fsutil import atomic_write_bytes
from securenb.errors import SecurenbError

_EXIT = {"pass": 0, "fail": 1, "undefined": 2}


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV, TSV, Parquet or JSON-lines file with labels and predictions.")
@click.option("--label", required=True, help="Column of true labels.")
@click.option("--prediction", required=True, help="Column of the model's predictions.")
@click.option("--sensitive", required=True, multiple=True,
              help="Column of a sensitive feature (repeatable: intersections are checked too).")
@click.option("--weight", default=None, help="Column of sample weights.")
@click.option("--pos-label", default="1", show_default=True, help="The positive label.")
@click.option("--bootstrap", default=0, type=click.IntRange(min=0),
              help="Bootstrap replicates for confidence intervals (0: none).")
@click.option("--confidence", default=0.95, type=click.FloatRange(0, 1, min_open=True,
                                                                   max_open=True),
              show_default=True)
@click.option("--seed", default=None, type=int, help="Seed of the bootstrap.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the chart as PNG.")
@click.option("--vega-lite", "vl_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the chart as a Vega-Lite JSON spec.")
@click.option("--no-record", is_flag=True, help="Do not record the check in the workspace.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def bias(ctx: click.Context, model: Path, data: Path, label: str, prediction: str,
         sensitive: tuple[str, ...], weight: str | None, pos_label: str, bootstrap: int,
         confidence: float, seed: int | None, png_path: Path | None, vl_path: Path | None,
         no_record: bool, as_json: bool) -> None:
    """Bias check of a model's predictions (exit 0 within policy, 1 outside, 2 undefined)."""
    from securenb.core.locate import workspace_root
    from securenb.core.policy import load_policy
    from securenb.fairness import assess
    from securenb.fairness.columns import read_columns
    from securenb.fairness.inputs import parse_label

    if not model.is_file():
        raise SecurenbError(f"{model}: no such model file")
    start = Path((ctx.find_root().obj or {}).get("directory") or Path.cwd()).resolve()
    root = workspace_root(start)
    policy, _ = load_policy(root or start)
    columns = read_columns(data, label, prediction, list(sensitive), weight)
    report = assess(columns.y_true, columns.y_pred, columns.sensitive,
                    sample_weight=columns.weight, pos_label=parse_label(pos_label, columns.y_true),
                    thresholds=policy.fairness, bootstrap=bootstrap, confidence=confidence,
                    random_state=seed)
    if png_path is not None or vl_path is not None:
        from securenb.fairness import charts

        if png_path is not None:
            atomic_write_bytes(png_path, charts.png(report))
        if vl_path is not None:
            atomic_write_bytes(vl_path, json.dumps(charts.vega_lite(report), indent=1).encode())
    attestation = None
    if root is not None and not no_record:
        from securenb.core.store import file_sha256
        from securenb.core.workspace import Workspace
        from securenb.fairness.record import record

        ws = Workspace(root)
        digest, _ = file_sha256(data)
        try:
            attestation = "sha256:" + record(ws, report, model,
                                             {"path": ws.relpath(data), "sha256": digest})
        except SecurenbError as exc:  # the check stands; say why it is not recorded
            click.echo(f"warning: bias check not recorded in the workspace: {exc}", err=True)
    if as_json:
        click.echo(json.dumps({"status": report.status, "attestation": attestation,
                               "result": report.to_predicate()}, indent=2))
    else:
        click.echo(report.to_text())
        if attestation:
            click.echo(f"\nrecorded: attestation {attestation}")
    raise SystemExit(_EXIT[report.status])

