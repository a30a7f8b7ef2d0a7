"""TensorFlow SavedModel (``saved_model.pb``) and its Keras metadata (``keras_metadata.pb``).

A SavedModel's graphs and functions can only use ops compiled into the TensorFlow
runtime, so the risky ones form a closed list: ops that read or write files, run Python
(``PyFunc``), or send data out (debug and summary writers). Checkpoint save/restore ops
are expected, but only on the file name the loader passes in (never a constant path).
``saved_model.pbtxt`` (the text form TensorFlow also loads) is parsed and checked the
same way. Keras layer configs kept in ``keras_metadata.pb`` are checked like a ``.keras``
config.
"""

from __future__ import annotations

import json
import re

from securenb.scan.context import Ctx
from securenb.scan.formats.keras_config import scan_keras_config
from securenb.scan.formats.protobuf import LEN, VARINT, ProtoError, fields, text
from securenb.scan.source import Source

RISKY_OPS = frozenset(
    [
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "MatchingFilesDataset",
        "ExperimentalMatchingFilesDataset",
        "LMDBDataset",
        "ExperimentalLMDBDataset",
        "LoadAndRemapMatrix",
        "FileSystemSetConfiguration",
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
        "ImmutableConst",
        "DebugIdentity",
        "DebugIdentityV2",
        "DebugIdentityV3",
        "DebugNanCount",
        "DebugNumericSummary",
        "DebugNumericSummaryV2",
        "PrintV2",
        "WholeFileReader",
        "WholeFileReaderV2",
        "TextLineReader",
        "TextLineReaderV2",
        "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2",
        "TFRecordReader",
        "TFRecordReaderV2",
        "LMDBReader",
        "InitializeTableFromTextFile",
        "InitializeTableFromTextFileV2",
        "TextLineDataset",
        "TFRecordDataset",
        "TFRecordDatasetV2",
        "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2",
        "CSVDataset",
        "CSVDatasetV2",
        "ExperimentalCSVDataset",
        "SqlDataset",
        "ExperimentalSqlDataset",
        "LoadDataset",
        "SaveDataset",
        "SaveDatasetV2",
        "SnapshotDataset",
        "SnapshotDatasetV2",
        "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord",
        "CreateSummaryFileWriter",
        "CreateSummaryDbWriter",
        "WriteSummary",
        "WriteScalarSummary",
        "WriteHistogramSummary",
        "WriteImageSummary",
        "WriteAudioSummary",
        "WriteGraphSummary",
        "WriteRawProtoSummary",
        "ImportEvent",
        "DecodeProtoV2",
        "EncodeProto",
    ]
)
SAVER_OPS = frozenset(
    ["SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints"]
)


def looks_like_saved_model(src: Source) -> bool:
    seen: set[int] = set()
    try:
        for number, wire, _, _ in fields(src, 0, src.size):
            if (number, wire) not in ((1, VARINT), (2, LEN)):
                return False
            seen.add(number)
    except ProtoError:
        return False
    return 2 in seen


class _Graphs:
    """Walks graphs and functions; a saver op is checked by where its file name comes from.

    Save/restore ops are what a SavedModel's checkpoint needs, so they are allowed when the
    file name they use is derived (through string joins, sharding, identity, ...) from the
    function's argument or a placeholder: the path the loader passes in. A file name that
    goes back to a constant is a fixed path chosen by the file's author, whatever the node
    or function is called.
    """

    def __init__(self, src: Source, ctx: Ctx) -> None:
        self.src = src
        self.ctx = ctx

    def _node(self, at: int, n: int) -> tuple[str, str, list[str]]:
        name = op = ""
        inputs: list[str] = []
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire == LEN and number == 1:
                name = text(self.src, a, m)
            elif wire == LEN and number == 2:
                op = text(self.src, a, m)
            elif wire == LEN and number == 3 and len(inputs) < 1024:
                inputs.append(text(self.src, a, m))
        return name, op, inputs

    def check(self, nodes: list[tuple[int, int]], where: str) -> None:
        check_nodes([self._node(a, m) for a, m in nodes], where, self.ctx)

    def graph(self, at: int, n: int) -> None:
        nodes: list[tuple[int, int]] = []
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire != LEN:
                continue
            if number == 1:
                nodes.append((a, m))
            elif number == 2:
                for sub, w, b, k in fields(self.src, a, a + m):
                    if sub == 1 and w == LEN:
                        self.function(b, k)
        self.check(nodes, "graph")

    def function(self, at: int, n: int) -> None:
        name, nodes = "", []
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire != LEN:
                continue
            if number == 1:
                for sub, w, b, k in fields(self.src, a, a + m):
                    if sub == 1 and w == LEN:
                        name = text(self.src, b, k)
            elif number == 3:
                nodes.append((a, m))
        self.check(nodes, f"function {name}")


def check_nodes(nodes: list[tuple[str, str, list[str]]], where: str, ctx: Ctx) -> None:
    """Risky ops, and saver ops whose file name does not come from an argument."""
    table: dict[str, tuple[str, list[str]]] = {}
    for name, op, inputs in nodes:
        table.setdefault(name, (op, inputs))
        if op in RISKY_OPS:
            ctx.report("tf.risky-op", f"{where}: node {name!r} runs op {op}", construct=op)
    for name, (op, inputs) in table.items():
        if op not in SAVER_OPS:
            continue
        data = [i for i in inputs if not i.startswith("^")]
        paths = data[:2] if op == "MergeV2Checkpoints" else data[:1]
        if not paths or not all(_from_argument(table, p) for p in paths):
            ctx.report(
                "tf.risky-op",
                f"{where}: node {name!r} runs {op} on a file name fixed in the model",
                construct=op,
            )


_PLACEHOLDERS = frozenset({"Placeholder", "PlaceholderWithDefault", "_Arg"})


def _from_argument(table: dict[str, tuple[str, list[str]]], ref: str, depth: int = 0) -> bool:
    """Whether the tensor ``ref`` starts from an argument or placeholder (first inputs)."""
    name = ref.split(":", 1)[0]
    if name not in table:
        return True  # a function argument
    op, inputs = table[name]
    if op in _PLACEHOLDERS:
        return True
    data = [i for i in inputs if not i.startswith("^")]
    if op == "Const" or not data or depth > 64:
        return False
    return _from_argument(table, data[0], depth + 1)


def scan_saved_model(src: Source, ctx: Ctx) -> None:
    ctx.file.formats.append("tf-savedmodel")
    graphs = _Graphs(src, ctx)
    try:
        for number, wire, at, n in fields(src, 0, src.size):
            if number == 2 and wire == LEN:
                for sub, w, a, m in fields(src, at, at + n):
                    if sub == 2 and w == LEN:
                        graphs.graph(a, m)
    except ProtoError as exc:
        ctx.report("tf.malformed", str(exc))


def scan_keras_metadata(src: Source, ctx: Ctx) -> None:
    """Find the JSON layer configs anywhere in the message and check them."""
    ctx.file.formats.append("keras-metadata")

    def walk(at: int, n: int, depth: int) -> None:
        for _, wire, a, m in fields(src, at, at + n):
            if wire != LEN or m == 0:
                continue
            if src.read_at(a, 1) == b"{":
                try:
                    config = json.loads(src.read_at(a, m))
                except ValueError:
                    continue
                except RecursionError:  # a loader with more stack left may still read it
                    ctx.report("limit.exceeded", "layer configuration nested too deep to "
                               "examine")
                    continue
                scan_keras_config(config, ctx)
            elif depth < 8:
                try:
                    walk(a, m, depth + 1)
                except ProtoError:
                    continue

    try:
        walk(0, src.size, 0)
    except ProtoError as exc:
        ctx.report("tf.malformed", str(exc))


_TOKEN = re.compile(
    rb"""\s*(?:#[^\n]*(?:\n|\Z)\s*)*(?:("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    rb"""|([{}<>:\[\],;])|([^\s{}<>:\[\],;"']+))"""
)


def _parse_text(data: bytes) -> list[tuple[str, object]]:
    """Protocol-buffer text format as nested (field, value) lists; raises ValueError."""
    pos, stack = 0, [[]]  # type: ignore[var-annotated]
    key: str | None = None
    while pos < len(data):
        m = _TOKEN.match(data, pos)
        if not m or m.end() == pos:
            if data[pos:].strip():
                raise ValueError(f"unexpected text at byte {pos}")
            break
        pos = m.end()
        string, punct, word = m.groups()
        if punct in (b"{", b"<"):
            if key is None or len(stack) > 100:
                raise ValueError("message without a field name")
            child: list[tuple[str, object]] = []
            stack[-1].append((key, child))
            stack.append(child)
            key = None
        elif punct in (b"}", b">"):
            if len(stack) == 1:
                raise ValueError("unbalanced braces")
            stack.pop()
        elif punct in (b":", b",", b";", b"[", b"]"):
            continue
        elif string is not None:
            if key is None:
                raise ValueError("value without a field name")
            raw = string[1:-1].decode("utf-8", "replace")
            stack[-1].append((key, raw.encode("latin-1", "replace").decode("unicode_escape")))
        elif word is not None:
            if key is None:
                key = word.decode("utf-8", "replace")
                continue
            stack[-1].append((key, word.decode("utf-8", "replace")))
            key = None
            continue
        if string is not None:
            key = None
    if len(stack) != 1:
        raise ValueError("unbalanced braces")
    return stack[0]


def _all(items: object, name: str) -> list[object]:
    return [v for k, v in items if k == name] if isinstance(items, list) else []


def _text_node(node: object) -> tuple[str, str, list[str]]:
    name = next((str(v) for v in _all(node, "name")), "")
    op = next((str(v) for v in _all(node, "op")), "")
    return name, op, [str(v) for v in _all(node, "input")]


def scan_saved_model_text(data: bytes, ctx: Ctx) -> None:
    """``saved_model.pbtxt``: the same checks as the binary form."""
    ctx.file.formats.append("tf-savedmodel-text")
    try:
        tree = _parse_text(data)
    except (ValueError, RecursionError) as exc:
        ctx.report("tf.malformed", f"saved_model.pbtxt: {exc}")
        return
    for meta in _all(tree, "meta_graphs"):
        for graph in _all(meta, "graph_def"):
            check_nodes([_text_node(n) for n in _all(graph, "node")], "graph", ctx)
            for library in _all(graph, "library"):
                for function in _all(library, "function"):
                    signature = _all(function, "signature")
                    fname = next((str(v) for s in signature for v in _all(s, "name")), "")
                    nodes = [_text_node(n) for n in _all(function, "node_def")]
                    check_nodes(nodes, f"function {fname}", ctx)
