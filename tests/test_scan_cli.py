"""`securenb scan`: exit codes, JSON, SARIF 2.1.0, workspace attestations, policy allowlist."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
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
    (so the helper's start overlaps with theirs); neither output imports rich or click."""
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
    # neither output needs rich, nor (parsed without it) click: each costs as much as the scan
    assert not [name for name in imported if name.split(".")[0] in ("rich", "click")]
    assert 0 <= int(popen_at) < int(dispatch_at)


@pytest.mark.parametrize(
    "args",
    [
        ["{bad}"],
        ["{bad}", "{safe}", "{unknown}", "--no-record"],
        ["--json", "{bad}", "{missing}"],
        ["--allow=posix:system", "{bad}"],
        ["--allow", "posix:system", "--", "{bad}"],
        ["--allow", "not-a-global", "{bad}"],  # malformed: click's usage error
        ["--sarif", "{folder}", "{bad}"],  # a folder: click's usage error
        ["--bogus", "{bad}"],
        [],
    ],
)
def test_command_without_click_says_what_click_says(
    files: dict[str, Path], tmp_path: Path, args: list[str]
) -> None:
    """`securenb scan` parses its plain forms without click (it starts faster): the same
    output, errors and exit code as the click command, and anything else goes to click."""
    import re
    import subprocess
    import sys

    names = {"missing": tmp_path / "nope", "folder": tmp_path, **files}
    argv = [arg.format(**names) for arg in args]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    from securenb.cli.group import cli as securenb

    command = [str(Path(sys.executable).with_name("securenb")), "scan", *argv]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    expected = CliRunner().invoke(
        securenb, ["scan", *argv], prog_name="securenb", terminal_width=78
    )

    def same(text: str) -> str:  # scan times differ from run to run
        return re.sub(r'\d+\.\d+ s\)|"seconds": [\d.e-]+', "T", text)

    assert done.returncode == expected.exit_code
    assert same(done.stdout) == same(expected.stdout)
    assert same(done.stderr) == same(expected.stderr)


def test_command_help_is_clicks(tmp_path: Path) -> None:
    """`securenb scan --help` (not a plain scan) is click's page, with the group's -h."""
    import subprocess
    import sys

    command = [str(Path(sys.executable).with_name("securenb")), "scan", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("Usage: securenb scan [OPTIONS] PATHS")
    assert "-h, --help" in done.stdout and "--allow MODULE:NAME" in done.stdout


def test_colour_only_on_a_terminal_without_no_color(files: dict[str, Path]) -> None:
    """ANSI colour when stdout is a terminal, none with NO_COLOR set or into a pipe."""
    import pty
    import subprocess
    import sys

    def on_terminal(**env: str) -> bytes:
        primary, secondary = pty.openpty()
        command = [sys.executable, "-c", "from securenb.cli.main import main; main()"]
        with subprocess.Popen(
            [*command, "scan", "--no-record", str(files["bad"])],
            stdout=secondary,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in {**os.environ, **env}.items() if v},
        ) as proc:
            os.close(secondary)
            out = b""
            while chunk := _read(primary):
                out += chunk
            proc.wait(timeout=120)
        os.close(primary)
        return out

    coloured = on_terminal(NO_COLOR="")
    assert b"\x1b[1;31mUNSAFE\x1b[0m" in coloured and b"posix.system" in coloured
    plain = on_terminal(NO_COLOR="1")
    assert b"\x1b[" not in plain and b"UNSAFE" in plain and b"posix.system" in plain


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal's other end closed
        return b""


def test_names_from_the_file_reach_the_terminal_escaped(tmp_path: Path) -> None:
    """A pickle's global names and a file's name are the attacker's: their control
    characters (a terminal escape sequence here) are printed escaped, never raw."""
    path = tmp_path / "m\x1b[2J.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\x1b]0;owned\x07\nq\x00X\x04\x00\x00\x00trueq\x01\x85R.")
    result = run(str(path), "--no-record")
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "m\\x1b[2J.pkl" in result.output and "\\x1b]0;owned\\x07" in result.output


_SWAP_MANY = """
import os, sys
names = [f"race{i}.pkl" for i in range(int(sys.argv[1]))]
print("swapping", flush=True)
while True:  # each raceN.pkl is the safe pickle, then the bad one, and so on
    for source in ("../safe.pkl", "../bad.pkl"):
        for name in names:
            os.link(source, "../.next")  # outside the folder scanned
            os.replace("../.next", name)
"""


def test_a_file_swapped_during_the_scan_is_recorded_as_scanned(
    workspace: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    """Another process of the user swaps each file of a folder between a safe and a bad
    pickle while `securenb scan` reads it. On main the CLI scanned each file and hashed it
    again to record it: SAFE verdicts were signed on the bad pickle's digest."""
    from securenb.core.store import file_sha256

    folder = tmp_path / "models"
    folder.mkdir()
    count = 24
    swapper = subprocess.Popen([sys.executable, "-c", _SWAP_MANY, str(count)], cwd=folder,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"
        while len(list(folder.glob("race*.pkl"))) < count:
            pass
        done = subprocess.run([str(Path(sys.executable).parent / "securenb"), "scan", "--json",
                               "models"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
    finally:
        swapper.kill()
        swapper.wait()
    assert len(json.loads(done.stdout)["attestations"]) == 1, done.stderr
    (record,) = workspace.store.list_attestations()
    _, statement = workspace.load_attestation(record.envelope)
    by_name = {f["path"]: f["verdict"] for f in statement["predicate"]["files"]}
    safe, bad = file_sha256(files["safe"])[0], file_sha256(files["bad"])[0]
    named = {}
    for subject in statement["subject"]:
        digest = subject["digest"]["sha256"]
        assert digest in (safe, bad), subject
        verdict = next(v for path, v in by_name.items() if path.endswith(subject["name"]))
        named[subject["name"]] = verdict
        assert verdict == ("SAFE" if digest == safe else "UNSAFE"), (subject, verdict)
    assert len(named) == count
