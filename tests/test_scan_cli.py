"""`securenb scan`: exit codes, JSON, SARIF 2.1.0, workspace attestations, policy allowlist."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from securenb.cli.scan_cmd import scan
from securenb.core.attest import SCAN_PREDICATE
from securenb.scan.rules import RULES


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    ctx.obj = {"directory": None}


cli.add_command(scan)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["scan", *args], catch_exceptions=False)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)  # no workspace above: nothing recorded by accident
    safe = tmp_path / "safe.pkl"
    safe.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(Payload()))
    unknown = tmp_path / "unknown.bin"
    unknown.write_bytes(bytes(range(256)) * 8)
    return {"safe": safe, "bad": bad, "unknown": unknown}


def test_exit_codes(files: dict[str, Path], tmp_path: Path) -> None:
    assert run(str(files["safe"])).exit_code == 0
    assert run(str(files["bad"])).exit_code == 1
    assert run(str(files["unknown"])).exit_code == 2
    assert run(str(files["unknown"]), str(files["bad"])).exit_code == 1
    missing = run(str(files["safe"]), str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_human_output_names_the_finding(files: dict[str, Path]) -> None:
    result = run(str(files["bad"]))
    assert "UNSAFE" in result.output and "posix.system" in result.output


def test_json_output(files: dict[str, Path]) -> None:
    result = run(str(files["bad"]), str(files["safe"]), "--json")
    data = json.loads(result.output)
    assert data["verdict"] == "UNSAFE"
    assert [r["verdict"] for r in data["reports"]] == ["UNSAFE", "SAFE"]
    finding = data["reports"][0]["files"][0]["findings"][0]
    assert finding["rule"] == "pickle.global-dangerous" and finding["offset"] is not None


def test_allow_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "net.pkl"
    path.write_bytes(b"\x80\x02cmypkg.models\nNet\n)\x81}b.")
    assert run(str(path)).exit_code == 1
    assert run(str(path), "--allow", "mypkg.models:Net").exit_code == 0
    assert run(str(path), "--allow", "not valid").exit_code == 2


def _check_sarif(log: dict[str, Any]) -> None:
    """The SARIF 2.1.0 structure we emit (and, with $SARIF_SCHEMA, the official schema)."""
    schema = os.environ.get("SARIF_SCHEMA")
    if schema:
        import jsonschema

        jsonschema.validate(log, json.loads(Path(schema).read_text()))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "securenb-scan"
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    for rule in driver["rules"]:
        assert set(rule) <= {"id", "name", "shortDescription", "defaultConfiguration", "properties"}
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    for result in run_["results"]:
        assert set(result) <= {"ruleId", "ruleIndex", "level", "message", "locations", "properties"}
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note") and result["message"]["text"]
        for location in result["locations"]:
            assert set(location) <= {"physicalLocation", "logicalLocations"}
            physical = location["physicalLocation"]
            assert physical["artifactLocation"]["uri"].startswith("file://")
            region = physical.get("region", {"byteOffset": 0, "byteLength": 1})
            assert region["byteOffset"] >= 0 and region["byteLength"] >= 0
            for logical in location.get("logicalLocations", []):
                assert set(logical) == {"fullyQualifiedName", "kind"}
    for artifact in run_["artifacts"]:
        assert set(artifact) <= {"location", "length", "properties"} and artifact["length"] >= 0


def test_sarif(files: dict[str, Path], tmp_path: Path) -> None:
    import torch

    archive = tmp_path / "m.pt"
    torch.save({"p": Payload()}, archive)
    out = tmp_path / "scan.sarif"
    result = run(str(files["bad"]), str(files["unknown"]), str(archive), "--sarif", str(out))
    assert result.exit_code == 1
    log = json.loads(out.read_text())
    _check_sarif(log)
    levels = {r["ruleId"]: r["level"] for r in log["runs"][0]["results"]}
    assert (
        levels["pickle.global-dangerous"] == "error" and levels["format.unrecognized"] == "warning"
    )
    member = [r for r in log["runs"][0]["results"] if "logicalLocations" in r["locations"][0]]
    assert member[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "m/data.pkl"


def test_scan_is_recorded_in_the_workspace(
    workspace: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    workspace.policy  # noqa: B018 - loads
    result = run(str(files["bad"]), "--json")
    data = json.loads(result.output)
    assert result.exit_code == 1 and len(data["attestations"]) == 1
    (record,) = workspace.store.list_attestations()
    assert record.predicate_type == SCAN_PREDICATE
    _, statement = workspace.load_attestation(record.envelope)
    assert statement["predicate"]["verdict"] == "UNSAFE"
    assert statement["subject"][0]["name"] == "bad.pkl"
    assert run(str(files["safe"]), "--no-record").exit_code == 0
    assert len(workspace.store.list_attestations()) == 1


def test_locked_key_records_nothing(
    workspace: Any, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECURENB_KEY_PASSPHRASE")
    result = run(str(files["bad"]))
    assert result.exit_code == 1 and "not recorded" in result.output
    assert workspace.store.list_artifacts() == [] and workspace.store.list_attestations() == []


def test_policy_allow_globals(workspace: Any, tmp_path: Path) -> None:
    (tmp_path / "securenb.toml").write_text('[scan]\nallow_globals = ["mypkg.models.Net"]\n')
    path = tmp_path / "net.pkl"
    path.write_bytes(b"\x80\x02cmypkg.models\nNet\n)\x81}b.")
    assert run(str(path), "--no-record").exit_code == 0


# The command's start-up: what `securenb scan model.pt` imports, and when the unpickler
# helper starts. (Its speed against picklescan is measured in benchmarks/bench_scan.py.)
STARTUP_PROBE = r"""
import subprocess, sys
events = []
def hook(event, args):
    if event == "import":
        events.append(("import", args[0]))
    elif event == "subprocess.Popen":
        events.append(("popen", str(args[1])))
sys.addaudithook(hook)
from securenb.cli.main import main
sys.argv = ["securenb", "scan", "--no-record", *sys.argv[1:]]
code = None
try:
    main()
except SystemExit as exc:
    code = exc.code
imported = sorted({name for kind, name in events if kind == "import"})
popens = [i for i, (kind, what) in enumerate(events) if kind == "popen" and "-I" in what]
dispatch = [i for i, e in enumerate(events) if e == ("import", "securenb.scan.dispatch")]
first = [found[0] if found else -1 for found in (popens, dispatch)]
print(code, *first, *imported, file=sys.stderr)
"""


@pytest.mark.parametrize("output", [[], ["--json"]])
def test_scanning_a_checkpoint_imports_no_model_library(tmp_path: Path, output: list[str]) -> None:
    """A torch checkpoint is a zip with a pickle: the command reads it with the standard
    library, and starts CPython's unpickler helper before it imports the format scanners
    (so the helper's start overlaps with theirs); ``--json`` (CI) does not need rich."""
    import subprocess
    import sys

    import torch

    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, path)
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE, *output, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    code, popen_at, dispatch_at, *imported = done.stderr.strip().splitlines()[-1].split()
    assert code == "0", done.stderr[-2000:]
    for heavy in ("numpy", "torch", "h5py", "jinja2", "rfc8785", "rich.progress"):
        assert heavy not in imported, heavy
    if output:
        assert not [name for name in imported if name.split(".")[0] == "rich"]
    assert 0 <= int(popen_at) < int(dispatch_at)
