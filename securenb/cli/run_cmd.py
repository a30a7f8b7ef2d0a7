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


def _directory(ctx: click.Context) -> Path | None:
    root = ctx.find_root()
    return root.obj.get("directory") if root.obj else None


@click.command("run")
@click.argument("notebook", type=_file)
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--parameters", "values", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A parameter, typed as papermill types it (1 int, 0.1 float, True, None).")
@click.option("-r", "--parameters-raw", "raw", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A parameter taken as a string.")
@click.option("-y", "--parameters-yaml", "yaml_texts", multiple=True, help="Parameters as YAML.")
@click.option("-f", "--parameters-file", "files", multiple=True, type=_file,
              help="A YAML file of parameters.")
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
@click.option("--log-output", is_flag=True, help="Write the notebook's output to the log.")
@click.option("--execution-timeout", type=int, help="Seconds a cell may run.")
@click.option("--start-timeout", type=int, default=60, show_default=True,
              help="Seconds the kernel may take to start.")
@click.option("--progress-bar/--no-progress-bar", default=True)
@json_option
@click.pass_context
def run(ctx: click.Context, notebook: Path, output: Path, values: tuple[tuple[str, str], ...],
        raw: tuple[tuple[str, str], ...], yaml_texts: tuple[str, ...], files: tuple[Path, ...],
        kernel: str | None, isolation: str | None, gpus: str | None, secrets: tuple[str, ...],
        cwd: Path | None, log_output: bool, execution_timeout: int | None, start_timeout: int,
        progress_bar: bool, as_json: bool) -> None:
    """Execute NOTEBOOK into OUTPUT with papermill, in a sandbox, audited, attested and signed.

    Exit status: 0 the run completed; 1 a cell failed (OUTPUT is signed as failed);
    2 the run could not start.
    """
    from securenb.runs import params
    from securenb.runs.api import run_notebook

    parameters = params.parse(values, raw, yaml_texts, files)
    with _terminate_as_interrupt():
        result = run_notebook(
            notebook, output, parameters, kernel=kernel, isolation=isolation,
            gpus=_gpus(gpus), secrets=secrets, cwd=cwd, workspace=_directory(ctx),
            log_output=log_output, progress_bar=progress_bar and not as_json,
            execution_timeout=execution_timeout, start_timeout=start_timeout)
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
