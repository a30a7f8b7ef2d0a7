"""Run one notebook through papermill with the ``securenb`` engine.

The one entry point of ``securenb run``, ``securenb reproduce`` and batches.
papermill is imported before the engine module (see ``securenb.runs.engine``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.errors import SecurenbError


@dataclass
class RunResult:
    """How one run ended: a signed output exists unless the run was refused or killed."""

    notebook: str
    output: str
    parameters: dict[str, Any]
    status: str  # completed | failed | error
    exit_code: int
    seconds: float
    run_id: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "notebook": self.notebook, "output": self.output,
                "parameters": self.parameters, "status": self.status,
                "exit_code": self.exit_code, "seconds": round(self.seconds, 3),
                "error": self.error, **self.extra}


def engine() -> type[Any]:
    """The registered engine class, loaded the way papermill loads it."""
    from papermill.engines import papermill_engines

    return papermill_engines.get_engine("securenb")  # type: ignore[no-any-return]


def run_notebook(notebook: Path, output: Path, parameters: dict[str, Any], *,
                 kernel: str | None = None, isolation: str | None = None,
                 gpus: int | str | None = None, secrets: tuple[str, ...] = (),
                 cwd: Path | None = None, workspace: Path | None = None,
                 log_output: bool = False, progress_bar: bool = True,
                 execution_timeout: int | None = None, start_timeout: int = 60,
                 output_dir: str | None = None, pod_kernel: Path | None = None,
                 pod_image: str | None = None) -> RunResult:
    """Execute ``notebook`` into ``output``; a failed cell is a result, not an exception."""
    engine()
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from securenb.runs.engine import OPTIONS_KWARG, RunOptions

    run_ids: list[str] = []
    options = RunOptions(isolation=isolation, kernel=kernel, parameters=dict(parameters),
                         gpus=gpus, secrets=secrets,
                         output=output.resolve(), output_dir=output_dir, workspace=workspace,
                         pod_kernel=pod_kernel, pod_image=pod_image, on_start=run_ids.append)
    began = time.perf_counter()
    status, code, error = "completed", 0, None
    try:
        papermill.execute_notebook(
            str(notebook), None, parameters=parameters, engine_name="securenb",
            kernel_name=kernel, cwd=str(cwd) if cwd else None, log_output=log_output,
            progress_bar=progress_bar, execution_timeout=execution_timeout,
            start_timeout=start_timeout, **{OPTIONS_KWARG: options})
    except PapermillExecutionError as exc:
        status, code = "failed", 1
        error = f"cell #{exc.cell_index + 1}: {exc.ename}: {exc.evalue}"
    except SecurenbError:
        raise
    except Exception as exc:  # timeout, dead kernel: recorded and signed as failed
        if not run_ids or not output.exists():
            raise SecurenbError(f"{notebook}: the run could not start: "
                                f"{type(exc).__name__}: {exc}") from None
        status, code, error = "failed", 1, f"{type(exc).__name__}: {exc}"
    return RunResult(str(notebook), str(output), parameters, status, code,
                     time.perf_counter() - began, run_ids[0] if run_ids else None, error)
