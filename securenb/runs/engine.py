"""The ``securenb`` papermill engine: sandboxed kernel, audit per cell, signed output.

``papermill --engine securenb in.ipynb out.ipynb -p lr 0.1`` runs as papermill
does (parameters, ``-k``, ``--cwd``, ``--log-output``, ``--execution-timeout``,
the error cells and ``PapermillExecutionError``), and in addition:

- the kernel runs in the sandbox of the policy's backend (``-k
  securenb-<backend>`` or ``--isolation`` choose another; ``unsafe-local``
  only when named);
- each cell is audited when it ends; the run is attested (SLSA Provenance v1)
  and the provenance embedded in the output, which is signed (``executed``
  scope) as completed or as failed;
- the notebook being executed is saved under a temporary folder beside the
  output, and moved to the output path only once signed: a killed run leaves
  no output at all (a previous output is removed when the run starts).

Import order: papermill loads this module while ``papermill.engines`` is
being imported (entry points). Importing this module first would import
``papermill.engines``, which would load this half-imported module again; so
callers import ``papermill.engines`` first (``securenb.runs.api.engine``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

from securenb.core.attest import Dependency
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError, WorkspaceError
from securenb.isolation import secrets as secrets_mod
from securenb.runs import kernel as kernel_mod
from securenb.runs import params as params_mod
from securenb.runs.record import PROVENANCE_FIELD, RunInputs, RunRecorder

OPTIONS_KWARG = "securenb"


@dataclass(frozen=True)
class RunOptions:
    """What ``securenb run`` adds to papermill's options (engine keyword ``securenb``)."""

    isolation: str | None = None
    kernel: str | None = None  # the kernel the user named (not the notebook's kernelspec)
    parameters: dict[str, Any] | None = None  # the parameters papermill was given
    gpus: int | str | None = None
    secrets: tuple[str, ...] = ()
    output: Path | None = None  # securenb run passes output_path=None to papermill
    output_dir: str | None = None  # the kernel's writable folder (default: outputs)
    workspace: Path | None = None
    pod_kernel: Path | None = None  # in a Job pod: the folder shared with the kernel container
    pod_image: str | None = None  # ... and that container's image (securenb.runs.pod)
    on_start: Any = field(default=None, compare=False)  # called with the run id


class _RecordingManager(NotebookExecutionManager):  # type: ignore[misc]
    """papermill's execution manager, auditing each cell and redacting secrets on save."""

    recorder: RunRecorder
    redactor: secrets_mod.Redactor
    begin: Callable[[], None]

    def save(self, **kwargs: Any) -> None:
        if self.redactor:
            for cell in self.nb.cells:
                if cell.get("outputs"):  # in place: nbclient appends to this very list
                    cell["outputs"][:] = _nodes(self.redactor.value(_json(cell["outputs"])))
        super().save(**kwargs)

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        if not self.recorder.started_run:  # the kernel is up; no cell has run yet
            self.begin()
        super().cell_start(cell, cell_index, **kwargs)
        self.recorder.cell_started(_index(cell_index), cell)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        super().cell_complete(cell, cell_index, **kwargs)  # saves (and redacts) first
        if self.recorder.started_run:  # not when the run could not begin
            self.recorder.cell_finished(_index(cell_index), cell, cell.metadata.papermill["status"])


class _RedactingClient(PapermillNotebookClient):  # type: ignore[misc]
    """Secret values are replaced in each message before papermill logs or stores it.

    A secret split across messages (two flushed writes, stdout then a display) is one text
    to its reader: the outputs go through the run's ``Redactor`` stream, which holds back
    a tail that may begin a secret until the next output, and flushes at the cell's end.
    The log and the stdout/stderr files are one stream over the whole run (a secret begun
    in one cell and finished in the next is joined there): they have their own stream,
    flushed when the run ends."""

    redactor: secrets_mod.Redactor | None = None
    copies: secrets_mod.Redactor | None = None

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if not self.redactor:
            return super().process_message(msg, cell, cell_index)
        kind, content = msg["msg_type"], self.redactor.value(msg.get("content", {}))
        if kind == "stream":
            shown = self.redactor.feed(content["name"], content["text"])
        elif kind in ("display_data", "update_display_data", "execute_result"):
            shown = self.redactor.display(kind, content)
        elif kind == "clear_output":
            shown = self.redactor.other(kind, content)
        else:  # the cell's end (idle) or its error: what is held back goes before it
            if kind == "error" or (kind == "status" and content.get("execution_state") == "idle"):
                self._emit(self.redactor.flush(), msg, cell, cell_index)
            return super().process_message({**msg, "content": content}, cell, cell_index)
        return self._emit(shown, msg, cell, cell_index)

    def execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        """As nbclient's; what a cell that timed out or whose kernel died held back is
        added before papermill saves and audits the cell."""
        try:
            return super().execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            if self.redactor:
                self._emit(self.redactor.flush(), {"header": {}, "parent_header": {}},
                           cell, cell_index)

    def log_output_message(self, output: Any) -> None:
        """papermill's copy to the log and files, through the run-long ``copies`` stream."""
        if not self.copies:
            return super().log_output_message(output)  # type: ignore[no-any-return]
        kind = output.output_type
        if kind == "stream":
            shown = self.copies.feed(output.name, "".join(output.text))
        elif kind in ("display_data", "execute_result"):
            shown = self.copies.display(kind, {k: v for k, v in output.items()
                                               if k != "output_type"})
        else:
            return None  # papermill copies no other output
        self._copy(shown)
        return None

    def flush_copies(self) -> None:
        """The end of the run: what the log and the files held back."""
        if self.copies:
            self._copy(self.copies.flush())

    def _copy(self, shown: list[secrets_mod.Output]) -> None:
        for kind, content in shown:
            super().log_output_message(_nodes([{**content, "output_type": kind}])[0])

    def _emit(self, shown: list[secrets_mod.Output], msg: dict[str, Any], cell: Any,
              cell_index: int) -> Any:
        """Hand each output that may be shown now to nbclient, as the kernel's message."""
        out = None
        for kind, content in shown:
            header = {**msg["header"], "msg_type": kind}  # nbclient rewrites the header
            out = super().process_message({**msg, "msg_type": kind, "header": header,
                                           "content": content}, cell, cell_index)
        return out


class SecurenbEngine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine with a sandboxed kernel and a signed, attested record."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str | None, output_path: str | None = None,
                         progress_bar: bool | dict[str, Any] = True, log_output: bool = False,
                         autosave_cell_every: int = 30, **kwargs: Any) -> Any:
        options: RunOptions | None = kwargs.pop(OPTIONS_KWARG, None)
        base = _papermill_cwd()
        input_path = kwargs.get("input_path")
        if not isinstance(input_path, str) or not (base / input_path).is_file():
            raise SecurenbError(f"{input_path}: the securenb engine runs local notebook files "
                                "only (it records their digest)")
        if options is None:  # `papermill --engine securenb`: infer what it was given
            options = _given(nb, kernel_name, base / input_path)
        # papermill passes no output_path when it saves only at the end (stdout, or
        # --no-request-save-on-cell-execute); the notebook's metadata still names it
        output_path = output_path or nb.metadata.get("papermill", {}).get("output_path")
        if output_path is not None and "://" in output_path:
            raise SecurenbError(f"{output_path}: the securenb engine writes a signed local "
                                "file (it is moved into place once signed), not a URL")
        output = options.output or (
            base / output_path if output_path and output_path != "-" else None)
        run = _Run.prepare(nb, kernel_name, base / input_path, output, options,
                           kwargs.get("execution_timeout"))
        return run.execute(cls, progress_bar, log_output, autosave_cell_every, kwargs)

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None, stderr_file: Any = None,
                                 start_timeout: int = 60, execution_timeout: int | None = None,
                                 **kwargs: Any) -> Any:
        """As NBClientEngine's, with our kernel manager and a redacting client."""
        redactor = kwargs.pop("redactor", None)
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
            startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
            log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        client = _RedactingClient(nb_man, **final_kwargs)
        client.redactor = redactor
        client.copies = redactor.fresh() if redactor else None
        # nbclient stops only kernels it created; this one must be stopped before the
        # outputs are hashed, as papermill stops its own (graceful shutdown)
        client.owns_km = True
        try:
            return client.execute()
        finally:
            client.flush_copies()


@dataclass
class _Run:
    """One run between its preparation (keys unlocked, sandbox chosen) and its output."""

    ws: Workspace
    nb: Any
    recorder: RunRecorder
    km: Any
    output: Path | None
    workdir: Path
    redactor: secrets_mod.Redactor
    on_start: Any
    ready: Future[list[Dependency]]

    @classmethod
    def prepare(cls, nb: Any, kernel_name: str | None, notebook: Path, output: Path | None,
                options: RunOptions, execution_timeout: int | None) -> _Run:
        """Check the options and choose the sandbox; nothing is written yet.

        Unlocking the keys (a KDF) and hashing the inputs and the environment run on
        another thread while the kernel starts; ``begin`` waits for them before the
        first cell, so a wrong passphrase still stops the run before any cell runs.
        """
        ws = _workspace(options.workspace, notebook)
        language = nb.metadata.get("kernelspec", {}).get("language", "python")
        if language != "python":
            raise SecurenbError(f"{notebook}: kernel language {language!r}; the securenb "
                                "engine runs Python notebooks in a sandboxed ipykernel")
        policy_backend = ws.policy.isolation.backend
        # the sandbox is chosen by the person running (-k, --isolation), else the policy:
        # never by the notebook's own kernelspec (its author's, maybe securenb-unsafe-local)
        backend = kernel_mod.backend_for(options.kernel, options.isolation, policy_backend)
        explicit = (options.isolation == "unsafe-local"
                    or options.kernel == "securenb-unsafe-local")
        if backend == "unsafe-local" and not explicit:
            raise SecurenbError("the policy selects isolation 'unsafe-local' (no sandbox); a run "
                                "without a sandbox must name it: --isolation unsafe-local")
        parameters = dict(options.parameters or {})
        params_mod.check(parameters)
        refs = [secrets_mod.parse_ref(s) for s in options.secrets]
        secret_env = {r.name: secrets_mod.resolve(r) for r in refs}
        workdir = Path.cwd()
        names = tuple(r.name for r in refs)
        if options.pod_kernel is not None:
            from securenb.runs import pod

            if backend != "kubernetes" or not options.pod_image:
                raise SecurenbError("--pod-kernel (a run in a Job pod) needs --isolation "
                                    "kubernetes and --pod-image")
            km, sandbox = pod.attached_manager(
                options.pod_kernel, options.pod_image, workdir, ws.policy.isolation,
                gpus=options.gpus, secret_names=names, output_dir=options.output_dir)
        else:
            km, sandbox = kernel_mod.sandbox_manager(
                backend, workdir, gpus=options.gpus, secret_names=names,
                secret_env=secret_env, output_dir=options.output_dir)
        if output is not None and sandbox.output_dir is not None:
            writable = Path(sandbox.output_dir)
            target = output.parent.resolve()
            if target == writable or writable in target.parents:
                raise SecurenbError(f"{output}: inside the sandbox's writable folder "
                                    f"{writable}; the kernel could plant links there that "
                                    "the signed output would follow: write it elsewhere")
        inputs = RunInputs(
            notebook=notebook, output=output, parameters=parameters, kernel=km.kernel_name,
            sandbox=sandbox, kernelspec=_spec_json(km), cwd=workdir,
            execution_timeout=execution_timeout, unsafe_requested=explicit)
        _papermill_metadata(nb, parameters, km)
        recorder = RunRecorder(ws, inputs)
        pool = ThreadPoolExecutor(1, thread_name_prefix="securenb-run")
        ready = pool.submit(_unlock_and_hash, ws, recorder)
        pool.shutdown(wait=False)  # the thread ends with the job
        return cls(ws, nb, recorder, km, output, workdir, secrets_mod.Redactor(secret_env),
                   options.on_start, ready)

    def begin(self) -> None:
        """Open the record once the keys are unlocked; a stale output goes first."""
        deps = self.ready.result()
        if self.output is not None:
            self.output.unlink(missing_ok=True)  # it must not pass for this run
        self.recorder.start(deps)
        if self.on_start is not None:
            self.on_start(self.recorder.run_id)

    def execute(self, engine: type[SecurenbEngine], progress_bar: Any, log_output: bool,
                autosave_cell_every: int, kwargs: dict[str, Any]) -> Any:
        recorder = self.recorder
        name = self.output.name if self.output else "notebook.ipynb"
        parent = self.output.parent if self.output else None
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}.{recorder.run_id}.", dir=parent))
        running = scratch / name
        manager = _RecordingManager(self.nb, output_path=str(running), progress_bar=progress_bar,
                                    log_output=log_output, autosave_cell_every=autosave_cell_every)
        manager.recorder, manager.redactor, manager.begin = recorder, self.redactor, self.begin
        recorder.snapshot()
        raised: Exception | None = None
        try:
            manager.notebook_start()
            try:
                engine.execute_managed_notebook(manager, self.km.kernel_name,
                                                log_output=log_output, km=self.km,
                                                redactor=self.redactor, **kwargs)
            except Exception as exc:  # timeout, dead kernel: recorded and signed as failed
                if not recorder.started_run:
                    raise  # could not start (kernel, keys): nothing recorded or written
                raised = exc
            finally:
                manager.cleanup_pbar()
                manager.notebook_complete()
            if not recorder.started_run:  # a notebook without cells
                self.begin()
        except BaseException:
            if recorder.started_run:
                recorder.finish("killed", 130, None, None)
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        try:
            signed, failure = self._finish(manager.nb, running, raised)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if raised is not None:
            raise raised
        if failure is not None:
            raise failure
        return signed

    def _finish(self, nb: Any, running: Path, raised: Exception | None) -> tuple[Any, Any]:
        """Mark errors as papermill does, attest, embed, sign, then move into place."""
        from papermill.exceptions import PapermillExecutionError
        from papermill.execute import raise_for_execution_errors

        failure: PapermillExecutionError | None = None
        final = copy.deepcopy(nb)
        try:
            raise_for_execution_errors(final, str(running))
        except PapermillExecutionError as exc:
            failure = exc
            final = _read(running)
        status, error = "completed", None
        if raised is not None:
            status, error = "failed", {"ename": type(raised).__name__, "evalue": str(raised)[:500]}
        elif failure is not None:
            status = "failed"
            error = {"cell": failure.cell_index, "ename": failure.ename,
                     "evalue": self.redactor.text(str(failure.evalue))[:500]}
        exit_code = 0 if status == "completed" else 1
        plain = json.loads(json.dumps(final))
        envelope, digest = self.recorder.provenance(plain, status, exit_code, error)
        plain.setdefault("metadata", {}).setdefault("securenb", {})[PROVENANCE_FIELD] = envelope
        running.write_text(json.dumps(plain, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
        self._sign(running)
        signed = _read(running)
        if self.output is not None:
            os.replace(running, self.output)
        self.recorder.finish(status, exit_code, digest, self.output)
        return signed, failure

    def _sign(self, running: Path) -> None:
        """Sign in the ``executed`` scope with the release key; record it under the output."""
        from securenb.core.attest import Subject
        from securenb.core.store import file_sha256
        from securenb.signing.notebook import sign_notebook
        from securenb.signing.record import record_signature
        from securenb.signing.result import SignResult
        from securenb.signing.service import signing_key

        signed = sign_notebook(running, signing_key(self.ws, None), "executed")
        if self.output is None:
            return
        digest, _ = file_sha256(running)
        result = SignResult("notebook", str(self.output),
                            f"{self.output}#metadata.securenb.signature", signed.signer,
                            digest, "sha256, scope executed", 1, signed.signed_at)
        record_signature(self.ws, result, [Subject(self.ws.relpath(self.output), digest)],
                         digest)


def _given(nb: Any, kernel_name: str | None, notebook: Path) -> RunOptions:
    """What papermill's command line gave the engine, told apart from the input's metadata.

    papermill passes neither its parameters nor whether ``-k`` was typed. It injects
    given parameters as a new ``injected-parameters`` cell (a fresh cell id); a kernel
    name that is not the input file's own kernelspec was typed.
    """
    with notebook.open("rb") as f:
        saved = json.load(f)
    ids = {c.get("id") for c in saved.get("cells", []) if isinstance(c, dict)}
    injected = any("injected-parameters" in c.metadata.get("tags", []) and c.get("id") not in ids
                   for c in nb.cells)
    parameters = nb.metadata.get("papermill", {}).get("parameters") if injected else None
    own = (saved.get("metadata") or {}).get("kernelspec", {}).get("name")
    return RunOptions(kernel=kernel_name if kernel_name != own else None,
                      parameters=dict(parameters or {}))


def _papermill_metadata(nb: Any, parameters: dict[str, Any], km: Any) -> None:
    """The output's ``metadata.papermill`` and ``kernelspec`` say what this run had.

    papermill keeps the input's own fields (parameters when none are given,
    ``environment_variables``, ``default_parameters``, the kernelspec): in a signed
    output they would read as facts about this run.
    """
    from papermill import __version__

    old = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {
        "parameters": parameters, "default_parameters": {}, "environment_variables": {},
        "version": __version__, "input_path": old.get("input_path"),
        "output_path": old.get("output_path")}
    spec = km.kernel_spec
    if spec is not None:
        nb.metadata["kernelspec"] = {"name": km.kernel_name, "display_name": spec.display_name,
                                     "language": spec.language}


def _unlock_and_hash(ws: Workspace, recorder: RunRecorder) -> list[Dependency]:
    """The record key, then the release key; then the digests of the run's inputs."""
    ws.signer()
    from securenb.signing.service import signing_key

    signing_key(ws, None)
    return recorder.dependencies()


def _workspace(explicit: Path | None, notebook: Path) -> Workspace:
    """The workspace named by ``-C``, else the notebook's, else the current folder's."""
    if explicit is not None:
        return Workspace.find(explicit)
    try:
        return Workspace.find(notebook.parent)
    except WorkspaceError:
        try:
            return Workspace.find(Path.cwd())
        except WorkspaceError:
            raise WorkspaceError(f"{notebook}: no .securenb/ workspace here or in any parent; "
                                 "the securenb engine records runs in one (`securenb init`)"
                                 ) from None


def _papermill_cwd() -> Path:
    """The folder papermill resolves relative input and output paths against (not --cwd)."""
    from papermill.iorw import papermill_io

    handler = papermill_io.get_handler("local")
    return Path(getattr(handler, "_cwd", None) or os.getcwd())


def _index(cell_index: int | None) -> int:
    return -1 if cell_index is None else cell_index


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _nodes(value: Any) -> Any:
    import nbformat

    return [nbformat.from_dict(v) for v in value]  # type: ignore[no-untyped-call]


def _read(path: Path) -> Any:
    import nbformat

    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]


def _spec_json(km: Any) -> dict[str, Any]:
    spec = km.kernel_spec
    return dict(spec.to_dict()) if spec is not None else {}
