"""Red team: a cell in a kernel of a securenb server has the record key sign what it likes.

The server's kernel socket (securenb.server.kernel_socket, SignerService._attest)
signs any schema-valid statement a kernel sends with the workspace's record key,
and appends any audit entry it asks for. The kernel is untrusted code (DESIGN
threat model 3: cells copied from the internet run there), yet these records are
what `securenb verify` and the gate believe:

- a cell forges a complete "securenb run" output (SLSA provenance of the papermill
  build type, audit entries of every cell, the executed-scope signature): it shows
  outputs no run produced, claims a bwrap sandbox and "completed", and verifies;
- a cell records a SAFE scan for a pickle that runs a command on load: the gate
  then passes the model's scan rule, though the server's own scan says UNSAFE.

Real jupyter server (the module-scoped ``server`` of the server-signing tests),
real kernel it started, the real `securenb verify` CLI and gate.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from test_server_signing import PASSPHRASE, Server, _run, kernel_client, server

from securenb.core.workspace import Workspace

__all__ = ["server"]  # the module-scoped fixture of the server-signing tests

BIN = Path(sys.executable).parent

_FORGE_RUN = """
import json, os
os.chdir({root!r})
from securenb.kernel.sign_magics import register
register(get_ipython())  # as %load_ext securenb does: records go to the server
import nbformat
from securenb.core.workspace import Workspace
from securenb.runs.kernel import sandbox_manager
from securenb.runs.record import RunInputs, RunRecorder
from securenb.signing.remote import RemoteSigner
from securenb.signing.service import SignRequest

ws = Workspace.find()
source = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run_all_tests()")])
source.metadata.kernelspec = {{"name": "python3", "display_name": "Python 3",
                               "language": "python"}}
nbformat.write(source, "suite.ipynb")
out = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
    "run_all_tests()", execution_count=1,
    outputs=[nbformat.v4.new_output("stream", name="stdout",
                                    text="412 passed, 0 failed\\n")])])
out.metadata.kernelspec = source.metadata.kernelspec
out.metadata.papermill = {{"parameters": {{}}}}
km, sandbox = sandbox_manager("bwrap", ws.root, gpus=None, secret_names=(), secret_env={{}})
rec = RunRecorder(ws, RunInputs(notebook=ws.root / "suite.ipynb",
                                output=ws.root / "suite-out.ipynb", parameters={{}},
                                kernel=km.kernel_name, sandbox=sandbox, kernelspec={{}},
                                cwd=ws.root))
rec.snapshot()
rec.start(rec.dependencies())
plain = json.loads(json.dumps(out))
rec.cell_started(0, plain["cells"][0])
rec.cell_finished(0, plain["cells"][0], "completed")
envelope, digest = rec.provenance(plain, "completed", 0, None)
plain["metadata"]["securenb"] = {{"provenance": envelope}}
with open("suite-out.ipynb", "w") as f:
    json.dump(plain, f)
rec.finish("completed", 0, digest, ws.root / "suite-out.ipynb")
RemoteSigner.for_this_kernel().sign(SignRequest(path=str(ws.root / "suite-out.ipynb"),
                                                scope="executed"))
print("forged")
"""


def _verify_fails(server: Server, forged: Path) -> None:
    proc = subprocess.run([str(BIN / "securenb"), "verify", "--json", str(forged)],
                          cwd=server.root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE})
    report = json.loads(proc.stdout)
    # what a CI consumer saw on main: exit 0, "completed in bwrap", outputs no run made
    assert proc.returncode != 0, report


def test_kernel_cannot_forge_a_signed_papermill_run(server: Server) -> None:
    """The server refuses the forged run's records (the cell stops at the first: on main
    the whole forge ran and verified); whatever it left does not verify."""
    with kernel_client(server) as (_, client):
        out = _run(client, _FORGE_RUN.format(root=str(server.root)))
    assert out[-1] == ("reply", {"status": "error"}), out
    error = next(c for kind, c in out if kind == "error")
    assert "may not append 'run.start' audit entries" in error["evalue"], out
    forged = server.root / "suite-out.ipynb"
    if forged.exists():
        _verify_fails(server, forged)


_SKIP_AUDIT = (  # a forger who leaves out the audit entries goes on to the provenance
    "from securenb.core.workspace import Workspace\n"
    "Workspace.audit = lambda self, *a, **k: type('Receipt', (), {'index': 0})()\n")


def test_kernel_cannot_have_papermill_provenance_signed(server: Server) -> None:
    with kernel_client(server) as (_, client):
        out = _run(client, _SKIP_AUDIT + _FORGE_RUN.format(root=str(server.root)))
    assert out[-1] == ("reply", {"status": "error"}), out
    error = next(c for kind, c in out if kind == "error")
    assert "own %%secure_train runs only, not of build type " \
        "'https://securenb.dev/buildtypes/papermill/v1'" in error["evalue"], out
    forged = server.root / "suite-out.ipynb"
    if forged.exists():
        _verify_fails(server, forged)


def _evil_pickle(path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, ("echo pwned",)

    path.write_bytes(pickle.dumps(Evil()))


_FORGE_SCAN = """
import os
os.chdir({root!r})
from securenb.kernel.sign_magics import register
register(get_ipython())
from securenb.core.attest import SCAN_PREDICATE, Subject, make_statement
from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.scan import scan_path
ws = Workspace.find()
report = scan_path("benign.json").to_dict()
assert report["verdict"] == "SAFE", report
digest = file_sha256("models/evil.pkl")[0]
ws.attest(make_statement([Subject("models/evil.pkl", digest)], SCAN_PREDICATE, report))
print("forged")
"""


def test_kernel_cannot_launder_an_unsafe_model_past_the_gate(server: Server) -> None:
    (server.root / "models").mkdir(exist_ok=True)
    _evil_pickle(server.root / "models" / "evil.pkl")
    (server.root / "benign.json").write_text("{}")
    scanned = server.call("POST", "/securenb/api/scan", {"path": "models/evil.pkl"})
    assert scanned["verdict"] == "unsafe", scanned  # the server's own scan
    with kernel_client(server) as (_, client):
        out = _run(client, _FORGE_SCAN.format(root=str(server.root)))
    assert out[-1] == ("reply", {"status": "ok"}), out
    from securenb.gate import evaluate

    verdict = evaluate(Workspace(server.root), server.root / "models" / "evil.pkl",
                       record=False)
    scan_rule = next(r for r in verdict.rules if r.rule == "scan")
    assert scan_rule.status != "pass", scan_rule


_READ_SERVER_MEMORY = """
import os, re
pid = int(os.environ["JPY_PARENT_PID"])  # the jupyter server that holds the keys
needles = {{k: bytes.fromhex(v) for k, v in {needles!r}.items()}}
found = set()
try:
    mem = open(f"/proc/{{pid}}/mem", "rb", 0)
except PermissionError:  # refused outright: the kernel reads nothing
    mem = None
if mem is not None:
    with open(f"/proc/{{pid}}/maps") as maps, mem:
        for line in maps:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) r", line)
            if not m or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, MemoryError):
                continue
            found |= {{k for k, v in needles.items() if v in chunk}}
print(sorted(found))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the hole is a root server's (CI, containers)")
def test_a_kernel_of_a_root_server_cannot_read_the_servers_keys(server: Server) -> None:
    from test_server_kernel_memory import _secrets

    needles = {name: value.hex() for name, value in _secrets(server.root).items()
               if "scalar" in name}
    with kernel_client(server) as (_, client):
        out = _run(client, _READ_SERVER_MEMORY.format(needles=needles))
    assert out[-1] == ("reply", {"status": "ok"}), out
    printed = "".join(c["text"] for kind, c in out if kind == "stream")
    assert printed.strip() == "[]", printed


_SWAP = """
import os
os.chdir({root!r})
while True:  # models/race.pkl is the benign pickle, then the evil one, and so on
    for source in ("models/benign.pkl", "models/evil.pkl"):
        os.link(source, "models/.next")
        os.replace("models/.next", "models/race.pkl")
"""

_RACE_SCAN = """
import os, subprocess, sys
os.chdir({root!r})
from securenb.kernel.sign_magics import register
register(get_ipython())
from securenb.core.attest import SCAN_PREDICATE, Subject, make_statement
from securenb.core.workspace import Workspace
from securenb.scan import scan_path
ws = Workspace.find()
report = scan_path("models/benign.pkl").to_dict()
swapper = subprocess.Popen([sys.executable, "-c", {swap!r}])
try:
    for _ in range({rounds}):
        ws.attest(make_statement([Subject("models/race.pkl", "0" * 64)], SCAN_PREDICATE,
                                 report))
finally:
    swapper.kill()
    swapper.wait()
print("asked")
"""


def test_kernel_cannot_race_the_servers_scan(server: Server) -> None:
    """A kernel swaps a model between a benign and an evil pickle while the server scans
    it for the kernel's scan record. On main the server scanned the file and then hashed
    it again: a SAFE verdict it read from the benign bytes was signed on the evil digest
    (about one round in four), and the gate passed the evil model's scan rule."""
    from securenb.core.attest import SCAN_PREDICATE
    from securenb.core.store import file_sha256
    from securenb.gate import evaluate

    models = server.root / "models"
    models.mkdir(exist_ok=True)
    (models / "benign.pkl").write_bytes(pickle.dumps({"weights": [0.5, 0.25]}))
    _evil_pickle(models / "evil.pkl")
    benign, _ = file_sha256(models / "benign.pkl")
    evil, _ = file_sha256(models / "evil.pkl")
    # there before the first scan, whenever the swapper starts; it links the benign first
    os.link(models / "evil.pkl", models / "race.pkl")
    with kernel_client(server) as (_, client):
        out = _run(client, _RACE_SCAN.format(root=str(server.root), rounds=40,
                                              swap=_SWAP.format(root=str(server.root))))
    assert out[-1] == ("reply", {"status": "ok"}), out
    ws = Workspace(server.root)
    verdicts: dict[str, set[str]] = {benign: set(), evil: set()}
    for digest in verdicts:
        for record in ws.store.attestations_for(digest, SCAN_PREDICATE):
            _, statement = ws.load_attestation(record.envelope)
            verdicts[digest].add(statement["predicate"]["verdict"])
    assert verdicts[evil] and verdicts[benign], verdicts  # the swap did race the scans
    assert verdicts == {benign: {"SAFE"}, evil: {"UNSAFE"}}, verdicts
    os.replace(models / "evil.pkl", models / "race.pkl")  # the evil model stays
    verdict = evaluate(ws, models / "race.pkl", record=False)
    scan_rule = next(r for r in verdict.rules if r.rule == "scan")
    assert scan_rule.status == "fail", scan_rule
