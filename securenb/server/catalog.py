"""What the workspace knows about its artifacts, as the REST API shows it.

Reads the index through its own read-only SQLite connection (the server's
event loop thread only) and opens each attestation once: envelopes are
content-addressed, so a verified statement is cached by its digest. Badges
and details come from signed statements only, never from the index's columns.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from securenb.core.attest.statement import (
    FAIRNESS_PREDICATE,
    GATE_PREDICATE,
    SCAN_PREDICATE,
    SLSA_PROVENANCE_PREDICATE,
)
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.signing.record import SIGNATURE_PREDICATE, VERIFICATION_PREDICATE
from securenb.vulns import VULNERABILITIES_PREDICATE, environment_digest
from securenb.vulns.report import LEVELS

_MODEL_SUFFIXES = (".pt", ".pth", ".safetensors", ".onnx", ".pkl", ".pickle", ".joblib", ".h5",
                   ".hdf5", ".keras", ".ckpt", ".gguf", ".bin", ".npy", ".npz", ".msgpack",
                   ".tflite", ".pb", ".ubj", ".model")
_DATASET_SUFFIXES = (".enc", ".csv", ".parquet", ".jsonl", ".arrow", ".tsv")
KINDS = ("model", "dataset", "notebook", "output", "other")


def _suffix_case(suffixes: tuple[str, ...]) -> str:
    return " OR ".join(f"lower(path) LIKE '%{s}'" for s in suffixes)


_KIND_SQL = (f"CASE WHEN lower(path) LIKE '%.ipynb' THEN 'notebook' "
             f"WHEN {_suffix_case(_MODEL_SUFFIXES)} THEN 'model' "
             f"WHEN {_suffix_case(_DATASET_SUFFIXES)} THEN 'dataset' "
             f"WHEN run_id IS NOT NULL THEN 'output' ELSE 'other' END")
_COLS = f"digest, path, size, run_id, created, {_KIND_SQL} AS kind"
_CACHE_LIMIT = 100_000
_OUTCOMES = {"pass": "pass", "fail": "fail"}
_SUBJECTS_SQL = ("SELECT s.digest, a.envelope, a.predicate_type, a.created"
                 " FROM attestation_subjects s JOIN attestations a ON a.envelope = s.envelope"
                 " WHERE s.digest IN ({marks}) ORDER BY a.created DESC")
_CHECKS_SQL = ("SELECT DISTINCT a.envelope, a.created FROM attestations a"
               " JOIN attestation_subjects s ON s.envelope = a.envelope"
               " WHERE a.predicate_type = ? AND (s.name IN ({names}) OR s.digest IN ({digests}))")
_SIGNED_WITH_SQL = ("SELECT o.digest FROM artifacts r"
                    " JOIN attestation_subjects s ON s.digest = r.digest"
                    " JOIN attestations a ON a.envelope = s.envelope AND a.predicate_type = ?"
                    " JOIN attestation_subjects o ON o.envelope = a.envelope"
                    " WHERE r.run_id IN ({marks})")
"""What was signed together with a run's artifacts: a model's signature bundle."""
Record = tuple[str, str, str]
"""An attestation about an artifact: (envelope, predicate type, created), newest first."""


@dataclass
class Checks:
    """Verifications of a page of artifacts: (created, predicate) by the digests their
    statements name, and the failed ones by the paths they name."""

    by_digest: dict[str, list[tuple[str, dict[str, Any]]]]
    failed_by_path: dict[str, list[tuple[str, dict[str, Any]]]]


class Catalog:
    """Artifact summaries, details and runs of one workspace (read-only)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        index = ws.dir / "index.sqlite"
        self._db = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=30.0)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._statements: dict[str, dict[str, Any] | None] = {}
        self._trust: list[Any] | None = None
        self._keys_seen: int | None = None
        self._names: dict[str, str] = {}

    def close(self) -> None:
        self._db.close()

    # -- artifacts -------------------------------------------------------------
    def artifacts(self, *, notebook: str | None, kind: str | None, q: str | None,
                  limit: int, offset: int) -> dict[str, Any]:
        where, args = self._filters(notebook, kind, q)
        total = self._db.execute(f"SELECT count(*) FROM artifacts{where}", args).fetchone()[0]  # noqa: S608 - built from constants
        rows = self._db.execute(
            f"SELECT {_COLS} FROM artifacts{where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608 - built from constants
            [*args, limit, offset]).fetchall()
        records = self._attestations([r[0] for r in rows])
        checks = self._checks(rows, records)
        notebooks = self._run_notebooks()
        items = [self._summary(row, records.get(row[0], []), checks, notebooks) for row in rows]
        return {"items": items, "total": int(total), "limit": limit, "offset": offset}

    def _filters(self, notebook: str | None, kind: str | None,
                 q: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if notebook is not None:
            runs = [rid for rid, nb in self._run_notebooks().items() if nb == notebook]
            marks = ",".join("?" * len(runs))
            clauses.append(f"(path = ? OR run_id IN ({marks}) OR digest IN "
                           f"({_SIGNED_WITH_SQL.format(marks=marks)}))")
            args += [notebook, *runs, SIGNATURE_PREDICATE, *runs]
        if kind is not None:
            clauses.append(f"({_KIND_SQL}) = ?")
            args.append(kind)
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("(path LIKE ? ESCAPE '\\' OR digest LIKE ? ESCAPE '\\')")
            args += [f"%{escaped}%", f"{escaped.removeprefix('sha256:')}%"]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def by_digest(self, digest: str) -> dict[str, Any] | None:
        row = self._db.execute(f"SELECT {_COLS} FROM artifacts WHERE digest = ? "  # noqa: S608 - constant
                               "ORDER BY id DESC LIMIT 1", (digest,)).fetchone()
        return None if row is None else self._detail(row)

    def by_path(self, path: str) -> dict[str, Any] | None:
        row = self._db.execute(f"SELECT {_COLS} FROM artifacts WHERE path = ? "  # noqa: S608 - constant
                               "ORDER BY id DESC LIMIT 1", (path,)).fetchone()
        return None if row is None else self._detail(row)

    def _attestations(self, digests: list[str]) -> dict[str, list[Record]]:
        """digest -> [(envelope, predicate type, created)], newest first."""
        out: dict[str, list[Record]] = {}
        if not digests:
            return out
        marks = ",".join("?" * len(digests))
        for digest, envelope, ptype, created in self._db.execute(
                _SUBJECTS_SQL.format(marks=marks), digests):
            out.setdefault(digest, []).append((envelope, ptype, created))
        return out

    def statement(self, envelope: str) -> dict[str, Any] | None:
        """The verified statement of an attestation (None: it does not verify)."""
        if envelope not in self._statements:
            if len(self._statements) > _CACHE_LIMIT:
                self._statements.clear()
            try:
                if self._trust is None:
                    self._trust = [k for k, _ in self.ws.record_trust()]
                _, statement = self.ws.load_attestation(envelope, self._trust)
            except SecurenbError:
                statement = None
            self._statements[envelope] = statement
        return self._statements[envelope]

    def _checks(self, rows: list[tuple[Any, ...]], records: dict[str, list[Record]]) -> Checks:
        """The verifications that may concern ``rows``, by what their signed statements name.

        A verification names the file it checked with the digest it has *now* and the
        signature file: once a model changes on disk, neither is the digest of its row.
        So the candidates are found by the rows' paths and by the subjects of their
        signatures (index rows), then filed by the subjects of the verified statements:
        every digest they name, and, for failed ones, every path.
        """
        names = sorted({str(row[1]) for row in rows})
        digests = {str(row[0]) for row in rows}
        for row in rows:
            digests |= _subject_digests(self._signature_of(records.get(row[0], []))[1])
        checks = Checks({}, {})
        if not names:
            return checks
        sql = _CHECKS_SQL.format(names=",".join("?" * len(names)),
                                 digests=",".join("?" * len(digests)))
        for envelope, created in self._db.execute(
                sql, [VERIFICATION_PREDICATE, *names, *sorted(digests)]):
            statement = self.statement(envelope)
            if statement is None or statement.get("predicateType") != VERIFICATION_PREDICATE:
                continue
            found = (created, statement["predicate"])
            for digest in _subject_digests(statement):
                checks.by_digest.setdefault(digest, []).append(found)
            if statement["predicate"].get("verified") is False:
                for subject in statement.get("subject", []):
                    checks.failed_by_path.setdefault(str(subject.get("name")), []).append(found)
        return checks

    def _signature_state(self, row: tuple[Any, ...], records: list[Record],
                         checks: Checks) -> tuple[str, dict[str, Any] | None]:
        """The signature badge of ``row`` and the verification that decided it, if any.

        ``tampered``: an attestation about it does not verify, or the newest verification
        since it was signed (or recorded) failed. That verification concerns the row when
        it names the row's digest or a subject of the row's signature (the ``.sig`` file),
        or, if it failed, the row's path: a failure widens what is TAMPERED, a success
        never stands for bytes it did not name.
        """
        digest, path, _, _, created, _ = row
        _, sig, signed_at, sig_bad = self._signature_of(records)
        floor = signed_at or created
        candidates = [c for d in {digest, *_subject_digests(sig)}
                      for c in checks.by_digest.get(d, []) if c[0] > floor]
        candidates += [c for c in checks.failed_by_path.get(path, []) if c[0] > floor]
        check = max(candidates, key=lambda c: c[0])[1] if candidates else None
        if sig_bad or (check is not None and check.get("verified") is False):
            return "tampered", check
        return ("signed" if sig is not None else "unsigned"), check

    def _newest(self, records: list[Record],
                ptype: str) -> tuple[dict[str, Any] | None, str | None, bool]:
        """Predicate and time of the newest verified attestation of ``ptype``; any bad one?"""
        _, statement, created, bad = self._newest_statement(records, ptype)
        return (None if statement is None else statement["predicate"]), created, bad

    def _signature_of(self, records: list[Record]
                      ) -> tuple[str | None, dict[str, Any] | None, str | None, bool]:
        return self._newest_statement(records, SIGNATURE_PREDICATE)

    def _newest_statement(self, records: list[Record], ptype: str
                          ) -> tuple[str | None, dict[str, Any] | None, str | None, bool]:
        """Envelope, statement and time of the newest verified ``ptype``; any bad one?"""
        bad = False
        for envelope, kind, created in records:
            if kind != ptype:
                continue
            statement = self.statement(envelope)
            if statement is None or statement.get("predicateType") != ptype:
                bad = True
                continue
            return envelope, statement, created, bad
        return None, None, None, bad

    def _vulns(self, row: tuple[Any, ...], records: list[Record]
               ) -> tuple[dict[str, Any] | None, str | None]:
        """The newest verified vulnerability check that applies to ``row``, and its time:
        one recorded on the artifact's own digest, or, as the gate reads it, on the package
        digest of the environment the run that produced it used (its provenance)."""
        found, created, _ = self._newest(records, VULNERABILITIES_PREDICATE)
        _, provenance, _, _ = self._newest_statement(records, SLSA_PROVENANCE_PREDICATE)
        if provenance is None and row[3]:
            provenance = self._run_statement(row[3])
        env = environment_digest(provenance.get("predicate", {})) if provenance else None
        if env:
            of_env, env_created, _ = self._newest(
                self._attestations([env]).get(env, []), VULNERABILITIES_PREDICATE)
            if of_env is not None and (created is None or str(env_created) > created):
                found, created = of_env, env_created
        return found, created

    def _key_names(self) -> dict[str, str]:
        """key id -> name in the workspace's key store (public facts only), re-read when the
        store changes."""
        folder = self.ws.keystore.directory
        try:
            stamp = folder.stat().st_mtime_ns
        except OSError:
            return {}
        if self._keys_seen != stamp:
            try:
                self._names = {k.key_id: k.name for k in self.ws.keystore.list()}
            except SecurenbError:
                self._names = {}
            self._keys_seen = stamp
        return self._names

    def _who(self, envelope: str | None, signed: dict[str, Any] | None) -> dict[str, Any]:
        """Who signed, in people's terms where the signed record says it: the certificate's
        (Sigstore) identity, else the user who asked the server to sign; the key's name in
        the workspace and its fingerprint as secondary facts. The name of a user of the CLI
        or a kernel is filled in from the audit log by the API (``with_signers``)."""
        if signed is None:
            return {"signer": None, "identity": None, "identity_via": None, "key_id": None,
                    "key_name": None, "attestation": None}
        signer = signed.get("signer") or {}
        requester = signed.get("requester") or {}
        key_id = signer.get("key_id")
        key_name = self._key_names().get(key_id) if key_id else None
        identity, via = signer.get("identity"), None
        if identity:
            via = "Sigstore certificate" if signer.get("method") == "sigstore" else "certificate"
        elif isinstance(requester.get("user"), str):
            identity = requester["user"]
            via = f"signed through the server ({requester.get('auth', 'login')})"
        name = identity or (f"key {key_name}" if key_name else None) or key_id
        return {"signer": str(name) if name else None, "identity": identity,
                "identity_via": via, "key_id": key_id, "key_name": key_name,
                "attestation": f"sha256:{envelope}" if envelope else None}

    def _summary(self, row: tuple[Any, ...], records: list[Record],
                 checks: Checks, notebooks: dict[str, str]) -> dict[str, Any]:
        digest, path, size, run_id, created, kind = row
        envelope, sig, signed_at, _ = self._signature_of(records)
        sig_state, check = self._signature_state(row, records, checks)
        who = self._who(envelope, (sig or {}).get("predicate") or check)
        scan, _, _ = self._newest(records, SCAN_PREDICATE)
        fair, _, _ = self._newest(records, FAIRNESS_PREDICATE)
        gate, _, _ = self._newest(records, GATE_PREDICATE)
        verdict = str(scan.get("verdict", "unknown")).lower() if scan else "not_scanned"
        return {
            "digest": f"sha256:{digest}", "path": path, "name": PurePosixPath(path).name,
            "kind": kind,
            "notebook": path if kind == "notebook" else notebooks.get(run_id or ""),
            "run_id": run_id, "recorded_at": created, "size": size,
            "badges": {
                "signature": {"state": sig_state, **who, "signed_at": signed_at},
                "scan": {"state": verdict if verdict in ("safe", "unsafe", "unknown", "not_scanned")
                         else "unknown", "findings": len(_findings(scan))},
                "fairness": {"state": "not_checked" if fair is None
                             else ("pass" if fair.get("passed") else "fail")},
                "vulnerabilities": _vuln_badge(self._vulns(row, records)[0]),
                "gate": {"state": _gate_state(gate)},
            },
        }

    def _detail(self, row: tuple[Any, ...]) -> dict[str, Any]:
        digest = row[0]
        records = self._attestations([digest]).get(digest, [])
        checks = self._checks([row], {digest: records})
        out = self._summary(row, records, checks, self._run_notebooks())
        sig, signed_at, sig_bad = self._newest(records, SIGNATURE_PREDICATE)
        _, check = self._signature_state(row, records, checks)
        who = out["badges"]["signature"]
        scan, scanned_at, _ = self._newest(records, SCAN_PREDICATE)
        fair, _, _ = self._newest(records, FAIRNESS_PREDICATE)
        gate, _, _ = self._newest(records, GATE_PREDICATE)
        out["provenance"] = self._graph(out, records)
        out["scan"] = None if scan is None else {
            "verdict": out["badges"]["scan"]["state"], "scanned_at": scanned_at,
            "findings": [{"rule": str(f.get("rule", "")), "location": _location(f),
                          "message": str(f.get("message", "")),
                          "severity": str(f.get("severity", ""))} for f in _findings(scan)]}
        out["fairness"] = None if fair is None else _fairness(fair)
        failed = check is not None and check.get("verified") is False
        signed = sig if sig is not None else check  # a failed check names a signature too
        out["signature"] = None if signed is None else {
            "signer": who["signer"], "key_id": who["key_id"], "key_name": who["key_name"],
            "identity": who["identity"], "identity_via": who["identity_via"],
            "attestation": who["attestation"],
            "signed_at": signed_at if sig is not None else signed.get("signedAt"),
            "verified": out["badges"]["signature"]["state"] == "signed",
            "reason": "; ".join(check.get("problems", [])).replace(f"{self.ws.root}/", "")
            if check and failed else ("an attestation does not verify" if sig_bad else None)}
        vulns, checked_at = self._vulns(row, records)
        out["vulnerabilities"] = None if vulns is None else {
            "checked_at": checked_at, "source": str(vulns.get("source", "")),
            "database": str(vulns.get("database", "")),
            "unchecked": len(vulns.get("unchecked") or []),
            "items": [{"id": str(f.get("id", "")), "package": str(f.get("package", "")),
                       "version": f.get("version"), "severity": f.get("severity"),
                       "summary": str(f.get("summary", "")),
                       "fixed_in": [str(v) for v in f.get("fixed") or []]}
                      for f in vulns.get("findings") or []]}
        out["gate"] = None if gate is None else {
            "verdict": _gate_state(gate),
            "rules": [{"rule": str(c.get("check", "")),
                       "outcome": _OUTCOMES.get(str(c.get("status")), "missing"),
                       "detail": c.get("detail")} for c in gate.get("checks", [])]}
        out["audit"] = []
        out["other_paths"] = [p for (p,) in self._db.execute(
            "SELECT DISTINCT path FROM artifacts WHERE digest = ? AND path != ?",
            (digest, out["path"]))]
        return out

    def _graph(self, summary: dict[str, Any], records: list[Record]) -> dict[str, Any]:
        me = summary["digest"]
        nodes = [{"id": me, "kind": "model" if summary["kind"] == "model" else "artifact",
                  "label": summary["name"], "digest": me}]
        edges: list[dict[str, str]] = []
        run = self._run_statement(summary["run_id"]) if summary["run_id"] else None
        if summary["run_id"]:
            rid = f"run:{summary['run_id']}"
            nodes.append({"id": rid, "kind": "run", "label": summary["run_id"], "digest": None})
            edges.append({"source": rid, "target": me, "label": "produced"})
            deps = ((run or {}).get("predicate", {}).get("buildDefinition", {})
                    .get("resolvedDependencies", []))
            for dep in deps:
                sha = (dep.get("digest") or {}).get("sha256")
                name = str(dep.get("name") or dep.get("uri") or sha)
                did = f"sha256:{sha}" if sha else f"dep:{name}"
                if any(n["id"] == did for n in nodes):
                    continue
                nodes.append({"id": did, "kind": "dataset", "label": name,
                              "digest": f"sha256:{sha}" if sha else None})
                edges.append({"source": did, "target": rid, "label": "input"})
        names = {SIGNATURE_PREDICATE: "signature", SCAN_PREDICATE: "scan",
                 FAIRNESS_PREDICATE: "fairness", GATE_PREDICATE: "gate"}
        for envelope, ptype, created in records:
            if ptype in names:
                nid = f"sha256:{envelope}"
                nodes.append({"id": nid, "kind": names[ptype], "label": f"{names[ptype]} {created}",
                              "digest": nid})
                edges.append({"source": me, "target": nid, "label": names[ptype]})
        return {"nodes": nodes, "edges": edges}

    # -- runs --------------------------------------------------------------------
    def _run_statement(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT provenance FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or not row[0]:
            return None
        return self.statement(row[0])

    def _run_notebooks(self) -> dict[str, str]:
        """run id -> notebook, from the signed run provenance (where it names one)."""
        out: dict[str, str] = {}
        for rid, provenance in self._db.execute(
                "SELECT id, provenance FROM runs WHERE provenance IS NOT NULL"):
            notebook = _notebook(self.statement(provenance))
            if notebook is not None:
                out[rid] = notebook
        return out

    def runs(self, *, notebook: str | None, limit: int, offset: int) -> dict[str, Any]:
        rows = self._db.execute("SELECT id, kind, status, started, finished, provenance "
                                "FROM runs ORDER BY started DESC").fetchall()
        runs = [self._run(row) for row in rows]
        if notebook is not None:
            runs = [r for r in runs if r["notebook"] == notebook]
        return {"items": runs[offset:offset + limit], "total": len(runs), "limit": limit,
                "offset": offset}

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT id, kind, status, started, finished, provenance "
                               "FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._run(row)

    def _run(self, row: tuple[Any, ...]) -> dict[str, Any]:
        rid, kind, status, started, finished, provenance = row
        statement = self.statement(provenance) if provenance else None
        deps = ((statement or {}).get("predicate", {}).get("buildDefinition", {})
                .get("resolvedDependencies", []))
        outputs = [f"sha256:{d}" for (d,) in self._db.execute(
            "SELECT DISTINCT digest FROM artifacts WHERE run_id = ?", (rid,))]
        builder = (statement or {}).get("predicate", {}).get("runDetails", {}).get("builder", {})
        return {"id": rid, "kind": kind, "status": status, "started_at": started,
                "finished_at": finished,
                "notebook": _notebook(statement),
                "backend": str(builder.get("id")) if builder.get("id") else None,
                "inputs": [f"sha256:{d['digest']['sha256']}" for d in deps
                           if isinstance(d.get("digest"), dict) and "sha256" in d["digest"]],
                "outputs": outputs}


def _external(statement: dict[str, Any] | None) -> dict[str, Any]:
    if statement is None or statement.get("predicateType") != SLSA_PROVENANCE_PREDICATE:
        return {}
    params = statement["predicate"].get("buildDefinition", {}).get("externalParameters", {})
    return params if isinstance(params, dict) else {}


def _notebook(statement: dict[str, Any] | None) -> str | None:
    """The notebook a run's provenance names: a path (``%%secure_train``, whose kernel
    belongs to it) or ``{"path", "sha256"}`` (a papermill run executes it)."""
    notebook = _external(statement).get("notebook")
    if isinstance(notebook, dict):
        notebook = notebook.get("path")
    return notebook if isinstance(notebook, str) else None


def _gate_state(gate: dict[str, Any] | None) -> str:
    """The badge of a gate predicate: its outcome (PASS/FAIL/INCOMPLETE); its verdict
    (allow/deny) where an older record has no outcome; deny unless it says allow."""
    if gate is None:
        return "not_run"
    outcome = str(gate.get("outcome", "")).lower()
    if outcome in ("pass", "fail", "incomplete"):
        return outcome if outcome != "pass" or gate.get("verdict") == "allow" else "fail"
    return "pass" if gate.get("verdict") == "allow" else "fail"


def _vuln_badge(vulns: dict[str, Any] | None) -> dict[str, Any]:
    """``found`` with the count and the worst severity; ``none`` only if every package was
    checked (a check that could not answer for some package proves nothing)."""
    findings = (vulns or {}).get("findings") or []
    if findings:
        worst = max((str(f.get("severity")) for f in findings),
                    key=lambda s: LEVELS.index(s) if s in LEVELS else -1)
        return {"state": "found", "count": len(findings), "max_severity": worst}
    state = "none" if vulns is not None and not vulns.get("unchecked") else "not_checked"
    return {"state": state, "count": 0, "max_severity": None}


def _subject_digests(statement: dict[str, Any] | None) -> set[str]:
    """The sha256 digests a (verified) statement names."""
    if statement is None:
        return set()
    return {str(s["digest"]["sha256"]) for s in statement.get("subject", [])
            if isinstance(s.get("digest"), dict) and "sha256" in s["digest"]}


def _findings(scan: dict[str, Any] | None) -> list[dict[str, Any]]:
    if scan is None:
        return []
    return [*scan.get("findings", []), *(f for fr in scan.get("files", [])
                                         for f in fr.get("findings", []))]


def _location(finding: dict[str, Any]) -> str | None:
    parts = [str(finding[k]) for k in ("path", "member", "offset") if finding.get(k) is not None]
    return ":".join(parts) or None


def _fairness(fair: dict[str, Any]) -> dict[str, Any]:
    thresholds = fair.get("thresholds", {})
    failures = set(fair.get("failures", []))
    metrics = [{"name": name, "overall": value,
                "groups": dict(fair.get("byGroup", {}).get(name, {})),
                "threshold": thresholds.get(name), "passed": None}
               for name, value in fair.get("overall", {}).items()]
    disparities = [{"name": name, "value": value, "threshold": thresholds.get(name),
                    "passed": name not in failures, "reason": None}
                   for name, value in fair.get("disparities", {}).items()]
    return {"metrics": metrics, "disparities": disparities}

