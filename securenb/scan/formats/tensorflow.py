"""TensorFlow SavedModel (``saved_model.pb``) and its Keras metadata (``keras_metadata.pb``).

A SavedModel's graphs and functions can only use ops compiled into the TensorFlow
runtime, so the risky ones form a closed list: ops that read or write files, run Python
(``PyFunc``), or send data out (debug and summary writers). Checkpoint save/restore ops
are expected, but only inside the saver's own functions (``__inference__traced_save_*``,
``save/...`` nodes). Keras layer configs kept in ``keras_metadata.pb`` are checked like a
``.keras`` config.
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
_SAVER_FUNCTION = re.compile(r".*_traced_(save|restore)_\d+\Z")
_SAVER_NODE = re.compile(r"save(_\d+)?/")


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
    def __init__(self, src: Source, ctx: Ctx) -> None:
        self.src = src
        self.ctx = ctx

    def node(self, at: int, n: int, saver: bool, where: str) -> None:
        name = op = ""
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire == LEN and number == 1:
                name = text(self.src, a, m)
            elif wire == LEN and number == 2:
                op = text(self.src, a, m)
        in_saver = saver or bool(_SAVER_NODE.match(name))
        if op in RISKY_OPS or (op in SAVER_OPS and not in_saver):
            self.ctx.report("tf.risky-op", f"{where}: node {name!r} runs op {op}", construct=op)

    def graph(self, at: int, n: int) -> None:
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire != LEN:
                continue
            if number == 1:
                self.node(a, m, False, "graph")
            elif number == 2:
                for sub, w, b, k in fields(self.src, a, a + m):
                    if sub == 1 and w == LEN:
                        self.function(b, k)

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
        saver = bool(_SAVER_FUNCTION.match(name))
        for a, m in nodes:
            self.node(a, m, saver, f"function {name}")


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
                except (ValueError, RecursionError):
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
