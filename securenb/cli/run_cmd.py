"""`securenb run` and `securenb reproduce`: signed, auditable papermill runs."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from securenb.errors import SecurenbError

# not securenb.cli.output's (it imports rich): `securenb run` should cost what papermill does
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")

_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def _gpus(value: str | None) -> int | str | None:
    if value is None or value == "all":
        return value
    if not value.isdigit():
        raise SecurenbError(f"--gpus {value!r}: a count or 'all'")
    return int(value)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancelling a job) ends the run like Ctrl-C: recorded as killed, no output."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _passed_options(**options: Any) -> list[str]:
    """The options every run of a batch gets, as `securenb run` arguments."""
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None:
                out += [flag, str(item)]
    return out


def _batch(ctx: click.Context, source: Path, out_dir: Path, base: dict[str, Any],
           grid: tuple[str, ...], jobs: int, options: list[str], output_dir: str | None,
           as_json: bool) -> None:
    from securenb.cli.output import console, progress_bar, workspace_from
    from securenb.runs.batch import parse_grid, plan, run_batch

    if out_dir.exists() and not out_dir.is_dir():
        raise SecurenbError(f"{out_dir}: a batch writes into a folder")
    ws = workspace_from(ctx)
    items = plan(source, out_dir, base, parse_grid(grid), output_dir or "outputs")
    with progress_bar(len(items), f"{len(items)} runs, {jobs} at a time") as advance:
        run_batch(ws, items, jobs=jobs, options=options, on_done=lambda _: advance(1))
    ok = all(i.status == "completed" and i.verdict == "verified" for i in items)
    if as_json:
        click.echo(json.dumps({"runs": [i.to_json() for i in items], "ok": ok,
                               "completed": sum(i.status == "completed" for i in items)},
                              indent=2, sort_keys=True))
    else:
        from rich.table import Table

        table = Table("run id", "notebook", "parameters", "status", "seconds", "verdict")
        for item in items:
            table.add_row(item.run_id or "-", item.notebook.name,
                          json.dumps(item.parameters)[:60], item.status, f"{item.seconds:.1f}",
                          item.verdict if not item.error else f"{item.verdict}: {item.error}")
        console.print(table)
    if not ok:
        raise SystemExit(1)


def _directory(ctx: click.Context) -> Path | None:
    root = ctx.find_root()
    return root.obj.get("directory") if root.obj else None


@click.command("run")
@click.argument("notebook", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("-p", "--parameters", "values", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A parameter, typed as papermill types it (1 int, 0.1 float, True, None).")
@click.option("-r", "--parameters-raw", "raw", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A parameter taken as a string.")
@click.option("-y", "--parameters-yaml", "yaml_texts", multiple=True, help="Parameters as YAML.")
@click.option("-f", "--parameters-file", "files", multiple=True, type=_file,
              help="A YAML file of parameters.")
@click.option("--parameters-json", "json_texts", multiple=True,
              help="Parameters as a JSON object (exact types: 1.0 stays a float).")
@click.option("--grid", multiple=True, metavar="NAME=V1,V2",
              help="Batch: one run per combination (values typed as -p, or a JSON list).")
@click.option("--jobs", type=int, default=2, show_default=True,
              help="Batch: runs at a time.")
@click.option("-k", "--kernel", help="Kernel name (securenb-<backend>; other Python kernels run "
              "in the policy's sandbox).")
@click.option("--isolation", help="Sandbox backend (default: the policy's). 'unsafe-local' "
              "runs without a sandbox and is recorded as unsafe.")
@click.option("--gpus", help="GPUs for the sandbox: a count or 'all' (default: the policy's).")
@click.option("--secret", "secrets", multiple=True, metavar="NAME[=SOURCE]",
              help="Secret for the kernel: NAME (from the environment), NAME=env:VAR, "
                   "NAME=keyring:ENTRY or NAME=file:PATH; never recorded.")
@click.option("--cwd", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the kernel runs in (read-only in the sandbox; outputs/ writable).")
@click.option("--output-dir", help="The kernel's writable folder, relative to the run's folder "
              "(default: outputs; $SECURENB_OUTPUT_DIR inside). A batch gives each run its own.")
@click.option("--log-output", is_flag=True, help="Write the notebook's output to the log.")
@click.option("--execution-timeout", type=int, help="Seconds a cell may run.")
@click.option("--start-timeout", type=int, default=60, show_default=True,
              help="Seconds the kernel may take to start.")
@click.option("--progress-bar/--no-progress-bar", default=True)
@json_option
@click.pass_context
def run(ctx: click.Context, notebook: Path, output: Path, values: tuple[tuple[str, str], ...],
        raw: tuple[tuple[str, str], ...], yaml_texts: tuple[str, ...], files: tuple[Path, ...],
        json_texts: tuple[str, ...], grid: tuple[str, ...], jobs: int, kernel: str | None,
        isolation: str | None, gpus: str | None, secrets: tuple[str, ...],
        cwd: Path | None, output_dir: str | None, log_output: bool,
        execution_timeout: int | None, start_timeout: int,
        progress_bar: bool, as_json: bool) -> None:
    """Execute NOTEBOOK into OUTPUT with papermill, in a sandbox, audited, attested and signed.

    Exit status: 0 the run completed; 1 a cell failed (OUTPUT is signed as failed);
    2 the run could not start. A batch (NOTEBOOK a folder, or --grid) writes one output
    per run into the folder OUTPUT and exits 0 only if every run completed and verified.
    """
    from securenb.runs import params

    parameters = params.parse(values, raw, yaml_texts, files, json_texts)
    if notebook.is_dir() or grid:
        passed = _passed_options(kernel=kernel, isolation=isolation, gpus=gpus, secret=secrets,
                                 cwd=cwd, execution_timeout=execution_timeout,
                                 start_timeout=start_timeout)
        _batch(ctx, notebook, output, parameters, grid, jobs, passed, output_dir, as_json)
        return
    if notebook.suffix != ".ipynb" or output.is_dir():
        raise SecurenbError(f"{notebook} -> {output}: a run goes from a notebook file to a "
                            "notebook file (a batch: a folder or --grid, into a folder)")
    from securenb.runs.api import run_notebook

    with _terminate_as_interrupt():
        result = run_notebook(
            notebook, output, parameters, kernel=kernel, isolation=isolation,
            gpus=_gpus(gpus), secrets=secrets, cwd=cwd, workspace=_directory(ctx),
            log_output=log_output, progress_bar=progress_bar and not as_json,
            execution_timeout=execution_timeout, start_timeout=start_timeout,
            output_dir=output_dir)
    data = result.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        ok = data["status"] == "completed"
        click.secho(f"{'completed' if ok else 'FAILED'} run {data['run_id']}: "
                    f"{data['notebook']} -> {data['output']} ({data['seconds']:.1f} s), signed",
                    fg="green" if ok else "red", bold=not ok)
        if data.get("error"):
            click.echo(f"  error: {data['error']}")
    if result.exit_code:
        raise SystemExit(result.exit_code)


@click.command("reproduce")
@click.argument("original", type=_file)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the re-run writes its notebook (default: ORIGINAL.reproduced.ipynb).")
@click.option("--force", is_flag=True,
              help="Re-run even though an input or the environment changed (reported).")
@click.option("--progress-bar/--no-progress-bar", default=True)
@json_option
@click.pass_context
def reproduce(ctx: click.Context, original: Path, output: Path | None, force: bool,
              progress_bar: bool, as_json: bool) -> None:
    """Re-run a signed run output with its recorded parameters, inputs and environment.

    Reports which cells' outputs and which artifacts came out bit-identical, which differ,
    and why it could not reproduce. Exit status: 0 reproduced; 1 differs or could not.
    """
    from securenb.cli.output import console, emit, workspace_from
    from securenb.runs.reproduce import render_lines
    from securenb.runs.reproduce import reproduce as reproduce_run

    ws = workspace_from(ctx)
    with _terminate_as_interrupt():
        report = reproduce_run(ws, original, output, force=force,
                               progress_bar=progress_bar and not as_json)

    def render(_: Any) -> None:
        for line in render_lines(report):
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    emit(report.to_json(), as_json, render)
    if report.verdict != "reproduced":
        raise SystemExit(1)
