"""A batch as Kubernetes Jobs: one pod per run, the provisioner's restricted pod.

Per run: an immutable ConfigMap (the notebook and its parameters as JSON text),
a NetworkPolicy that admits no traffic at all, and a Job whose pod is
``securenb.isolation.kube.pod_manifest`` (every Pod Security Standards
"restricted" field) with two containers:

- ``kernel``: the provisioner's kernel container, unchanged but for its command
  (wait for the runner's connection file, see ``securenb.runs.pod``), the
  project volume read-only with ``.securenb/`` and ``.git`` hidden, and only
  the run's output folder writable;
- ``runner``: ``securenb run --pod-kernel``, with the same security context, the
  project volume (workspace, keys, audit log) writable, and the passphrase of
  the keys from a Kubernetes Secret. It records, signs and writes the output as
  ``securenb run`` does on one machine.

No manifest holds a secret value: secrets and the passphrase are references to
Kubernetes Secrets by name. Submitting needs ``KUBECONFIG`` (or a cluster).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.locate import DIR_NAME
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.isolation import kube
from securenb.isolation.spec import SANDBOX_HOME, build_spec
from securenb.runs import params as params_mod
from securenb.runs import pod
from securenb.runs.batch import BatchItem
from securenb.runs.kernel import check_output_dir

WORKSPACE = "/workspace"  # the project volume, in both containers
JOB_DIR = "/run/securenb/job"  # the ConfigMap, in the runner
OUTPUTS = "/outputs"  # the kernel's writable folder: the run's output folder of the volume
CONFIGMAP_LIMIT = 1 << 20  # the API server's limit on one ConfigMap
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class PodOptions:
    """Where the pods run and what they are given (names only, never values)."""

    image: str
    claim: str  # PersistentVolumeClaim holding the project (with .securenb/)
    namespace: str = "default"
    # names of Secrets, not values: "passphrase" unlocks the workspace keys; the other
    # has one key per --secret NAME
    keys_secret: str = "securenb-keys"  # noqa: S105
    secrets_secret: str = "securenb-run-secrets"  # noqa: S105
    secret_names: tuple[str, ...] = ()
    gpus: int | str | None = None
    options: tuple[str, ...] = ()  # further `securenb run` options (timeouts)

    def check(self) -> None:
        for flag, value in (("--k8s-claim", self.claim), ("--k8s-namespace", self.namespace),
                            ("--k8s-keys-secret", self.keys_secret),
                            ("--k8s-secrets-secret", self.secrets_secret)):
            if not _DNS_LABEL.match(value):
                raise SecurenbError(f"{flag} {value!r}: not a Kubernetes name (lower-case "
                                    "letters, digits and '-', at most 63)")


def job_name(item: BatchItem) -> str:
    """``securenb-<notebook>-<digest of notebook name, output and parameters>``."""
    stem = re.sub(r"[^a-z0-9-]+", "-", item.output.stem.lower()).strip("-")[:36] or "run"
    key = json.dumps([item.notebook.name, str(item.output), params_mod.to_text(item.parameters)])
    return f"securenb-{stem}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def manifests(ws: Workspace, item: BatchItem, opts: PodOptions) -> list[dict[str, Any]]:
    """ConfigMap, NetworkPolicy and Job of one run."""
    opts.check()
    name = job_name(item)
    notebook = item.notebook.read_text()
    data = {"notebook.ipynb": notebook, "parameters.json": params_mod.to_text(item.parameters),
            "empty": ""}  # mounted over the project's hidden files
    if sum(len(v.encode()) for v in data.values()) > CONFIGMAP_LIMIT:
        raise SecurenbError(f"{item.notebook}: too large for a ConfigMap (1 MiB); clear its "
                            "outputs first")
    output = _in_project(ws, item.output, "the output")
    check_output_dir(item.output_dir)
    spec = build_spec(ws.policy.isolation, workdir=ws.root, backend="kubernetes",
                      image=opts.image, gpus=opts.gpus, secret_names=opts.secret_names)
    pod_spec = kube.pod_manifest(spec, name, opts.namespace)["spec"]
    labels = {kube.LABEL: name, "app.kubernetes.io/name": "securenb-run"}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "immutable": True,
                 "metadata": {"name": name, "namespace": opts.namespace, "labels": labels},
                 "data": data}
    policy = kube.network_policy(name, opts.namespace)
    policy["metadata"]["name"] = name
    policy["spec"]["ingress"] = []  # nobody reaches the pod; it reaches nothing either
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": opts.namespace, "labels": labels},
           "spec": {"backoffLimit": 0,  # a failed run is signed as failed, not retried
                    "activeDeadlineSeconds": spec.limits.timeout_seconds,
                    "template": {"metadata": {"labels": labels},
                                 "spec": _pod_spec(ws, pod_spec, item, opts, output)}}}
    return [configmap, policy, job]


def _in_project(ws: Workspace, path: Path, what: str) -> str:
    rel = ws.relpath(path)
    if rel.startswith("/"):
        raise SecurenbError(f"{path}: {what} of a pod run must be inside the project "
                            f"({ws.root}), which the pod mounts at {WORKSPACE}")
    return rel


def _pod_spec(ws: Workspace, base: dict[str, Any], item: BatchItem, opts: PodOptions,
              output: str) -> dict[str, Any]:
    """The provisioner's pod, with the connection folder shared and a runner beside.

    Mount points inside the read-only project must exist on the volume: the hidden
    entries are hidden where they exist in the project rendered (a copy of the volume's),
    and the kernel's writable folder lies outside it (``/outputs``), created on the
    volume by an init container first (with the output notebook's folder).
    """
    spec = copy.deepcopy(base)
    (kernel,) = spec["containers"]
    kernel["command"] = pod.kernel_command()
    kernel["workingDir"] = WORKSPACE
    del kernel["ports"]  # the kernel listens on the pod's loopback only
    for env in kernel["env"]:  # the run's secrets come from the user's Secret, by name
        if "valueFrom" in env:
            env["valueFrom"]["secretKeyRef"] = _ref(opts.secrets_secret, env["name"])
    kernel["env"].append({"name": "SECURENB_OUTPUT_DIR", "value": OUTPUTS})
    kernel["volumeMounts"] += [
        {"name": "project", "mountPath": WORKSPACE, "readOnly": True},
        *[{"name": "hidden", "mountPath": f"{WORKSPACE}/{n}", "readOnly": True}
          if (ws.root / n).is_dir() else
          {"name": "job", "mountPath": f"{WORKSPACE}/{n}", "subPath": "empty", "readOnly": True}
          for n in pod.HIDDEN if (ws.root / n).exists() or n == DIR_NAME],
        {"name": "project", "mountPath": OUTPUTS, "subPath": item.output_dir},
    ]
    for mount in kernel["volumeMounts"]:
        if mount["name"] == "connection":
            mount["readOnly"] = True
    runner = {
        "name": "runner",
        "image": opts.image,
        "imagePullPolicy": kernel["imagePullPolicy"],
        "workingDir": WORKSPACE,
        "command": ["securenb", "-C", WORKSPACE, "run", f"{JOB_DIR}/notebook.ipynb",
                    f"{WORKSPACE}/{output}", "--parameters-json", f"@{JOB_DIR}/parameters.json",
                    "--output-dir", item.output_dir, "--isolation", "kubernetes",
                    "--pod-kernel", kube.CONNECTION_DIR, "--pod-image", opts.image,
                    "--json", "--no-progress-bar",
                    *[a for n in opts.secret_names for a in ("--secret", n)],
                    *(["--gpus", str(opts.gpus)] if opts.gpus is not None else []),
                    *opts.options],
        "env": [{"name": "HOME", "value": SANDBOX_HOME},
                {"name": "SECURENB_KEY_PASSPHRASE",
                 "valueFrom": {"secretKeyRef": _ref(opts.keys_secret, "passphrase")}},
                # the runner redacts the secrets from every output: it needs their values
                *[{"name": n, "valueFrom": {"secretKeyRef": _ref(opts.secrets_secret, n)}}
                  for n in opts.secret_names]],
        "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}},
        "securityContext": copy.deepcopy(kernel["securityContext"]),
        "volumeMounts": [
            {"name": "connection", "mountPath": kube.CONNECTION_DIR},
            {"name": "job", "mountPath": JOB_DIR, "readOnly": True},
            {"name": "project", "mountPath": WORKSPACE},
            {"name": "runner-tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own tmpfs
            {"name": "runner-home", "mountPath": SANDBOX_HOME},
        ],
    }
    spec["containers"] = [kernel, runner]
    spec["initContainers"] = [{
        "name": "prepare",
        "image": opts.image,
        "imagePullPolicy": kernel["imagePullPolicy"],
        "command": ["python3", "-c",
                    "import os, sys; [os.makedirs(p, exist_ok=True) for p in sys.argv[1:]]",
                    f"{WORKSPACE}/{item.output_dir}", str(Path(f"{WORKSPACE}/{output}").parent)],
        "securityContext": copy.deepcopy(kernel["securityContext"]),
        "volumeMounts": [{"name": "project", "mountPath": WORKSPACE}],
    }]
    name = job_name(item)
    volumes = [v for v in spec["volumes"] if v["name"] != "connection"]
    spec["volumes"] = [
        {"name": "connection", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        *volumes,
        {"name": "job", "configMap": {"name": name, "defaultMode": 0o444}},
        {"name": "project", "persistentVolumeClaim": {"claimName": opts.claim}},
        {"name": "hidden", "emptyDir": {"sizeLimit": "1Mi"}},
        {"name": "runner-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "runner-home", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    return spec


def _ref(secret: str, key: str) -> dict[str, str]:
    return {"name": secret, "key": key}


def render(ws: Workspace, items: list[BatchItem], opts: PodOptions,
           folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every run's manifests, all checked before ``folder/<job>.yaml`` files are written."""
    import yaml  # type: ignore[import-untyped]

    from securenb.core.fsutil import atomic_writer

    rendered = {job_name(item): manifests(ws, item, opts) for item in items}
    if len(rendered) != len(items):
        raise SecurenbError("two runs of the batch would get the same Job name")
    folder.mkdir(parents=True, exist_ok=True)
    for name, docs in rendered.items():
        with atomic_writer(folder / f"{name}.yaml") as fh:
            fh.write(yaml.safe_dump_all(docs, sort_keys=False).encode())
    return rendered


def check_cluster() -> None:
    """Submitting needs KUBECONFIG (or a pod's in-cluster configuration)."""
    if not (os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST")):
        raise SecurenbError("--submit needs a cluster: set KUBECONFIG (or render without "
                            "--submit and apply the manifests with kubectl apply -f)")


def submit(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Create the objects with the official ``kubernetes`` client."""
    check_cluster()
    client = kube._client()  # a clear error if the client is missing or the config is bad
    from kubernetes import utils

    api = client.ApiClient()
    for docs in rendered.values():
        for doc in docs:
            try:
                utils.create_from_dict(  # type: ignore[no-untyped-call]
                    api, doc, namespace=doc["metadata"]["namespace"])
            except utils.FailToCreateError as exc:
                raise SecurenbError(f"{doc['kind']} {doc['metadata']['name']}: the cluster "
                                    f"refused it ({exc})") from None
