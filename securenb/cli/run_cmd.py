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
    with (progress_bar(len(items), f"{len(items)} runs, {jobs} at a time") as advance,
          _terminate_as_interrupt()):
        run_batch(ws, items, jobs=jobs, options=options, on_done=lambda _: advance(1))
    ok = all(i.status == "completed" and i.verdict == "verified" for i in items)
    if as_json:
        click.echo(json.dumps({"runs": [i.to_json() for i in items], "ok": ok,
                               "completed": sum(i.status == "completed" for i in items)},
                              indent=2, sort_keys=True))
    else:
        from rich.table import Table

        from securenb.signing.result import _printable

        table = Table("run id", "notebook", "parameters", "status", "seconds", "verdict")
        for item in items:
            verdict = item.verdict if not item.error else f"{item.verdict}: {item.error}"
            table.add_row(item.run_id or "-", _printable(item.notebook.name),
                          json.dumps(item.parameters)[:60], item.status, f"{item.seconds:.1f}",
                          _printable(verdict))
        console.print(table)
    if not ok:
        raise SystemExit(1)


def _render_k8s(ctx: click.Context, source: Path, out_dir: Path, base: dict[str, Any],
                grid: tuple[str, ...], output_dir: str | None, folder: Path, opts: Any,
                submit: bool, as_json: bool) -> None:
    """The batch as Kubernetes Jobs: checked, written, and created when asked."""
    import dataclasses

    from securenb.cli.output import workspace_from
    from securenb.runs.batch import parse_grid, plan
    from securenb.runs.k8s import check_cluster, render
    from securenb.runs.k8s import submit as submit_jobs

    ws = workspace_from(ctx)
    image = opts.image or ws.policy.isolation.image
    if not image:
        raise SecurenbError("--render-k8s needs --k8s-image (or [tool.securenb.isolation] "
                            "image): an image with python3, ipykernel and securenb")
    if not opts.claim:
        raise SecurenbError("--render-k8s needs --k8s-claim: the PersistentVolumeClaim that "
                            "holds a copy of the project (with .securenb/)")
    opts = dataclasses.replace(opts, image=image)
    opts.check()
    if submit:
        check_cluster()
    items = plan(source, out_dir, base, parse_grid(grid), output_dir or "outputs")
    rendered = render(ws, items, opts, folder)
    if submit:
        submit_jobs(rendered)
    jobs = [{"job": name, "namespace": opts.namespace, "notebook": str(item.notebook),
             "output": str(item.output), "parameters": item.parameters,
             "manifest": str(folder / f"{name}.yaml")}
            for (name, _), item in zip(rendered.items(), items, strict=True)]
    if as_json:
        click.echo(json.dumps({"jobs": jobs, "submitted": submit}, indent=2, sort_keys=True))
    else:
        for job in jobs:
            click.echo(f"{'submitted' if submit else 'rendered'} {job['job']}: "
                       f"{job['manifest']} ({json.dumps(job['parameters'])})")


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
@click.option("--render-k8s", "render_k8s", type=click.Path(file_okay=False, path_type=Path),
              help="Write the runs as Kubernetes Jobs (one restricted pod each) into this "
                   "folder instead of running them here.")
@click.option("--k8s-image", help="Jobs: the image (python3, ipykernel, securenb) "
              "(default: the policy's).")
@click.option("--k8s-claim", help="Jobs: the PersistentVolumeClaim holding the project.")
@click.option("--k8s-namespace", default="default", show_default=True, help="Jobs: namespace.")
@click.option("--k8s-keys-secret", default="securenb-keys", show_default=True,
              help="Jobs: the Secret whose key 'passphrase' unlocks the workspace keys.")
@click.option("--k8s-secrets-secret", default="securenb-run-secrets", show_default=True,
              help="Jobs: the Secret with one key per --secret NAME.")
@click.option("--submit", is_flag=True, help="Jobs: also create them (needs KUBECONFIG).")
@click.option("--pod-kernel", type=click.Path(file_okay=False, path_type=Path), hidden=True)
@click.option("--pod-image", hidden=True)
@click.option("--progress-bar/--no-progress-bar", default=True)
@json_option
@click.pass_context
def run(ctx: click.Context, notebook: Path, output: Path, values: tuple[tuple[str, str], ...],
        raw: tuple[tuple[str, str], ...], yaml_texts: tuple[str, ...], files: tuple[Path, ...],
        json_texts: tuple[str, ...], grid: tuple[str, ...], jobs: int, kernel: str | None,
        isolation: str | None, gpus: str | None, secrets: tuple[str, ...],
        cwd: Path | None, output_dir: str | None, log_output: bool,
        execution_timeout: int | None, start_timeout: int, render_k8s: Path | None,
        k8s_image: str | None, k8s_claim: str | None, k8s_namespace: str,
        k8s_keys_secret: str, k8s_secrets_secret: str, submit: bool,
        pod_kernel: Path | None, pod_image: str | None,
        progress_bar: bool, as_json: bool) -> None:
    """Execute NOTEBOOK into OUTPUT with papermill, in a sandbox, audited, attested and signed.

    Exit status: 0 the run completed; 1 a cell failed (OUTPUT is signed as failed);
    2 the run could not start. A batch (NOTEBOOK a folder, or --grid) writes one output
    per run into the folder OUTPUT and exits 0 only if every run completed and verified.
    """
    from securenb.runs import params

    parameters = params.parse(values, raw, yaml_texts, files, json_texts)
    if render_k8s is not None:
        if kernel or cwd or isolation not in (None, "kubernetes"):
            raise SecurenbError("--render-k8s: the pod is the kernel's sandbox (kubernetes); "
                                "-k, --isolation and --cwd do not apply")
        from securenb.isolation.secrets import parse_ref
        from securenb.runs.k8s import PodOptions

        refs = [parse_ref(s) for s in secrets]
        if any("=" in s for s in secrets):
            raise SecurenbError("--render-k8s: a pod's secrets come from the Kubernetes Secret "
                                "(--k8s-secrets-secret), one key per name: pass --secret NAME")
        pod_options = PodOptions(
            image=k8s_image or "", claim=k8s_claim or "", namespace=k8s_namespace,
            keys_secret=k8s_keys_secret, secrets_secret=k8s_secrets_secret,
            secret_names=tuple(r.name for r in refs), gpus=_gpus(gpus),
            options=tuple(_passed_options(execution_timeout=execution_timeout,
                                          start_timeout=start_timeout)))
        _render_k8s(ctx, notebook, output, parameters, grid, output_dir, render_k8s,
                    pod_options, submit, as_json)
        return
    if submit or k8s_image or k8s_claim:
        raise SecurenbError("--submit, --k8s-image and --k8s-claim go with --render-k8s DIR")
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
            output_dir=output_dir, pod_kernel=pod_kernel, pod_image=pod_image)
    data = result.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        from securenb.signing.result import _printable

        ok = data["status"] == "completed"
        click.secho(_printable(f"{'completed' if ok else 'FAILED'} run {data['run_id']}: "
                               f"{data['notebook']} -> {data['output']} "
                               f"({data['seconds']:.1f} s), signed"),
                    fg="green" if ok else "red", bold=not ok)
        if data.get("error"):  # the notebook's exception: one line, no escapes
            click.echo(_printable(f"  error: {data['error']}"))
    if result.exit_code:
        raise SystemExit(result.exit_code)


@click.command("reproduce")
@click.argument("original", type=_file)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the re-run writes its notebook (default: ORIGINAL.reproduced.ipynb).")
@click.option("--force", is_flag=True,
              help="Re-run even though an input, a setting or the environment changed "
                   "(reported).")
@click.option("--isolation", help="Sandbox backend (default: the policy's; never the "
              "record's). 'unsafe-local' (no sandbox) only when named here.")
@click.option("--gpus", help="GPUs for the sandbox: a count or 'all' (default: the policy's).")
@click.option("--secret", "secrets", multiple=True, metavar="NAME[=SOURCE]",
              help="Secret for the kernel, as for `securenb run`; never taken from the record.")
@click.option("--progress-bar/--no-progress-bar", default=True)
@json_option
@click.pass_context
def reproduce(ctx: click.Context, original: Path, output: Path | None, force: bool,
              isolation: str | None, gpus: str | None, secrets: tuple[str, ...],
              progress_bar: bool, as_json: bool) -> None:
    """Re-run a signed run output with its recorded parameters, inputs and environment.

    The sandbox, GPUs and secrets are yours (options, else the policy), not the record's:
    a recorded one that differs is reported. Exit status: 0 reproduced; 1 differs or could
    not; 2 refused (a record without a sandbox, paths outside the project).
    """
    from securenb.cli.output import console, emit, workspace_from
    from securenb.runs.reproduce import Settings, render_lines
    from securenb.runs.reproduce import reproduce as reproduce_run

    ws = workspace_from(ctx)
    settings = Settings(isolation, _gpus(gpus), secrets)
    with _terminate_as_interrupt():
        report = reproduce_run(ws, original, output, force=force,
                               progress_bar=progress_bar and not as_json, settings=settings)

    def render(_: Any) -> None:
        from securenb.signing.result import _printable

        for line in render_lines(report):  # reasons quote the record: no escapes, one line each
            console.print(_printable(line), markup=False, highlight=False, soft_wrap=True)

    emit(report.to_json(), as_json, render)
    if report.verdict != "reproduced":
        raise SystemExit(1)
