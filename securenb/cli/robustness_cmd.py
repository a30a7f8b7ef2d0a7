"""`securenb robustness MODEL --arch FILE.py:NAME --data EVAL.npz --eps E...`.

Accuracy under FGSM and PGD (L-infinity) of a torch classifier, measured in a
bwrap sandbox: the weights (a state dict) are loaded there only, with
``torch.load(weights_only=True)``. Exit codes: 0 the worst accuracy under
attack reaches policy ``[gate] min_robust_accuracy``, 1 it does not, 2 could not
evaluate. In a workspace the result is an attestation on the model's digest.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--arch", required=True,
              help="FILE.py:NAME: the nn.Module class (or factory) the weights belong to.")
@click.option("--data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Evaluation set: .npz with arrays x (inputs) and y (class indices).")
@click.option("--eps", "epsilons", type=float, multiple=True, required=True,
              help="L-inf budget (repeatable).")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1),
              help="PGD steps.")
@click.option("--alpha", type=float, default=None, help="PGD step size (default 2.5*eps/steps).")
@click.option("--clip", nargs=2, type=float, default=(0.0, 1.0), show_default=True,
              help="Valid input range.")
@click.option("--no-record", is_flag=True, help="Do not record the result in the workspace.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def robustness(ctx: click.Context, model: Path, arch: str, data: Path,
               epsilons: tuple[float, ...], steps: int, alpha: float | None,
               clip: tuple[float, float], no_record: bool, as_json: bool) -> None:
    """Adversarial robustness of a torch classifier, in the sandbox (exit 0/1/2)."""
    from securenb.core.locate import workspace_root
    from securenb.core.policy import load_policy
    from securenb.robustness import evaluate_in_sandbox, record

    start = Path((ctx.find_root().obj or {}).get("directory") or Path.cwd()).resolve()
    root = workspace_root(start)
    policy, _ = load_policy(root or start)
    result = evaluate_in_sandbox(policy.isolation, model, arch, data, epsilons=list(epsilons),
                                 steps=steps, alpha=alpha, clip=clip)
    attestation = None
    if root is not None and not no_record:
        from securenb.core.workspace import Workspace

        attestation = f"sha256:{record(Workspace(root), result, model, data)}"
    floor = policy.gate.min_robust_accuracy
    if as_json:
        click.echo(json.dumps({"cleanAccuracy": result.clean_accuracy,
                               "worstAccuracy": result.worst, "floor": floor,
                               "attacks": list(result.attacks), "attestation": attestation},
                              indent=2))
    else:
        click.echo(result.to_text())
        click.echo(f"policy min_robust_accuracy {floor}: "
                   f"{'met' if result.worst >= floor else 'NOT met'}"
                   + (f"; recorded: attestation {attestation}" if attestation else ""))
    raise SystemExit(0 if result.worst >= floor else 1)
