"""``%%secure_train`` without IPython: run a cell in a warm sandbox and record the run.

One ``Trainer`` per parent kernel keeps one warm ``SubKernel`` per sandbox
configuration. A run checks data policy and unwraps the keys of encrypted
datasets (both before any sandbox starts), stages the declared inputs, picks
the checkpoint to resume from, runs the cell (output streamed through ``sink``, secrets
redacted), vets and records the output folder, loads the declared output
variables with pickle-free loaders, and writes SLSA provenance plus an audit
entry, whatever the outcome.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.core.attest import Dependency, RunProvenance, Subject
from securenb.core.canonical import canonical_json, sha256_hex
from securenb.core.locate import PYPROJECT
from securenb.core.store import Artifact, now_rfc3339
from securenb.core.workspace import Workspace
from securenb.isolation import containers, hostenv, secrets, transfer
from securenb.isolation.errors import IsolationError
from securenb.isolation.outbox import Caps, collect, empty
from securenb.isolation.recorder import Job, Recorder
from securenb.isolation.session import SESSION_ENV, session_notebook
from securenb.isolation.spec import SANDBOX_PREVIOUS, SandboxSpec, build_spec
from securenb.isolation.subkernel import Reply, Sink, SubKernel

BUILD_TYPE = "secure-train"
RUN_KIND = "secure_train"


@dataclass(frozen=True)
class TrainOptions:
    """The magic's options, already parsed (see securenb.kernel.train_magics)."""

    backend: str | None = None
    gpus: int | str | None = None
    image: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    timeout: int | None = None
    memory: str | None = None
    network: str = "none"
    resume: bool = False
    output_dir: str = "outputs"
    role: str | None = None  # for encrypted datasets; default $SECURENB_ROLE

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["secrets"] = [secrets.parse_ref(s).name for s in self.secrets]
        return data


@dataclass
class RunResult:
    """What a run did; ``reply`` carries the cell's error, if any (already redacted)."""

    run_id: str
    status: str
    reply: Reply
    backend: str
    cold_start_seconds: float | None
    outputs: list[transfer.OutputFile] = field(default_factory=list)
    rejected: list[transfer.OutputFile] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # checkpoints --resume passed over

    def fail(self, detail: str) -> None:
        """The cell ran, but what it produced cannot be accepted."""
        self.status = "error"
        self.reply = Reply("error", "OutputRefused", detail, detail=detail)


class Trainer:
    """Warm sandboxes of one parent kernel, and the recording of every run."""

    def __init__(self) -> None:
        self._pool: dict[Any, SubKernel] = {}
        self._digests = transfer.DigestCache()
        self._recorders: dict[Path, Recorder] = {}

    def workspace(self, cwd: Path) -> tuple[Workspace, Recorder]:
        """The workspace of ``cwd`` (read afresh: policy edits apply to the next run) and its
        recorder (one per workspace, writing on its own thread)."""
        ws = Workspace.find(cwd)
        if ws.root not in self._recorders:
            self._recorders[ws.root] = Recorder(ws.root)
        recorder = self._recorders[ws.root]
        recorder.check()
        return ws, recorder

    def flush(self) -> None:
        """Wait until every run so far is recorded (provenance, artifacts, audit)."""
        for recorder in self._recorders.values():
            recorder.flush()

    def run(self, code: str, options: TrainOptions, namespace: dict[str, Any], sink: Sink,
            cwd: Path | None = None) -> RunResult:
        cwd = Path(cwd or os.getcwd())
        ws, recorder = self.workspace(cwd)
        refs = [secrets.parse_ref(s) for s in options.secrets]
        values = {r.name: secrets.resolve(r) for r in refs}
        variables, named_paths, declared = _split_inputs(options.inputs, namespace, cwd)
        paths = [p for _, p in named_paths]
        datasets = transfer.open_datasets(declared, self._digests)
        transfer.check_data_policy(ws.policy.data, _data_policy_source(ws), named_paths, datasets)
        role = options.role or os.environ.get("SECURENB_ROLE") or None
        keys = transfer.dataset_keys(datasets, role, os.environ.get("SECURENB_KEK_URI"))
        spec = build_spec(
            ws.policy.isolation, workdir=cwd, backend=options.backend, inputs=tuple(paths),
            output_dir=cwd / options.output_dir, gpus=options.gpus, image=options.image,
            memory=options.memory, timeout=options.timeout, network=options.network,
            secret_names=tuple(r.name for r in refs),
        )
        inputs_key = (tuple(variables), tuple(d.name for d in datasets))
        kernel, cold = self._kernel(spec, values, inputs_key)
        run_id = uuid.uuid4().hex
        inbox = kernel.runtime.inbox / run_id
        interrupted = False
        skipped: list[str] = []
        try:
            staged = transfer.stage_variables({n: namespace[n] for n in variables}, inbox)
            copies = {d.name: kernel.dataset_copy(d, keys[d.name]) for d in datasets}
            redactor = secrets.Redactor(
                {**values, **{f"data key of {n}": c.key.to_secret() for n, c in copies.items()}})
            deps = self._dependencies(code, staged, paths, spec)
            deps[1:1] = [_dataset_dependency(d, role) for d in datasets]
            resume = None
            if options.resume:
                resume, skipped = self._resume(ws, recorder, spec)
                for reason in skipped:
                    sink("stream", {"name": "stderr", "text": "[securenb] --resume passed over "
                                    f"checkpoint {reason}\n"})
            if resume is not None:
                deps.append(Dependency(f"checkpoint:{ws.relpath(Path(resume['path']))}",
                                       resume["manifest_sha256"], "resumed-checkpoint"))
            _discard_strays(kernel.outbox, sink)
            started = now_rfc3339()
            recorder.submit(_start_job(run_id))
            require_schema = ws.policy.data.require_validated
            where = str(kernel.outbox) if spec.unsafe and spec.output_dir else spec.output_dir
            session = {"output_dir": where, "resume": _inside(resume, spec),
                       "inputs": [s.to_json() for s in staged],
                       "datasets": {n: c.session(require_schema) for n, c in copies.items()}}
            prelude = _call("begin", session) if session != kernel.session else None
            kernel.session = None if staged else session
            postlude = _call("end", {"outputs": list(options.outputs)}) if options.outputs else None
            try:  # a failed prelude comes back as the reply: the cell did not run
                reply, _, after = kernel.run(
                    code, sink, redactor, float(spec.limits.timeout_seconds), prelude, postlude
                )
            except KeyboardInterrupt:
                reply, after, interrupted = Reply("interrupted", detail="interrupted"), None, True
            if reply.status == "ok" and after is not None and after.status != "ok":
                reply = after  # e.g. an --outputs variable the cell did not define
        finally:
            shutil.rmtree(inbox, ignore_errors=True)
            kernel.stop_strays()
        result = RunResult(run_id, reply.status, reply, spec.backend, cold, skipped=skipped)
        try:
            self._collect(spec, kernel.outbox, options, namespace, result, redactor.text)
        finally:
            if not kernel.alive():
                self._forget(kernel)
        external: dict[str, Any] = {"options": options.to_json(),
                                    "cell": {"sha256": deps[0].sha256}}
        notebook = session_notebook(ws.root, os.environ.get(SESSION_ENV), cwd)
        if notebook is not None:
            external["notebook"] = notebook
        record = RunRecord(spec, run_id, started, now_rfc3339(), deps, result, external)
        recorder.submit(record.write)
        if interrupted:
            raise KeyboardInterrupt
        return result

    def _resume(self, ws: Workspace, recorder: Recorder,
                spec: SandboxSpec) -> tuple[dict[str, Any] | None, list[str]]:
        if spec.output_dir is None:
            return None, []
        recorder.flush()  # earlier runs' checkpoints must be on record before we trust them
        recorded = {(a.path, a.digest): a.run_id or ""
                    for a in ws.store.list_artifacts(limit=1_000_000)}
        return transfer.newest_verified_checkpoint(Path(spec.output_dir), recorded, ws.relpath)

    def _kernel(self, spec: SandboxSpec, values: dict[str, str],
                inputs: tuple[Any, ...]) -> tuple[SubKernel, float | None]:
        """The warm kernel of this configuration: same sandbox, same secrets, and the same
        declared inputs, so a cell never shares an interpreter with one that was handed
        inputs it was not (a fresh sandbox when they differ)."""
        key = (dataclasses.replace(spec, limits=dataclasses.replace(spec.limits,
                                                                     timeout_seconds=1)),
               hashlib.sha256(json.dumps(sorted(values.items())).encode()).hexdigest(), inputs)
        kernel = self._pool.get(key)
        if kernel is not None and kernel.alive():
            return kernel, None
        if kernel is not None:
            kernel.discard()
        kernel = SubKernel(spec, values)
        kernel.start()
        self._pool[key] = kernel
        return kernel, kernel.start_seconds

    def _forget(self, kernel: SubKernel) -> None:
        self._pool = {k: v for k, v in self._pool.items() if v is not kernel}
        kernel.discard()

    def _dependencies(self, code: str, staged: list[transfer.StagedInput], paths: list[Path],
                      spec: SandboxSpec) -> list[Dependency]:
        deps = [Dependency("securenb:cell", hashlib.sha256(code.encode()).hexdigest(), "cell")]
        deps += [Dependency(f"variable:{s.name}", s.sha256, s.name) for s in staged]
        deps += [Dependency(p.resolve().as_uri(), transfer.tree_digest(p, self._digests))
                 for p in paths]
        deps.append(environment(spec))
        return deps

    def _collect(self, spec: SandboxSpec, outbox: Path, options: TrainOptions,
                 namespace: dict[str, Any], result: RunResult,
                 redact: Callable[[str], str]) -> None:
        """Re-create what the run wrote in the output folder (``outbox.collect``), classify
        it, and load the declared output variables (safe loaders). Outputs that cannot be
        vetted fail the run, with the reason."""
        if spec.output_dir is None:
            return
        collected = collect(outbox, Path(spec.output_dir), Caps(max_bytes=spec.limits.output_bytes),
                            redact)
        result.rejected += [transfer.OutputFile(p, "", 0, "rejected", why)
                            for p, why in collected.refused]
        for item in transfer.vet(collected.files):
            (result.rejected if item.format == "rejected" else result.outputs).append(item)
        if collected.error:
            result.fail(f"outputs refused: {collected.error}")
        if result.status == "ok":
            written = {o.path: o.sha256 for o in result.outputs}
            try:
                for name in options.outputs:
                    namespace[name] = transfer.load_variable(Path(spec.output_dir), name,
                                                             written)
                    result.loaded.append(name)
            except IsolationError as exc:
                result.fail(str(exc))

    def shutdown(self) -> None:
        """Stop the warm sandboxes and write the records still queued."""
        for kernel in self._pool.values():
            kernel.discard()
        self._pool.clear()
        for recorder in self._recorders.values():
            recorder.close()
        self._recorders.clear()


@dataclass
class RunRecord:
    """Everything recorded about one run; ``write`` runs on the recorder's thread. Also
    the record of a whole-notebook isolated kernel (``securenb.isolation.kernel_runs``)."""

    spec: SandboxSpec
    run_id: str
    started: str
    finished: str
    deps: list[Dependency]
    result: RunResult
    external: dict[str, Any]  # what was asked for: options, the cell's digest
    build_type: str = BUILD_TYPE
    action: str = "secure_train.run"

    def write(self, ws: Workspace) -> None:
        """Artifacts exactly as vetted (not rehashed), signed provenance, run row, audit."""
        result, spec = self.result, self.spec
        artifacts = [Artifact(o.sha256, ws.relpath(o.path), transfer.MEDIA_TYPES[o.format],
                              o.size, self.run_id, self.finished) for o in result.outputs]
        if artifacts and ws.store.add_artifacts(artifacts):
            for item in artifacts:
                ws.audit("artifact.record", f"sha256:{item.digest}", {"path": item.path})
        outcome = {"run_id": self.run_id, "status": result.status,
                   "detail": result.reply.detail, "error": result.reply.ename,
                   "started": self.started, "finished": self.finished}
        if "cell" in self.external:
            outcome["cell"] = self.external["cell"]["sha256"]
        # the outcome is also in the predicate (byproducts), so its digest is checkable there
        subjects = [Subject(f"securenb-run:{self.run_id}", sha256_hex(canonical_json(outcome)))]
        subjects += [Subject(ws.relpath(o.path), o.sha256) for o in result.outputs]
        provenance = RunProvenance(
            build_type=self.build_type, run_id=self.run_id, started=self.started,
            finished=self.finished, external_parameters=self.external,
            internal_parameters={"sandbox": spec.to_json(), "unsafe": spec.unsafe,
                                 "cold_start_seconds": result.cold_start_seconds},
            dependencies=self.deps, builder=spec.backend,
            byproducts=[{"name": "result", "annotations": outcome}] + [
                {"name": ws.relpath(r.path), "digest": {"sha256": r.sha256} if r.sha256 else {},
                 "annotations": {"rejected": r.reason}} for r in result.rejected] + [
                {"name": "skipped-checkpoint", "annotations": {"reason": s}}
                for s in result.skipped],
        )
        record = ws.attest(provenance.statement(subjects))
        ws.store.finish_run(self.run_id, result.status, record.envelope)
        ws.audit(self.action, f"run:{self.run_id}", {
            "status": result.status, "backend": spec.backend, "unsafe": spec.unsafe,
            "secrets": list(spec.secret_names),
            "datasets": [dict(d.annotations)["dataset_id"] for d in self.deps
                         if isinstance(d, DatasetDependency)],
            "outputs": len(result.outputs),
            "rejected": len(result.rejected), "provenance": f"sha256:{record.envelope}",
        })


def _start_job(run_id: str) -> Job:
    def start(ws: Workspace) -> None:
        ws.store.start_run(run_id, RUN_KIND)
    return start


def _split_inputs(items: tuple[str, ...], namespace: dict[str, Any], cwd: Path
                  ) -> tuple[list[str], list[tuple[str, Path]], list[tuple[str, str, Path]]]:
    """Kernel variables by name, paths (relative to the notebook folder) as (item, path),
    and encrypted datasets as (name, item, path): ``NAME=PATH``, or a path with a manifest
    beside it (then named by the path as written)."""
    variables, paths, datasets = [], [], []
    for item in items:
        name, sep, target = item.partition("=")
        if sep and name.isidentifier():
            if not (cwd / target).is_file():
                raise IsolationError(f"--inputs {item}: {target} is not a file")
            datasets.append((name, item, cwd / target))
        elif item.isidentifier() and item in namespace:
            variables.append(item)
        elif transfer.is_dataset(cwd / item):
            datasets.append((item, item, cwd / item))
        elif (cwd / item).exists():
            paths.append((item, cwd / item))
        else:
            raise IsolationError(f"--inputs {item}: neither a kernel variable nor an existing path")
    return variables, paths, datasets


@dataclass(frozen=True)
class DatasetDependency(Dependency):
    """A dataset in resolvedDependencies: the ciphertext's digest, with the dataset's id and
    the digest of its manifest (what its key is bound to) as annotations."""

    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "annotations": dict(self.annotations)}


def _dataset_dependency(ds: transfer.DatasetInput, role: str | None) -> DatasetDependency:
    notes = {"dataset_id": ds.manifest.dataset_id, "manifest_sha256": ds.manifest.digest(),
             "media_type": ds.manifest.media_type, "kek_id": ds.record.key.kek_id}
    if role:
        notes["role"] = role
    return DatasetDependency(ds.path.as_uri(), ds.sha256, f"dataset:{ds.name}",
                             tuple(notes.items()))


def _data_policy_source(ws: Workspace) -> str:
    """Where the data policy is set, as a user would look it up."""
    source = ws.policy_and_source[1]
    table = "[tool.securenb.data]" if source and source.name == PYPROJECT else "[data]"
    return f"{table} in {source}"


def environment(spec: SandboxSpec) -> Dependency:
    """The software a sandbox ran: its image, or its Python environment's packages."""
    if spec.backend in ("podman", "docker") and (spec.image or "host") != "host":
        digest = containers.image_digest(spec.backend, spec.image)
        if digest is None:
            raise IsolationError(f"image {spec.image}: the {spec.backend} engine does not know it")
        return Dependency(f"oci-image:{spec.image}", digest, "image")
    digest, count = hostenv.packages_digest(spec.python.prefix)
    return Dependency(f"python-env:{spec.python.prefix}?packages={count}", digest, "environment")


def _inside(resume: dict[str, Any] | None, spec: SandboxSpec) -> dict[str, Any] | None:
    """The checkpoint as the sandbox sees it: earlier outputs are at SANDBOX_PREVIOUS."""
    if resume is None or spec.output_dir is None or spec.unsafe:  # unsafe: no sandbox view
        return resume
    relative = Path(resume["path"]).relative_to(spec.output_dir)
    return {**resume, "path": str(Path(SANDBOX_PREVIOUS) / relative)}


def _call(function: str, config: dict[str, Any]) -> str:
    payload = json.dumps(json.dumps(config))
    return f"__import__('securenb.sandbox._session', fromlist=['_']).{function}({payload})"


def _discard_strays(outbox: Path, sink: Sink) -> None:
    """Empty an outbox that is not empty before a run: each run's outputs are collected
    and the outbox emptied, so what is there now was written between runs (a thread an
    earlier cell left in the warm kernel); it is no run's output, least of all this one's."""
    try:
        found = os.listdir(outbox)
    except OSError:
        return
    if found:
        empty(outbox)
        sink("stream", {"name": "stderr", "text": f"[securenb] discarded {len(found)} "
                        "file(s) written in the sandbox between runs (by a thread or process "
                        "an earlier cell left running)\n"})
