"""Inside the sandbox: load the model's weights (``weights_only``), attack, write JSON.

The architecture comes from the user's own source file (read-only mount); the
weights are loaded with ``torch.load(weights_only=True)``, which unpickles no
code, and that only here: an untrusted model file is never loaded on the host.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from pathlib import Path


def main() -> None:
    import numpy as np
    import torch

    from securenb.robustness.attacks import evaluate

    config = json.loads(sys.argv[1])
    arch_file, _, arch_name = config["architecture"].rpartition(":")
    spec = importlib.util.spec_from_file_location("securenb_robustness_arch", arch_file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {arch_file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, arch_name)()
    try:
        state = torch.load(config["model"], weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise SystemExit(f"model refused by weights_only loading (not plain weights): {first}"
                         ) from None
    model.load_state_dict(state)
    with np.load(config["data"], allow_pickle=False) as data:
        x = torch.as_tensor(data[config.get("x", "x")], dtype=torch.float32)
        y = torch.as_tensor(data[config.get("y", "y")], dtype=torch.long)
    result = evaluate(model, x, y, epsilons=[float(e) for e in config["epsilons"]],
                      steps=int(config["steps"]), alpha=config.get("alpha"),
                      clip=(float(config["clip"][0]), float(config["clip"][1])),
                      seed=int(config.get("seed", 0)))
    out = Path(config["output"]) / "robustness.json"
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
