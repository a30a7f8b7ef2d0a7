"""`securenb bias` and `%bias_check`: exit codes, attestation on the model digest, audit, charts."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kernel_support import RUNNER_REQUESTS, execute, run_in_kernel

from securenb.core.attest import FAIRNESS_PREDICATE
from securenb.kernel import bias_magics


def _frame(biased: bool, rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    sex = rng.choice(["F", "M"], rows)
    y = rng.integers(0, 2, rows)
    pred = np.where(sex == "F", 1, y) if biased else y
    return pd.DataFrame({"y": y, "p": pred, "sex": sex, "age": rng.choice(["<30", "30+"], rows),
                         "w": rng.uniform(0.5, 2, rows)})


class Exploding:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, ("touch exploded",)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Exploding()))  # hashed only: loading it would run code
    return path


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The installed `securenb` command, as a user runs it (stdout and stderr together)."""
    done = subprocess.run([str(Path(sys.executable).parent / "securenb"), *args],
                          capture_output=True, text=True, check=False, env=env)
    return done.returncode, done.stdout + done.stderr


def test_fair_predictions_pass_and_are_attested(workspace: Any, model: Path, tmp_path: Path
                                               ) -> None:
    _frame(False).to_csv(tmp_path / "scored.csv", index=False)
    code, out = invoke("bias", str(model), "--data", "scored.csv", "--label", "y",
                       "--prediction", "p", "--sensitive", "sex", "--sensitive", "age", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "pass" and doc["result"]["passed"]
    assert not (tmp_path / "exploded").exists()  # the model was never unpickled
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    records = workspace.store.attestations_for(digest, FAIRNESS_PREDICATE)
    assert len(records) == 1
    _, statement = workspace.load_attestation(records[0].envelope)
    predicate = statement["predicate"]
    assert predicate["model"] == f"sha256:{digest}"
    assert predicate["data"]["path"] == "scored.csv"
    assert set(predicate["disparitiesByView"]) == {"sex", "age", "sex & age"}
    entries = [r.entry for r in workspace.audit_log.read() if r.entry.action == "fairness.check"]
    assert entries[-1].subject == f"sha256:{digest}"


def test_locked_key_keeps_the_result_and_says_why(workspace: Any, model: Path,
                                                  tmp_path: Path) -> None:
    _frame(False).to_csv(tmp_path / "scored.csv", index=False)
    env = {k: v for k, v in os.environ.items() if k != "SECURENB_KEY_PASSPHRASE"}
    code, out = invoke("bias", str(model), "--data", "scored.csv", "--label", "y",
                       "--prediction", "p", "--sensitive", "sex", env=env)
    assert code == 0, out
    assert "bias check PASS" in out and "warning: bias check not recorded" in out
    assert not workspace.store.attestations_for(hashlib.sha256(model.read_bytes()).hexdigest(),
                                                FAIRNESS_PREDICATE)


def test_biased_predictions_fail_with_exit_1(workspace: Any, model: Path, tmp_path: Path) -> None:
    _frame(True).to_csv(tmp_path / "scored.csv", index=False)
    code, out = invoke("bias", str(model), "--data", "scored.csv", "--label", "y",
                       "--prediction", "p", "--sensitive", "sex", "--png", "chart.png",
                       "--vega-lite", "chart.vl.json")
    assert code == 1, out
    assert "FAIL" in out and "breaks policy max_demographic_parity_difference" in out
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = json.loads((tmp_path / "chart.vl.json").read_text())
    assert spec["$schema"].endswith("vega-lite/v5.json")


def test_undefined_disparity_exits_2(workspace: Any, model: Path, tmp_path: Path) -> None:
    frame = _frame(False)
    frame["sex"] = "F"  # one group only: nothing to compare
    frame.to_parquet(tmp_path / "scored.parquet")
    code, out = invoke("bias", str(model), "--data", "scored.parquet", "--label", "y",
                       "--prediction", "p", "--sensitive", "sex", "--weight", "w")
    assert code == 2, out
    assert "only one group" in out


def test_bad_input_is_one_line(workspace: Any, model: Path, tmp_path: Path) -> None:
    _frame(False).to_csv(tmp_path / "scored.csv", index=False)
    code, out = invoke("bias", str(model), "--data", "scored.csv", "--label", "nope",
                       "--prediction", "p", "--sensitive", "sex")
    assert code == 2
    assert "no column 'nope'; columns: y, p, sex, age, w" in out
    assert "Traceback" not in out
    frame = _frame(False)
    frame.loc[3, "y"] = 2
    frame.to_csv(tmp_path / "three.csv", index=False)
    code, out = invoke("bias", str(model), "--data", "three.csv", "--label", "y",
                       "--prediction", "p", "--sensitive", "sex")
    assert code == 2 and "3 distinct labels" in out


def _error(cell: Any) -> str:
    """What stopped the cell: IPython prints a UsageError on stderr (the reply is an error)."""
    return "".join(o.text for o in cell.outputs if o.output_type == "stream"
                   and o.name == "stderr")


def test_magic_in_a_kernel(workspace: Any, model: Path, tmp_path: Path) -> None:
    _frame(True).to_csv(tmp_path / "biased.csv", index=False)
    cells = run_in_kernel(
        tmp_path,
        "%load_ext securenb",
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(7)\n"
        "frame = pd.DataFrame({'sex': rng.choice(['F', 'M'], 2000),"
        " 'age': rng.choice(['<30', '30+'], 2000)})\n"
        "y = rng.integers(0, 2, 2000); p = y.copy()",
        "report = %bias_check --model model.pkl --y-true y --y-pred p --sensitive frame "
        "--bootstrap 30 --seed 1",
        "print(report.passed, report.features)",
        "%bias_check --data biased.csv --label y --prediction p --sensitive sex",
        "%bias_check --y-true missing --y-pred p --sensitive frame",
    )
    (shown,) = [o for o in cells[2].outputs if o.output_type == "display_data"]
    assert "application/vnd.jupyter.widget-view+json" in shown.data  # the JupyterLab widget
    assert "data:image/png;base64," in shown.data["text/html"]  # papermill: checks + chart
    assert "bias check PASS" in shown.data["text/plain"]
    assert "recorded: attestation" in shown.data["text/plain"]
    assert cells[3].outputs[0].text.strip() == "True ('sex', 'age')"
    assert "UsageError: bias_check: fail" in _error(cells[4])
    assert "no variable 'missing'" in _error(cells[5])
    assert not (tmp_path / "exploded").exists()
    assert workspace.store.attestations_for(hashlib.sha256(model.read_bytes()).hexdigest(),
                                            FAIRNESS_PREDICATE)


def test_magic_needs_no_answer_from_the_notebook_runner(workspace: Any, model: Path,
                                                        tmp_path: Path) -> None:
    """papermill/nbclient is a frontend too. A card whose chart is captured into an Output
    widget (``with chart: display(...)``) makes the runner send the widget's state back on
    the shell channel while the cell's reply is on its way; jupyter_client sends on a
    blocking shadow of the asyncio socket, the reply's wake-up is lost and the runner
    waits out its whole cell timeout (the 10-minute `make demo` stall)."""
    client = execute(
        tmp_path,
        "%load_ext securenb",
        "import numpy as np\n"
        "rng = np.random.default_rng(7)\n"
        "sex = rng.choice(['F', 'M'], 2000); y = rng.integers(0, 2, 2000); p = y.copy()",
        "report = %bias_check --model model.pkl --y-true y --y-pred p --sensitive sex",
    )
    assert set(client.sent) == RUNNER_REQUESTS, client.sent
    (shown,) = [o for o in client.nb.cells[2].outputs if o.output_type == "display_data"]
    assert "application/vnd.jupyter.widget-view+json" in shown.data
    charts = [out for state in client.widget_state.values()
              if state.get("_model_name") == "OutputModel" for out in state["outputs"]]
    assert [sorted(c["data"]) for c in charts] == [
        ["application/vnd.vegalite.v5+json", "image/png", "text/plain"]]  # JupyterLab's chart


def test_card_escapes_group_names() -> None:
    from securenb.fairness import assess

    report = assess([1, 0, 1, 0], [1, 0, 0, 1], {"<script>": ["a", "a", "b", "b"]})
    page = bias_magics.to_html(report, "<i>note</i>")
    assert "<script>" not in page and "&lt;script&gt;" in page
