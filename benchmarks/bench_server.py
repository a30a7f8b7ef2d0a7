"""The REST API on a real jupyter_server: listing, detail, signing, concurrency.

Goals (server issue): the artifacts of a notebook with 1,000 artifacts and
10,000 attestations listed in p95 <= 50 ms; one artifact's full detail p95 <=
30 ms; a 100 MB model signed through the API within 10% of signing it locally;
50 concurrent clients for 10 s on 127.0.0.1 with no error. Reference rows:
Jupyter's own ``GET /api/contents/<folder>`` on the same server, and local
signing (``securenb.signing.service.sign`` in this process).

The workspace is built directly through the store (signed DSSE envelopes,
indexed) and the audit log (batched appends), which is what the CLI and
kernels leave behind, only faster to create. RBAC is on (SecurenbAuthorizer).
"cold" is the first timed request after one check request (attestations
verified once, then cached by digest); p50/p95 over the next 200.

    python -m benchmarks server            # or: python -m benchmarks.bench_server
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from securenb.core.attest.dsse import sign_envelope
from securenb.core.attest.statement import SCAN_PREDICATE, SLSA_PROVENANCE_PREDICATE
from securenb.core.audit.entry import AuditEntry
from securenb.core.canonical import canonical_json
from securenb.core.store import Artifact, AttestationRecord, now_rfc3339
from securenb.core.workspace import Workspace
from securenb.signing.record import SIGNATURE_PREDICATE
from securenb.signing.service import SignRequest, sign

PASSPHRASE = "benchmark passphrase"  # a throwaway workspace's passphrase
TOKEN = "bench-token"  # a throwaway server's token
NOTEBOOK = "analysis.ipynb"
RUNS, PER_RUN, ATTESTATIONS = 10, 100, 10_000


def _statement(ptype: str, subjects: list[tuple[str, str]],
               predicate: dict[str, Any]) -> dict[str, Any]:
    return {"_type": "https://in-toto.io/Statement/v1", "predicateType": ptype,
            "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
            "predicate": predicate}


def build(root: Path) -> str:
    """The workspace: 10 runs of the notebook, 100 artifacts each, 10,000 attestations."""
    ws = Workspace.init(root, PASSPHRASE)
    key = ws.signer()
    store = ws.store
    artifacts: list[Artifact] = []
    records: list[AttestationRecord] = []
    entries: list[AuditEntry] = []

    def attest(ptype: str, subjects: list[tuple[str, str]], predicate: dict[str, Any]) -> str:
        envelope = sign_envelope(_statement(ptype, subjects, predicate), key)
        digest = store.put_blob(canonical_json(envelope))
        records.append(AttestationRecord(digest, ptype, key.key_id, now_rfc3339(),
                                         tuple(subjects)))
        entries.append(AuditEntry.new("attestation.sign", f"sha256:{subjects[0][1]}",
                                      details={"predicateType": ptype}))
        return digest

    first = ""
    for r in range(RUNS):
        run_id = uuid.uuid4().hex
        store.start_run(run_id, "secure_train")
        outputs = []
        for i in range(PER_RUN):
            digest = f"{r:04x}{i:060x}"
            path = f"out/run{r}/model{i}.safetensors"
            artifacts.append(Artifact(digest, path, "application/octet-stream", 1000, run_id,
                                      now_rfc3339()))
            entries.append(AuditEntry.new("artifact.record", f"sha256:{digest}",
                                          details={"path": path}))
            outputs.append((path, digest))
            first = first or digest
        provenance = attest(SLSA_PROVENANCE_PREDICATE, [(f"securenb-run:{run_id}", "0" * 64)], {
            "buildDefinition": {"externalParameters": {"notebook": NOTEBOOK},
                                "resolvedDependencies": [{"uri": "data.enc", "name": "data",
                                                          "digest": {"sha256": "d" * 64}}]},
            "runDetails": {"builder": {"id": "https://securenb.dev/builder/bwrap"}}})
        store.finish_run(run_id, "ok", provenance)
    n = len(records)
    while n < ATTESTATIONS:
        a = artifacts[n % len(artifacts)]
        if n % 2:
            attest(SCAN_PREDICATE, [(a.path, a.digest)], {"verdict": "SAFE", "findings": [],
                                                          "files": []})
        else:
            attest(SIGNATURE_PREDICATE, [(a.path, a.digest)],
                   {"signer": {"key_id": key.key_id}, "kind": "model"})
        n += 1
    store.add_artifacts(artifacts)
    # one transaction for all (Store.add_attestation commits each: 10,000 fsyncs)
    db = sqlite3.connect(store.index_path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany("INSERT INTO attestations VALUES (?, ?, ?, ?)",
                   [(r.envelope, r.predicate_type, r.key_id, r.created) for r in records])
    db.executemany("INSERT INTO attestation_subjects VALUES (?, ?, ?)",
                   [(r.envelope, d, n) for r in records for n, d in r.subjects])
    db.execute("COMMIT")
    db.close()
    for start in range(0, len(entries), 2000):
        ws.audit_log.append_many(entries[start:start + 2000])
    return first


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: {exc.code} {exc.read()[:300]!r}") from None


def _post(url: str, body: object) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return bytes(response.read())


def _latencies(url: str, count: int) -> tuple[float, float, float]:
    """Cold (first), p50 and p95 of ``count`` sequential requests, in ms."""
    times = []
    for _ in range(count + 1):
        start = time.perf_counter()
        _get(url)
        times.append((time.perf_counter() - start) * 1000)
    cold, warm = times[0], sorted(times[1:])
    return cold, statistics.median(warm), warm[int(len(warm) * 0.95) - 1]


def _hammer(urls: list[str], clients: int, seconds: float) -> tuple[int, int]:
    done, errors = [0], [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            try:
                _get(urls[i % len(urls)])
                ok = True
            except (RuntimeError, OSError):
                ok = False
            with lock:
                done[0] += 1
                errors[0] += not ok
            i += 1
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], errors[0]


def main(argv: list[str] | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "project"
        root.mkdir()
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        os.environ["SECURENB_KEY_PASSPHRASE"] = PASSPHRASE
        t0 = time.perf_counter()
        first = build(root)
        print(f"workspace: {RUNS * PER_RUN} artifacts, {ATTESTATIONS} attestations "
              f"({time.perf_counter() - t0:.1f} s to build)", flush=True)
        listed = root / "out" / "run0"
        listed.mkdir(parents=True)
        for i in range(PER_RUN):  # what Jupyter's reference listing shows: 100 files
            (listed / f"model{i}.safetensors").write_bytes(b"x" * 1000)
        (root / "big").mkdir()
        model = root / "big" / "model.bin"
        model.write_bytes(os.urandom(100 << 20))
        (root / "local").mkdir()
        local_model = root / "local" / "model.bin"
        local_model.write_bytes(model.read_bytes())
        port = _free_port()
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(base / "rt"),
               "JUPYTER_CONFIG_DIR": str(base / "jc"), "JUPYTER_DATA_DIR": str(base / "jd")}
        log = (base / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
             f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root",
             "--ServerApp.authorizer_class=securenb.server.authorizer.SecurenbAuthorizer",
             "--SecurenbAuthorizer.default_roles=admin", "--SecurenbExtension.write_burst=100",
             "--ServerApp.log_level=WARN"],
            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    _get(f"{url}/api/status")
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((base / "server.log").read_text()) from None
                    time.sleep(0.2)
            api = f"{url}/securenb/api"
            listing = f"{api}/artifacts?notebook={NOTEBOOK}&limit=100"
            page = json.loads(_get(listing))
            assert page["total"] == RUNS * PER_RUN, page["total"]
            detail = f"{api}/artifacts/sha256:{first}"
            rows = [("list a notebook's artifacts (100 of 1,000)", _latencies(listing, 200), 50),
                    ("one artifact's full detail", _latencies(detail, 200), 30),
                    ("reference: Jupyter GET /api/contents (100 files)",
                     _latencies(f"{url}/api/contents/out/run0", 200), None)]
            ref = rows[2][1][2]
            print(f"{'request':46} {'cold ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'goal':>6} "
                  f"{'p95/ref':>8}")
            for name, (cold, p50, p95), goal in rows:
                verdict = "" if goal is None else ("OK" if p95 <= goal else "MISSED")
                print(f"{name:46} {cold:8.1f} {p50:8.1f} {p95:8.1f} "
                      f"{'' if goal is None else goal:>6} {p95 / ref:8.2f} {verdict}")

            ws = Workspace.find(root)
            key = ws.purpose_signer("release")
            local = remote = float("inf")
            for _ in range(3):  # best of 3 each, the first one pays the lazy imports
                start = time.perf_counter()
                sign(ws, SignRequest(str(local_model)), key=key)
                local = min(local, time.perf_counter() - start)
                start = time.perf_counter()
                _post(f"{api}/sign", {"path": "big/model.bin"})
                remote = min(remote, time.perf_counter() - start)
            print(f"sign 100 MB: local {local:.3f} s, through the API {remote:.3f} s, "
                  f"ratio {remote / local:.3f} (goal <= 1.10: "
                  f"{'OK' if remote <= local * 1.10 else 'MISSED'})")

            done, errors = _hammer([listing, detail, f"{api}/runs", f"{api}/me"], 50, 10.0)
            print(f"50 clients x 10 s: {done} requests ({done / 10:.0f}/s), {errors} errors "
                  f"({'OK' if errors == 0 else 'MISSED'})")
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main(sys.argv[1:])
