"""Format detection by content and each format's own checks, archives, limits, folders."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from securenb.scan import ScanOptions, ScanReport, Verdict, scan_path
from securenb.scan.source import Source


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


EVIL = pickle.dumps(Payload(), protocol=2)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rules(report: ScanReport) -> set[str]:
    return {f.rule for f in report.all_findings()}


def zip_of(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


def torch_bytes(obj: object, **kw: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


# -- detection and cost -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.safetensors", "weights.txt", "model", "x.onnx"])
def test_format_comes_from_content_not_name(tmp_path: Path, name: str) -> None:
    report = scan_path(write(tmp_path, name, torch_bytes({"w": torch.ones(2), "p": Payload()})))
    assert report.files[0].format.startswith("zip/pytorch-zip")
    assert report.verdict is Verdict.UNSAFE


def test_torch_checkpoint_reads_only_directory_and_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes read do not grow with the weights (the storages are never read)."""
    read = [0]
    original = Source.read_at

    def counting(self: Source, offset: int, n: int) -> bytes:
        data = original(self, offset, n)
        read[0] += len(data)
        return data

    monkeypatch.setattr(Source, "read_at", counting)
    costs = []
    for size in (1, 64):
        path = tmp_path / f"w{size}.pt"
        torch.save({f"layer{i}": torch.zeros(size * 1024, 256) for i in range(4)}, path)
        read[0] = 0
        assert scan_path(path).verdict is Verdict.SAFE
        costs.append(read[0])
    assert costs[0] < 200_000 and abs(costs[1] - costs[0]) < 1000


def test_legacy_torch_layout(tmp_path: Path) -> None:
    good = torch_bytes(
        {"w": torch.ones(3), "b": torch.zeros(2, dtype=torch.int64)},
        _use_new_zipfile_serialization=False,
    )
    assert scan_path(write(tmp_path, "good.pt", good)).verdict is Verdict.SAFE
    report = scan_path(write(tmp_path, "bad.pt", good[:-4]))
    assert rules(report) == {"torch.legacy-layout"}
    extra = scan_path(write(tmp_path, "extra.pt", good + EVIL))
    assert extra.verdict is Verdict.UNSAFE


def test_legacy_torch_tar(tmp_path: Path) -> None:
    def member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    storage = (
        pickle.dumps(1, 2)
        + pickle.dumps(("0", "cpu", torch.FloatStorage), 2)
        + struct.pack("<q", 2)
        + bytes(8)
        + pickle.dumps([], 2)
    )
    tensor = (
        pickle.dumps(1, 2)
        + pickle.dumps(("t", "0", 0), 2)
        + struct.pack("<i", 1)
        + bytes(4)
        + bytes(24)
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        member(tf, "sys_info", pickle.dumps({"little_endian": True}, 2))
        member(tf, "pickle", pickle.dumps({}, 2))
        member(tf, "storages", storage)
        member(tf, "tensors", tensor)
    report = scan_path(write(tmp_path, "legacy.tar", buf.getvalue()))
    assert report.verdict is Verdict.SAFE, report.all_findings()
    assert "pytorch-legacy-tar" in report.files[0].format


# -- zip structure --------------------------------------------------------------------------


def test_zip_tricks(tmp_path: Path) -> None:
    dup = scan_path(
        write(tmp_path, "dup.zip", zip_of([("a.pkl", pickle.dumps(1)), ("a.pkl", EVIL)]))
    )
    assert {"zip.duplicate-name", "pickle.global-dangerous"} <= rules(dup)
    slip = scan_path(write(tmp_path, "slip.zip", zip_of([("../x.txt", b"hi")])))
    assert rules(slip) == {"zip.path-traversal"}
    prefixed = scan_path(write(tmp_path, "pre.zip", EVIL + zip_of([("a.txt", b"hi")])))
    assert prefixed.verdict is Verdict.UNSAFE
    empty = scan_path(write(tmp_path, "empty.zip", zip_of([])))
    assert empty.verdict is Verdict.SAFE


def test_zip_bomb_refused_in_bounded_time(tmp_path: Path) -> None:
    inner = zip_of([("zeros.bin", bytes(50 << 20))], zipfile.ZIP_DEFLATED)
    path = write(
        tmp_path, "bomb.zip", zip_of([(f"{i}.zip", inner) for i in range(10)], zipfile.ZIP_DEFLATED)
    )
    start = time.perf_counter()
    report = scan_path(path)
    assert report.verdict is Verdict.UNKNOWN
    assert "limit.exceeded" in rules(report)
    assert time.perf_counter() - start < 5


def test_gzip_bomb_and_total_budget(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.gz", gzip.compress(bytes(20 << 20)))
    options = ScanOptions(max_decompressed_bytes=4 << 20)
    assert rules(scan_path(path, options=options)) == {"limit.exceeded"}


def test_deep_nesting_is_limited(tmp_path: Path) -> None:
    data = EVIL
    for _ in range(12):
        data = gzip.compress(data)
    report = scan_path(write(tmp_path, "deep.gz", data))
    assert report.verdict is not Verdict.SAFE


@pytest.mark.parametrize(
    "magic,name",
    [
        (b"7z\xbc\xaf\x27\x1c", "7z"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x04\x22\x4d\x18", "lz4"),
        (b"Rar!\x1a\x07\x00", "rar"),
    ],
)
def test_unsupported_wrappers_are_unknown(tmp_path: Path, magic: bytes, name: str) -> None:
    report = scan_path(write(tmp_path, f"x.{name}", magic + EVIL))
    assert report.verdict is Verdict.UNKNOWN
    assert rules(report) == {"archive.unsupported"}


def test_truncated_gzip_is_unknown(tmp_path: Path) -> None:
    report = scan_path(
        write(tmp_path, "x.gz", gzip.compress(pickle.dumps(list(range(1000))))[:-30])
    )
    assert report.verdict is Verdict.UNKNOWN


def test_tar_links_and_members(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("m/model.pkl")
        info.size = len(EVIL)
        tf.addfile(info, io.BytesIO(EVIL))
        link = tarfile.TarInfo("m/inside")
        link.type, link.linkname = tarfile.SYMTYPE, "model.pkl"
        tf.addfile(link)
    report = scan_path(write(tmp_path, "m.tar", buf.getvalue()))
    assert rules(report) == {"pickle.global-dangerous"}
    assert report.all_findings()[0].member == "m/model.pkl"


# -- model formats ----------------------------------------------------------------------------


def test_npy_headers(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3, dtype=[("a", "i4"), ("b", "O")]), allow_pickle=True)
    assert scan_path(write(tmp_path, "s.npy", buf.getvalue())).files[0].format == "npy/npy-object"
    huge = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{"
    assert rules(scan_path(write(tmp_path, "h.npy", huge))) == {"numpy.malformed"}
    code = (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", 40)
        + b"{'descr': __import__('os'), 'shape': ()}  \n"
    )
    assert rules(scan_path(write(tmp_path, "c.npy", code))) == {"numpy.malformed"}


def _safetensors(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_safetensors_checks(tmp_path: Path) -> None:
    ok = _safetensors(
        {"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "__metadata__": {"k": "v"}},
        bytes(4),
    )
    assert scan_path(write(tmp_path, "ok.st", ok)).verdict is Verdict.SAFE
    gap = _safetensors({"a": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}, bytes(6))
    assert rules(scan_path(write(tmp_path, "gap.st", gap))) == {"safetensors.malformed"}
    entry = b'{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    raw = b'{"a": ' + entry + b', "a": ' + entry + b"}"
    dup = struct.pack("<Q", len(raw)) + raw + b"\0"
    assert rules(scan_path(write(tmp_path, "dup.st", dup))) == {"safetensors.duplicate-key"}
    shape = _safetensors({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}, bytes(4))
    assert rules(scan_path(write(tmp_path, "shape.st", shape))) == {"safetensors.malformed"}


def _gguf(template: str) -> bytes:
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text.encode())) + text.encode()

    head = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 1, 2)
        + s("general.architecture")
        + struct.pack("<I", 8)
        + s("llama")
    )
    head += s("tokenizer.chat_template") + struct.pack("<I", 8) + s(template)
    head += s("w") + struct.pack("<IQIQ", 1, 4, 0, 0)
    return head + bytes(-len(head) % 32) + bytes(16)


BENIGN_TEMPLATES = [  # ChatML, Mistral, Llama 3
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim"
    " + '<|im_end|>' }}{% endfor %}",
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}",
]
INJECTIONS = [
    "{{ self.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ x|attr(y) }}",
    "{{ lipsum[('_'*2)~'globals'~('_'*2)] }}",
    "{% set n = '%c'|format(95)~'%c'|format(95)~'class'"
    "~'%c'|format(95)~'%c'|format(95) %}{{ x[n] }}",
    "{{ x|map(attribute='__class__')|list }}",
    "{% for %}",
]


@pytest.mark.parametrize("template", BENIGN_TEMPLATES)
def test_benign_chat_templates(tmp_path: Path, template: str) -> None:
    assert scan_path(write(tmp_path, "m.gguf", _gguf(template))).verdict is Verdict.SAFE


@pytest.mark.parametrize("template", INJECTIONS)
def test_chat_template_injection(tmp_path: Path, template: str) -> None:
    assert scan_path(write(tmp_path, "m.gguf", _gguf(template))).verdict is not Verdict.SAFE


def test_gguf_limits(tmp_path: Path) -> None:
    data = _gguf("hi")
    assert rules(scan_path(write(tmp_path, "t.gguf", data[: len(data) // 2]))) == {"gguf.malformed"}
    far = data.replace(struct.pack("<IQIQ", 1, 4, 0, 0), struct.pack("<IQIQ", 1, 4, 0, 1 << 40))
    assert rules(scan_path(write(tmp_path, "f.gguf", far))) == {"gguf.bad-offsets"}


def test_onnx_external_data(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("W", TensorProto.FLOAT, [2], np.ones(2, "f4").tobytes(), raw=True)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["W"], ["Y"])],
        "g",
        [],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
        [w],
    )
    model = helper.make_model(graph)
    folder = tmp_path / "m"
    folder.mkdir()
    onnx.save_model(
        model,
        str(folder / "m.onnx"),
        save_as_external_data=True,
        location="data.bin",
        size_threshold=0,
    )
    report = scan_path(folder)
    assert report.verdict is Verdict.SAFE, report.all_findings()
    assert {f.format for f in report.files} == {"onnx", "onnx-external-data"}
    (folder / "data.bin").unlink()
    os.symlink("/etc/hostname", folder / "data.bin")
    assert "onnx.external-data-escape" in rules(scan_path(folder / "m.onnx"))


def test_keras_configs(tmp_path: Path) -> None:
    def keras(config: object) -> Path:
        path = tmp_path / "m.keras"
        path.write_bytes(
            zip_of([("metadata.json", b"{}"), ("config.json", json.dumps(config).encode())])
        )
        return path

    relu = {"module": "keras.activations", "class_name": "function", "config": "relu"}
    dense = {"module": "keras.layers", "class_name": "Dense", "config": {"activation": relu}}
    assert (
        scan_path(
            keras({"module": "keras", "class_name": "Sequential", "config": {"layers": [dense]}})
        ).verdict
        is Verdict.SAFE
    )
    lam = {"class_name": "Lambda", "config": {"function": "x"}}
    hidden = {
        "module": "keras",
        "class_name": "Functional",
        "compile_config": {
            "loss": {"module": "keras.losses", "class_name": "Loss", "config": {"x": [lam]}}
        },
    }
    assert rules(scan_path(keras(hidden))) == {"keras.lambda"}
    config_fn = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
    }
    assert rules(scan_path(keras(config_fn))) == {"keras.module-not-allowed"}
    models_fn = {"module": "keras.models", "class_name": "function", "config": "load_model"}
    assert rules(scan_path(keras(models_fn))) == {"keras.module-not-allowed"}


def test_hdf5_inspector_failure_is_unknown(tmp_path: Path) -> None:
    report = scan_path(write(tmp_path, "bad.h5", b"\x89HDF\r\n\x1a\n" + bytes(100)))
    assert rules(report) == {"hdf5.unreadable"}


def _pb(field: int, value: bytes | str | int) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    if isinstance(value, int):
        return varint(field << 3) + varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return varint(field << 3 | 2) + varint(len(raw)) + raw


@pytest.mark.parametrize(
    "function,op,path_from,verdict",
    [
        # issue 12: a saver op is judged by where its file name comes from, not by names
        ("__inference__traced_save_7", "SaveV2", "argument", Verdict.SAFE),
        ("__inference_serve_7", "SaveV2", "argument", Verdict.SAFE),
        ("__inference__traced_save_7", "SaveV2", "constant", Verdict.UNSAFE),
        ("__inference__traced_save_7", "MergeV2Checkpoints", "constant", Verdict.UNSAFE),
        ("__inference__traced_save_7", "SaveV2", "none", Verdict.UNSAFE),
        ("__inference_serve_7", "WriteFile", "argument", Verdict.UNSAFE),
        ("__inference_serve_7", "MatMul", "none", Verdict.SAFE),
    ],
)
def test_saved_model_ops(
    tmp_path: Path, function: str, op: str, path_from: str, verdict: Verdict
) -> None:
    const = _pb(3, _pb(1, "path") + _pb(2, "Const"))
    join = _pb(3, _pb(1, "join") + _pb(2, "StringJoin") + _pb(3, "path:output:0"))
    source = {"argument": "file_prefix", "constant": "join:output:0", "none": None}[path_from]
    node = _pb(1, "n") + _pb(2, op) + (_pb(3, source) * 2 if source else b"")
    fn = _pb(1, _pb(1, function)) + const + join + _pb(3, node)
    saved = _pb(1, 1) + _pb(2, _pb(2, _pb(2, _pb(1, fn))))
    assert scan_path(write(tmp_path, "saved_model.pb", saved)).verdict is verdict


# -- plain files and folders --------------------------------------------------------------------


def test_text_binary_and_code(tmp_path: Path) -> None:
    assert (
        scan_path(write(tmp_path, "README.md", b"# Model\nInstructions\n")).verdict is Verdict.SAFE
    )
    assert scan_path(write(tmp_path, "x.bin", os.urandom(4096))).verdict is Verdict.UNKNOWN
    assert rules(scan_path(write(tmp_path, "x.so", b"\x7fELF" + bytes(60)))) == {
        "format.native-code"
    }
    assert (
        scan_path(write(tmp_path, "p.png", b"\x89PNG\r\n\x1a\n" + bytes(30))).verdict
        is Verdict.SAFE
    )
    # issue 12: "nothing was checked" must not read as clean
    assert rules(scan_path(write(tmp_path, "e", b""))) == {"scan.empty"}


def test_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rules(scan_path(empty)) == {"scan.empty"}
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.pkl").write_bytes(pickle.dumps([1]))
    os.symlink("sub/w.pkl", folder / "inside.pkl")
    os.mkfifo(folder / "pipe")
    report = scan_path(folder)
    assert rules(report) == {"fs.special-file"}
    assert report.verdict is Verdict.UNKNOWN
    assert [f.path for f in report.files if f.format == "pickle"] == [str(folder / "sub" / "w.pkl")]
    with pytest.raises(FileNotFoundError):
        scan_path(tmp_path / "missing")


def test_unreadable_subfolder_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(root: object, onerror: object = None) -> list[object]:
        onerror(PermissionError(13, "Permission denied", str(tmp_path / "locked")))  # type: ignore[operator]
        return []

    monkeypatch.setattr("securenb.scan.engine.os.walk", walk)
    report = scan_path(tmp_path)
    assert report.verdict is Verdict.UNKNOWN and rules(report) == {"fs.unreadable"}


def test_progress_callback(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"{i}.pkl").write_bytes(pickle.dumps(i))
    seen: list[tuple[int, int]] = []
    scan_path(tmp_path, on_file=lambda i, n, p: seen.append((i, n)))
    assert seen == [(0, 3), (1, 3), (2, 3)]


def test_hdf5_attributes_past_the_inspection_limit_are_unknown(tmp_path: Path) -> None:
    """Attributes the inspector did not read cannot make a file SAFE."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "many.h5"
    with h5py.File(path, "w", libver="latest") as f:
        group = f.create_group("g")
        for i in range(10_001):
            group.attrs[f"a{i}"] = i
    report = scan_path(path)
    assert report.verdict.value == "UNKNOWN"
    assert rules(report) == {"hdf5.pickled-object"}
