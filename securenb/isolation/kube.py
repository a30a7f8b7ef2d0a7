"""Kubernetes: one pod per kernel that passes the Pod Security Standards "restricted" profile.

Manifests are plain dicts (tested rule by rule without a cluster); the
provisioner applies them with the official ``kubernetes`` client. The pod runs
the image's ipykernel as a non-root user with every capability dropped, no
privilege escalation, the runtime's default seccomp profile, a read-only root
file system, no service-account token and only emptyDir/secret volumes. A
NetworkPolicy admits only the kernel's five ports, from selected client pods,
and no egress at all. The connection file and the secrets travel in a Secret;
GPUs are ``nvidia.com/gpu`` limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Dict, Float, Unicode

from securenb.core import policy as policy_mod
from securenb.core.workspace import Workspace
from securenb.errors import WorkspaceError
from securenb.isolation.errors import BackendUnavailableError, IsolationError
from securenb.isolation.spec import SANDBOX_HOME, SANDBOX_UID, SandboxSpec, build_spec

PORT_NAMES = ("shell", "iopub", "stdin", "control", "hb")
FIRST_PORT = 52700
CONNECTION_DIR = "/var/run/securenb"
LABEL = "securenb.dev/kernel-id"
CLIENT_LABELS = {"securenb.dev/kernel-client": "true"}
INSTALL_HINT = "pip install kubernetes, and set KUBECONFIG (or run inside a cluster)"


def ports() -> dict[str, int]:
    return {f"{name}_port": FIRST_PORT + i for i, name in enumerate(PORT_NAMES)}


def names(kernel_id: str) -> str:
    return f"securenb-{kernel_id}"[:63]


def pod_manifest(spec: SandboxSpec, kernel_id: str, namespace: str) -> dict[str, Any]:
    """The kernel pod; every PSS "restricted" field set explicitly."""
    if not spec.image:
        raise IsolationError("kubernetes needs a container image: set [tool.securenb.isolation] "
                             "image or pass --image")
    if spec.gpus == "all":
        raise IsolationError("kubernetes needs a GPU count (nvidia.com/gpu), not 'all'")
    name = names(kernel_id)
    limits: dict[str, Any] = {"memory": spec.limits.k8s_memory()}
    if spec.gpus not in (0, "0"):
        limits["nvidia.com/gpu"] = int(spec.gpus)
    no_root = {"runAsNonRoot": True, "runAsUser": SANDBOX_UID, "runAsGroup": SANDBOX_UID}
    env: list[dict[str, Any]] = [{"name": "HOME", "value": SANDBOX_HOME},
                                 {"name": "SECURENB_SANDBOX", "value": "kubernetes"}]
    env += [{"name": k, "value": v} for k, v in spec.env]
    env += [{"name": s, "valueFrom": {"secretKeyRef": {"name": name, "key": f"secret-{s}"}}}
            for s in spec.secret_names]
    tmp_size = f"{spec.limits.tmpfs_bytes // (1 << 20)}Mi"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {LABEL: kernel_id, "app.kubernetes.io/name": "securenb-kernel"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False, "hostPID": False, "hostIPC": False,
            "securityContext": {**no_root, "fsGroup": SANDBOX_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "kernel",
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-m", "ipykernel_launcher", "-f",
                            f"{CONNECTION_DIR}/kernel.json"],
                "ports": [{"name": n, "containerPort": p, "protocol": "TCP"}
                          for n, p in zip(PORT_NAMES, ports().values(), strict=True)],
                "env": env,
                "resources": {"limits": limits, "requests": dict(limits)},
                "securityContext": {
                    **no_root,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "procMount": "Default",
                },
                "volumeMounts": [
                    {"name": "connection", "mountPath": CONNECTION_DIR, "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own tmpfs
                    {"name": "home", "mountPath": SANDBOX_HOME},
                ],
            }],
            "volumes": [
                {"name": "connection", "secret": {"secretName": name, "defaultMode": 0o440,
                                                  "items": [{"key": "kernel.json",
                                                             "path": "kernel.json"}]}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": tmp_size}},
                {"name": "home", "emptyDir": {"sizeLimit": tmp_size}},
            ],
        },
    }


def network_policy(kernel_id: str, namespace: str,
                   client_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Ingress to the kernel's ports from client pods only; no egress (not even DNS)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": names(kernel_id), "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {LABEL: kernel_id}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": client_labels or CLIENT_LABELS}}],
                "ports": [{"protocol": "TCP", "port": p} for p in ports().values()],
            }],
            "egress": [],
        },
    }


def secret_manifest(kernel_id: str, namespace: str, connection: dict[str, Any],
                    secrets: dict[str, str]) -> dict[str, Any]:
    """Connection file and secret values; only ever sent to the API server."""
    data = {"kernel.json": json.dumps(connection)}
    data.update({f"secret-{k}": v for k, v in secrets.items()})
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": names(kernel_id), "namespace": namespace,
                         "labels": {LABEL: kernel_id}},
            "stringData": data}


def _project_root(cwd: Path) -> Path:
    try:
        return Workspace.find(cwd).root
    except WorkspaceError:
        return cwd


def _client() -> Any:
    try:
        from kubernetes import client, config
    except ImportError:
        raise BackendUnavailableError("kubernetes", "the kubernetes client is missing",
                                      INSTALL_HINT) from None
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        else:
            # KUBECONFIG as set now (the client reads it once, when first imported)
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG"))
    except Exception as exc:
        raise BackendUnavailableError("kubernetes", f"no cluster configuration ({exc})",
                                      INSTALL_HINT) from None
    return client


class KubernetesProvisioner(KernelProvisionerBase):
    """Starts the kernel as a pod; the parent connects to the pod IP over TCP."""

    namespace = Unicode("default", config=True, help="Namespace of the kernel pods.")
    image = Unicode("", config=True, help="Kernel image (default: the workspace policy's).")
    client_labels = Dict(config=True, help="Labels of the pods allowed to reach kernels.")
    start_timeout = Float(300.0, config=True, help="Seconds to wait for the pod to run.")

    sandbox_spec: SandboxSpec | None = None
    secret_env: dict[str, str] | None = None
    _pod_ip: str | None = None
    _exit: int | None = None

    @property
    def has_process(self) -> bool:
        return self._pod_ip is not None and self._exit is None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if self.sandbox_spec is None:
            cwd = Path(kwargs.get("cwd") or os.getcwd())
            policy, _ = policy_mod.load_policy(_project_root(cwd))
            self.sandbox_spec = build_spec(policy.isolation, workdir=cwd, backend="kubernetes",
                                           image=self.image or None)
        pod_manifest(self.sandbox_spec, self.kernel_id, self.namespace)  # fail early if invalid
        km = self.parent
        assert km is not None
        km.transport = "tcp"
        km.ip = "0.0.0.0"  # noqa: S104 - inside the pod; the NetworkPolicy restricts who connects
        for key, port in ports().items():
            setattr(km, key, port)
        km.write_connection_file()
        self.connection_info = km.get_connection_info()
        kwargs = await super().pre_launch(**kwargs)
        kwargs["cmd"] = []
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        spec = self.sandbox_spec
        assert spec is not None
        connection = {k: (v.decode() if isinstance(v, bytes) else v)
                      for k, v in self.connection_info.items()}
        try:
            await asyncio.to_thread(self._create, spec, connection)
            self._pod_ip = await asyncio.to_thread(self._wait_running)
        except BaseException:
            # a pod that never ran leaves nothing behind: not its Secret (the kernel's
            # connection key), its NetworkPolicy or the pod itself
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._delete, pod_only=False)
            raise
        return {**self.connection_info, "ip": self._pod_ip}

    def _create(self, spec: SandboxSpec, connection: dict[str, Any]) -> None:
        client = _client()
        core, net = client.CoreV1Api(), client.NetworkingV1Api()
        ns = self.namespace
        core.create_namespaced_secret(ns, secret_manifest(self.kernel_id, ns, connection,
                                                          self.secret_env or {}))
        net.create_namespaced_network_policy(
            ns, network_policy(self.kernel_id, ns, dict(self.client_labels) or None))
        core.create_namespaced_pod(ns, pod_manifest(spec, self.kernel_id, ns))

    def _wait_running(self) -> str:
        core = _client().CoreV1Api()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            pod = core.read_namespaced_pod(names(self.kernel_id), self.namespace)
            if pod.status.phase == "Running" and pod.status.pod_ip:
                return str(pod.status.pod_ip)
            if pod.status.phase in ("Failed", "Succeeded"):
                raise IsolationError(f"kernel pod {names(self.kernel_id)} ended: "
                                     f"{pod.status.phase} {pod.status.message or ''}")
            time.sleep(1)
        raise IsolationError(f"kernel pod {names(self.kernel_id)} not running after "
                             f"{self.start_timeout:g} s")

    async def poll(self) -> int | None:
        if self._exit is not None:
            return self._exit
        phase = await asyncio.to_thread(self._phase)
        if phase in ("Pending", "Running"):
            return None
        self._exit = 0 if phase == "Succeeded" else 1
        return self._exit

    def _phase(self) -> str:
        try:
            pod = _client().CoreV1Api().read_namespaced_pod(names(self.kernel_id), self.namespace)
        except Exception:
            return "Gone"
        return str(pod.status.phase)

    async def wait(self) -> int | None:
        while (code := await self.poll()) is None:
            await asyncio.sleep(1)
        return code

    async def send_signal(self, signum: int) -> None:
        """Only ending the pod is possible; interrupts travel as messages."""
        if signum in (signal.SIGKILL, signal.SIGTERM):
            await self.kill()

    async def kill(self, restart: bool = False) -> None:
        await asyncio.to_thread(self._delete, pod_only=True)
        self._exit = -signal.SIGKILL

    async def terminate(self, restart: bool = False) -> None:
        await self.kill(restart)

    async def cleanup(self, restart: bool = False) -> None:
        await asyncio.to_thread(self._delete, pod_only=restart)

    def _delete(self, pod_only: bool) -> None:
        client = _client()
        core, net, name = client.CoreV1Api(), client.NetworkingV1Api(), names(self.kernel_id)
        calls: list[Callable[[], object]] = [
            lambda: core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)]
        if not pod_only:
            calls += [lambda: core.delete_namespaced_secret(name, self.namespace),
                      lambda: net.delete_namespaced_network_policy(name, self.namespace)]
        for call in calls:
            try:
                call()
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
