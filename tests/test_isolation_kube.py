"""Kubernetes manifests against every Pod Security Standards "restricted" rule.

``RULES`` is an independent reading of the standard (baseline + restricted,
https://kubernetes.io/docs/concepts/security/pod-security-standards/): each
rule is one test that our pod passes, and one that a pod breaking it fails,
so a rule cannot pass vacuously. The integration test needs a real cluster.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_api import ApiServer

from securenb.core.policy import IsolationPolicy
from securenb.isolation import kube
from securenb.isolation.errors import IsolationError
from securenb.isolation.spec import SandboxSpec, build_spec

Pod = dict[str, Any]
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                   "persistentVolumeClaim", "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _containers(pod: Pod) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("containers", []), *spec.get("initContainers", []),
            *spec.get("ephemeralContainers", [])]


def _effective(pod: Pod, container: dict[str, Any], key: str) -> Any:
    value = container.get("securityContext", {}).get(key)
    return pod["spec"].get("securityContext", {}).get(key) if value is None else value


def host_namespaces(pod: Pod) -> bool:
    return not any(pod["spec"].get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))


def privileged(pod: Pod) -> bool:
    return not any(c.get("securityContext", {}).get("privileged") for c in _containers(pod))


def host_process(pod: Pod) -> bool:
    contexts = [pod["spec"].get("securityContext", {})] + [
        c.get("securityContext", {}) for c in _containers(pod)]
    return not any(s.get("windowsOptions", {}).get("hostProcess") for s in contexts)


def capabilities_baseline(pod: Pod) -> bool:
    return all(set(c.get("securityContext", {}).get("capabilities", {}).get("add", []))
               <= BASELINE_CAPS for c in _containers(pod))


def host_path_volumes(pod: Pod) -> bool:
    return not any("hostPath" in v for v in pod["spec"].get("volumes", []))


def host_ports(pod: Pod) -> bool:
    return all(p.get("hostPort", 0) == 0 for c in _containers(pod) for p in c.get("ports", []))


def apparmor(pod: Pod) -> bool:
    profiles = [pod["spec"].get("securityContext", {}).get("appArmorProfile")] + [
        c.get("securityContext", {}).get("appArmorProfile") for c in _containers(pod)]
    return all(p is None or p.get("type") in ("RuntimeDefault", "Localhost") for p in profiles)


def selinux(pod: Pod) -> bool:
    options = [pod["spec"].get("securityContext", {}).get("seLinuxOptions")] + [
        c.get("securityContext", {}).get("seLinuxOptions") for c in _containers(pod)]
    return all(o is None or (o.get("type", "") in ("", "container_t", "container_init_t",
                                                   "container_kvm_t", "container_engine_t")
                             and not o.get("user") and not o.get("role")) for o in options)


def proc_mount(pod: Pod) -> bool:
    return all(c.get("securityContext", {}).get("procMount", "Default") == "Default"
               for c in _containers(pod))


def sysctls(pod: Pod) -> bool:
    return all(s["name"] in SAFE_SYSCTLS
               for s in pod["spec"].get("securityContext", {}).get("sysctls", []))


def volume_types(pod: Pod) -> bool:
    return all(set(v) - {"name"} <= ALLOWED_VOLUMES for v in pod["spec"].get("volumes", []))


def privilege_escalation(pod: Pod) -> bool:
    return all(c.get("securityContext", {}).get("allowPrivilegeEscalation") is False
               for c in _containers(pod))


def running_as_non_root(pod: Pod) -> bool:
    return all(_effective(pod, c, "runAsNonRoot") is True for c in _containers(pod))


def running_as_non_root_user(pod: Pod) -> bool:
    return all(_effective(pod, c, "runAsUser") != 0 for c in _containers(pod))


def seccomp(pod: Pod) -> bool:
    return all((_effective(pod, c, "seccompProfile") or {}).get("type")
               in ("RuntimeDefault", "Localhost") for c in _containers(pod))


def capabilities_restricted(pod: Pod) -> bool:
    for c in _containers(pod):
        caps = c.get("securityContext", {}).get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            return False
    return True


def _set(path: str, value: Any) -> Callable[[Pod], None]:
    def apply(pod: Pod) -> None:
        node: Any = pod
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


# rule -> (check, a mutation that breaks it)
RULES: dict[str, tuple[Callable[[Pod], bool], Callable[[Pod], None]]] = {
    "host namespaces": (host_namespaces, _set("spec.hostPID", True)),
    "privileged containers": (privileged,
                              _set("spec.containers.0.securityContext.privileged", True)),
    "windows host process": (host_process,
                             _set("spec.securityContext.windowsOptions", {"hostProcess": True})),
    "capabilities (baseline)": (capabilities_baseline, _set(
        "spec.containers.0.securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]})),
    "hostPath volumes": (host_path_volumes,
                         _set("spec.volumes.0", {"name": "h", "hostPath": {"path": "/"}})),
    "host ports": (host_ports, _set("spec.containers.0.ports.0.hostPort", 8888)),
    "AppArmor": (apparmor, _set("spec.securityContext.appArmorProfile", {"type": "Unconfined"})),
    "SELinux": (selinux, _set("spec.securityContext.seLinuxOptions", {"type": "spc_t"})),
    "/proc mount type": (proc_mount,
                         _set("spec.containers.0.securityContext.procMount", "Unmasked")),
    "sysctls": (sysctls, _set("spec.securityContext.sysctls",
                              [{"name": "kernel.msgmax", "value": "1"}])),
    "volume types": (volume_types,
                     _set("spec.volumes.0", {"name": "n", "nfs": {"server": "x", "path": "/"}})),
    "privilege escalation": (privilege_escalation, _set(
        "spec.containers.0.securityContext.allowPrivilegeEscalation", True)),
    "running as non-root": (running_as_non_root,
                            _set("spec.containers.0.securityContext.runAsNonRoot", False)),
    "running as non-root user": (running_as_non_root_user,
                                 _set("spec.containers.0.securityContext.runAsUser", 0)),
    "seccomp": (seccomp, _set("spec.containers.0.securityContext.seccompProfile",
                              {"type": "Unconfined"})),
    "capabilities (restricted)": (capabilities_restricted, _set(
        "spec.containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]})),
}


def _spec(tmp_path: Path, **kw: Any) -> SandboxSpec:
    options: dict[str, Any] = {"image": "registry.example/securenb-kernel:1", **kw}
    return build_spec(IsolationPolicy(memory="6g"), workdir=tmp_path, backend="kubernetes",
                      secret_names=("HF_TOKEN",), **options)


@pytest.fixture
def pod(tmp_path: Path) -> Pod:
    return kube.pod_manifest(_spec(tmp_path), "k1", "ml")


@pytest.mark.parametrize("rule", list(RULES))
def test_pod_passes_restricted_rule(pod: Pod, rule: str) -> None:
    check, _ = RULES[rule]
    assert check(pod), rule


@pytest.mark.parametrize("rule", list(RULES))
def test_rule_check_catches_a_violation(pod: Pod, rule: str) -> None:
    check, breaks = RULES[rule]
    broken = copy.deepcopy(pod)
    breaks(broken)
    assert not check(broken), rule


def test_pod_hardening_beyond_the_standard(pod: Pod) -> None:
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["resources"]["limits"]["memory"] == "6144Mi"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_secrets_are_references_in_the_pod_and_values_in_the_secret(pod: Pod) -> None:
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "securenb-k1",
                                                            "key": "secret-HF_TOKEN"}
    secret = kube.secret_manifest("k1", "ml", {"key": "abc"}, {"HF_TOKEN": "v4lue"})
    assert secret["stringData"]["secret-HF_TOKEN"] == "v4lue"
    assert "v4lue" not in str(pod)


def test_gpus_are_limits(tmp_path: Path) -> None:
    pod = kube.pod_manifest(_spec(tmp_path, gpus=2), "k2", "ml")
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 2
    with pytest.raises(IsolationError, match="GPU count"):
        kube.pod_manifest(_spec(tmp_path, gpus="all"), "k3", "ml")


def test_an_image_is_required(tmp_path: Path) -> None:
    spec = build_spec(IsolationPolicy(), workdir=tmp_path, backend="kubernetes")
    with pytest.raises(IsolationError, match="needs a container image"):
        kube.pod_manifest(spec, "k4", "ml")


def test_network_policy_allows_only_the_kernel_ports() -> None:
    policy = kube.network_policy("k1", "ml")
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {kube.LABEL: "k1"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["egress"] == []
    (rule,) = spec["ingress"]
    assert sorted(p["port"] for p in rule["ports"]) == sorted(kube.ports().values())
    assert all(p["protocol"] == "TCP" for p in rule["ports"]) and len(rule["ports"]) == 5
    assert rule["from"] == [{"podSelector": {"matchLabels": kube.CLIENT_LABELS}}]


def test_pod_ports_match_the_connection_ports(pod: Pod) -> None:
    declared = {p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert declared == set(kube.ports().values())


@pytest.fixture
def cluster() -> Iterator[str]:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no cluster: set KUBECONFIG (and SECURENB_K8S_IMAGE, an image with "
                    "ipykernel; pod IPs must be reachable from here) to run against one")
    image = os.environ.get("SECURENB_K8S_IMAGE")
    if not image:
        pytest.skip("set SECURENB_K8S_IMAGE to an image with python3 and ipykernel")
    yield image


def _pod_kernel(name: str, spec: SandboxSpec, secret: str, namespace: str) -> Any:
    """A KernelManager whose provisioner starts ``spec`` as a pod."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager

    km = KernelManager()
    km.kernel_id = f"{name}-{os.urandom(4).hex()}"
    kernel_spec = KernelSpec(argv=["python3"], display_name="k8s", language="python",
                             interrupt_mode="message")
    km._kernel_spec = kernel_spec
    provisioner = kube.KubernetesProvisioner(kernel_id=km.kernel_id, kernel_spec=kernel_spec,
                                             parent=km, namespace=namespace)
    provisioner.sandbox_spec = spec
    provisioner.secret_env = {"HF_TOKEN": secret}
    km.provisioner = provisioner
    return km


def test_kernel_pod_on_a_real_cluster(cluster: str, tmp_path: Path) -> None:
    km = _pod_kernel("it", _spec(tmp_path, image=cluster), "integration-secret",
                     os.environ.get("SECURENB_K8S_NAMESPACE", "default"))
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive("import os; print(os.getuid(), os.environ['HF_TOKEN'])",
                                       timeout=60)
        assert reply["content"]["status"] == "ok"
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)


def test_a_pod_that_fails_to_start_leaves_nothing_behind(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    pytest.importorskip("kubernetes")
    api = ApiServer(phase="Failed", message="ErrImagePull")
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: '{api.url}'}}}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\nusers: [{name: t, user: {}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    km = _pod_kernel("fails", _spec(tmp_path, image="registry.invalid/absent:1"),
                     "must-not-stay", "default")
    try:
        with pytest.raises(IsolationError, match="ended: Failed ErrImagePull"):
            km.start_kernel()
        assert api.objects == {}  # no Secret, NetworkPolicy or Pod left behind
    finally:
        api.server.shutdown()
