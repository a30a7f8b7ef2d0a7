"""A batch rendered as Kubernetes Jobs: one restricted pod per run.

The manifests are validated against the Kubernetes API schemas of a pinned
version (kubernetes-validate, strict) and against every Pod Security Standards
"restricted" rule the provisioner's tests check (their checker, reused). The
in-pod run (runner and kernel in two containers of that pod) is driven here
for real: the kernel container's own command runs as a separate process, the
runner's ``securenb run --pod-kernel`` attaches to it, and the output verifies.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from kube_api import ApiServer
from runs_support import BIN, EXAMPLE, example, load, run, statement
from test_isolation_kube import RULES

from securenb.core.workspace import Workspace
from securenb.isolation import kube
from securenb.runs import k8s

KUBERNETES_VERSION = "1.33.0"  # the API the manifests are checked against
IMAGE = "registry.example/securenb-runner:1"
GRID = ("--grid", "lr=0.1,0.5", "--grid", "epochs=[5, 10.0]")


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    example(workspace.root)
    return workspace  # type: ignore[no-any-return]


def _render(ws: Workspace) -> list[dict[str, Any]]:
    proc = run("securenb", "run", EXAMPLE.name, "runs", *GRID, "--render-k8s", "k8s",
               "--k8s-image", IMAGE, "--k8s-claim", "ml-project", "--k8s-namespace", "ml",
               "--secret", "HF_TOKEN", cwd=ws.root, env={"HF_TOKEN": "v4lue-not-in-yaml"})
    assert proc.returncode == 0, proc.stderr
    docs = []
    for path in sorted((ws.root / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, list[dict[str, Any]]]:
    """One rendering for the tests that only read it."""
    from conftest import TEST_PASSPHRASE

    root = tmp_path_factory.mktemp("project")
    ws = Workspace.init(root, TEST_PASSPHRASE)
    example(root)
    return ws, _render(ws)


def _jobs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "Job"]


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": job["spec"]["template"]["metadata"],
            "spec": job["spec"]["template"]["spec"]}


def _container(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_one_job_per_run_with_valid_manifests(rendered: Any) -> None:
    ws, docs = rendered
    import kubernetes_validate

    assert len(list((ws.root / "k8s").glob("*.yaml"))) == 4  # 2 x 2 grid: one file per run
    assert len(_jobs(docs)) == 4
    assert sorted(d["kind"] for d in docs) == sorted(["ConfigMap", "Job", "NetworkPolicy"] * 4)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "ml"
    names = {d["metadata"]["name"] for d in _jobs(docs)}
    assert len(names) == 4 and all(len(n) <= 63 for n in names)


def test_an_invalid_manifest_is_caught_by_the_validator(rendered: Any) -> None:
    _, docs = rendered
    import kubernetes_validate

    job = copy.deepcopy(_jobs(docs)[0])
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = "root"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("rule", list(RULES))
def test_job_pod_passes_restricted_rule(rendered: Any, rule: str) -> None:
    check, _ = RULES[rule]
    for job in _jobs(rendered[1]):
        assert check(_pod(job)), rule


def test_the_kernel_container_is_the_provisioners_restricted_container(rendered: Any) -> None:
    ws, docs = rendered
    from securenb.core.policy import IsolationPolicy
    from securenb.isolation.spec import build_spec

    job = _jobs(docs)[0]
    spec = build_spec(IsolationPolicy(), workdir=ws.root, backend="kubernetes", image=IMAGE)
    reference = kube.pod_manifest(spec, "x", "ml")
    kernel = _container(job, "kernel")
    ref_container = reference["spec"]["containers"][0]
    assert kernel["securityContext"] == ref_container["securityContext"]
    assert kernel["resources"] == ref_container["resources"]
    assert kernel["image"] == IMAGE
    pod_spec = job["spec"]["template"]["spec"]
    for key in ("securityContext", "automountServiceAccountToken", "enableServiceLinks",
                "hostNetwork", "hostPID", "hostIPC", "restartPolicy"):
        assert pod_spec[key] == reference["spec"][key], key
    assert not pod_spec.get("shareProcessNamespace")  # the kernel cannot see the runner
    runner = _container(job, "runner")
    assert runner["securityContext"] == ref_container["securityContext"]
    assert job["spec"]["backoffLimit"] == 0  # a failed run is a record, not retried


def test_no_secret_value_in_any_manifest_only_references(rendered: Any) -> None:
    ws, docs = rendered
    text = "".join(p.read_text() for p in (ws.root / "k8s").glob("*.yaml"))
    assert "v4lue-not-in-yaml" not in text
    assert not any(d["kind"] == "Secret" for d in docs)
    job = _jobs(docs)[0]
    kernel_env = {e["name"]: e for e in _container(job, "kernel")["env"]}
    assert kernel_env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "securenb-run-secrets", "key": "HF_TOKEN"}
    assert "SECURENB_KEY_PASSPHRASE" not in kernel_env  # the kernel never sees the keys
    runner_env = {e["name"]: e for e in _container(job, "runner")["env"]}
    assert runner_env["SECURENB_KEY_PASSPHRASE"]["valueFrom"]["secretKeyRef"] == {
        "name": "securenb-keys", "key": "passphrase"}
    for env in (kernel_env, runner_env):
        assert all("value" not in e for n, e in env.items() if n in (
            "HF_TOKEN", "SECURENB_KEY_PASSPHRASE"))


def test_keys_and_workspace_reach_the_runner_only(rendered: Any) -> None:
    _, docs = rendered
    job = _jobs(docs)[0]
    kernel = _container(job, "kernel")
    mounts = {m["mountPath"]: m for m in kernel["volumeMounts"]}
    assert mounts[k8s.WORKSPACE]["readOnly"] is True
    hidden = mounts[f"{k8s.WORKSPACE}/.securenb"]  # keys and audit log hidden from the kernel
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[hidden["name"]] and hidden["readOnly"] is True
    writable = [m for m in kernel["volumeMounts"] if not m.get("readOnly")
                and m["name"] == mounts[k8s.WORKSPACE]["name"]]
    env = {e["name"]: e.get("value") for e in kernel["env"]}
    assert [(m["mountPath"], m["subPath"]) for m in writable] == [
        (env["SECURENB_OUTPUT_DIR"], "outputs/" + writable[0]["subPath"].split("/")[-1])]
    runner = _container(job, "runner")
    assert {m["name"] for m in runner["volumeMounts"]} >= {"project", "job", "connection"}
    assert "job" not in {m["name"] for m in kernel["volumeMounts"]
                         if m.get("subPath") != "empty"}


def test_configmap_carries_the_notebook_and_typed_parameters(rendered: Any) -> None:
    _, docs = rendered
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    assert all(m["data"]["notebook.ipynb"] == EXAMPLE.read_text() for m in maps)
    assert all(m["immutable"] is True for m in maps)
    params = [json.loads(m["data"]["parameters.json"]) for m in maps]
    epochs = sorted((p["epochs"], type(p["epochs"]).__name__) for p in params)
    assert epochs == [(5, "int"), (5, "int"), (10.0, "float"), (10.0, "float")]
    assert sorted(p["lr"] for p in params) == [0.1, 0.1, 0.5, 0.5]


def test_network_policy_denies_all_traffic(rendered: Any) -> None:
    _, docs = rendered
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        job = next(j for j in _jobs(docs)
                   if j["metadata"]["name"] == policy["metadata"]["name"])
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        assert policy["spec"]["ingress"] == [] and policy["spec"]["egress"] == []


@pytest.mark.parametrize(("args", "message"), [
    (("--k8s-claim", "c"), "--k8s-image"),
    (("--k8s-image", IMAGE), "--k8s-claim"),
    (("--k8s-image", IMAGE, "--k8s-claim", "c", "--isolation", "bwrap"), "--isolation"),
    (("--k8s-image", IMAGE, "--k8s-claim", "Bad_Name"), "Bad_Name"),
    (("--k8s-image", IMAGE, "--k8s-claim", "c", "--output-dir", "../up"), "../up"),
    (("--k8s-image", IMAGE, "--k8s-claim", "c", "--secret", "T=env:X"), "--secret NAME"),
    (("--k8s-image", IMAGE, "--k8s-claim", "c", "--secret", "bad-name"), "bad-name"),
])
def test_bad_render_options_are_one_line_errors(ws: Workspace, args: tuple[str, ...],
                                                message: str) -> None:
    proc = run("securenb", "run", EXAMPLE.name, "runs", "--render-k8s", "k8s", *args,
               cwd=ws.root)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (ws.root / "k8s").exists()


def test_kubernetes_options_need_render_k8s(ws: Workspace) -> None:
    proc = run("securenb", "run", EXAMPLE.name, "out.ipynb", "--submit", cwd=ws.root)
    assert proc.returncode == 2 and "--render-k8s" in proc.stderr
    assert not (ws.root / "out.ipynb").exists()


def test_submit_without_kubeconfig_is_refused(ws: Workspace) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    proc = subprocess.run(
        [str(BIN / "securenb"), "run", EXAMPLE.name, "runs", "--render-k8s", "k8s",
         "--k8s-image", IMAGE, "--k8s-claim", "c", "--submit"],
        cwd=ws.root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "KUBECONFIG" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (ws.root / "k8s").exists()  # refused before anything was written


def test_submit_creates_the_objects_through_the_api(ws: Workspace, tmp_path: Path) -> None:
    api = ApiServer(phase="Failed", message="ErrImagePull")
    config = tmp_path / "kubeconfig"  # the stand-in API server, without credentials
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
        "clusters": [{"name": "stand-in", "cluster": {"server": api.url}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    try:
        proc = run("securenb", "run", EXAMPLE.name, "runs", *GRID, "--render-k8s", "k8s",
                   "--k8s-image", IMAGE, "--k8s-claim", "ml-project", "--submit", "--json",
                   cwd=ws.root, env={"KUBECONFIG": str(config)})
        assert proc.returncode == 0, proc.stderr
        kinds = sorted(o["kind"] for o in api.objects.values())
        assert kinds == sorted(["ConfigMap", "Job", "NetworkPolicy"] * 4)
        assert any(p.startswith("/apis/batch/v1/namespaces/default/jobs/") for p in api.objects)
        assert len(json.loads(proc.stdout)["jobs"]) == 4
    finally:
        api.server.shutdown()


def test_the_pod_run_signs_a_verifiable_output(ws: Workspace, tmp_path: Path) -> None:
    """The runner container's run, against the kernel container's own command."""
    docs = _render(ws)
    job = _jobs(docs)[0]
    kernel = _container(job, "kernel")
    connection = tmp_path / "connection"
    connection.mkdir()
    params = next(d for d in docs if d["kind"] == "ConfigMap"
                  and d["metadata"]["name"] == job["metadata"]["name"])["data"]
    (tmp_path / "parameters.json").write_text(params["parameters.json"])
    command = [sys.executable if c == "python3" else c for c in kernel["command"]]
    command = [c.replace(kube.CONNECTION_DIR, str(connection)) for c in command]
    env = {**os.environ, "SECURENB_OUTPUT_DIR": str(ws.root / "outputs" / "pod")}
    (ws.root / "outputs" / "pod").mkdir(parents=True)
    (ws.root / "runs").mkdir()  # as the Job's init container makes them
    kernel_proc = subprocess.Popen(command, cwd=ws.root, env=env)
    try:
        proc = run("securenb", "run", EXAMPLE.name, "runs/pod.ipynb", "--parameters-json",
                   f"@{tmp_path / 'parameters.json'}", "--output-dir", "outputs/pod",
                   "--isolation", "kubernetes", "--pod-kernel", str(connection),
                   "--pod-image", IMAGE, "--json", "--no-progress-bar", cwd=ws.root)
        assert proc.returncode == 0, proc.stderr
        assert kernel_proc.wait(timeout=60) == 0  # the runner shut the kernel down
    finally:
        kernel_proc.kill()
    out = ws.root / "runs" / "pod.ipynb"
    check = run("securenb", "verify", str(out), cwd=ws.root)
    assert check.returncode == 0, check.stdout + check.stderr
    st = statement(load(out))
    internal = st["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["sandbox"]["backend"] == "kubernetes"
    assert internal["sandbox"]["image"] == IMAGE and internal["unsafe"] is False
    names = {s["name"] for s in st["subject"]}
    assert "outputs/pod/model.npy" in names
    assert json.loads(st["predicate"]["buildDefinition"]["externalParameters"]["parameters"]
                      ) == json.loads(params["parameters.json"])


def test_pod_kernel_needs_kubernetes_isolation(ws: Workspace, tmp_path: Path) -> None:
    proc = run("securenb", "run", EXAMPLE.name, "out.ipynb", "--pod-kernel", str(tmp_path),
               "--pod-image", IMAGE, cwd=ws.root)
    assert proc.returncode == 2 and "--isolation kubernetes" in proc.stderr
    assert not (ws.root / "out.ipynb").exists()
