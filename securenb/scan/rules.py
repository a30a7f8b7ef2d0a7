"""Every rule the scanner can report: one place that names it, rates it and says what it means.

The verdict a rule implies is part of its definition: ``UNSAFE`` rules found something a
loader would run or that only an attacker would write; ``UNKNOWN`` rules mark what could
not be analysed completely (never treated as safe); ``SAFE`` rules are information.
"""

from __future__ import annotations

from dataclasses import dataclass

from securenb.scan.report import Severity, Verdict


@dataclass(frozen=True)
class Rule:
    """A kind of finding: its id, default severity, implied verdict and a one-line help."""

    id: str
    severity: Severity
    verdict: Verdict
    title: str


_C, _H, _M, _L, _I = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
)
_U, _K, _S = Verdict.UNSAFE, Verdict.UNKNOWN, Verdict.SAFE

_ALL = [
    # pickle virtual machine
    Rule("pickle.global-not-allowed", _H, _U, "imports a global outside the allowlist"),
    Rule("pickle.global-dangerous", _C, _U, "imports a global known to run code or touch files"),
    Rule("pickle.dynamic-global", _C, _U, "imports a global whose name is computed at load time"),
    Rule("pickle.call-on-non-global", _H, _U, "calls an object that is not an allowlisted global"),
    Rule(
        "pickle.checked-call-rejected", _H, _U, "an allowlisted callable got arguments it must not"
    ),
    Rule("pickle.build-on-global", _H, _U, "sets attributes on a class, function or module"),
    Rule("pickle.mutates-global", _H, _U, "appends to or sets items on a global object"),
    Rule(
        "pickle.dunder-state", _H, _U, "object state sets a dunder attribute such as __setstate__"
    ),
    Rule("pickle.extension-code", _H, _U, "imports through the copyreg extension registry"),
    Rule("pickle.nested-pickle", _I, _S, "a bytes value is itself a pickle and was scanned"),
    Rule(
        "pickle.parser-differential",
        _M,
        _K,
        "CPython's unpickler reads the stream differently from the analysis",
    ),
    Rule("pickle.malformed", _M, _K, "the pickle stream is malformed or truncated"),
    Rule("pickle.trailing-data", _I, _S, "bytes after the last pickle that no unpickler reads"),
    # archives and wrappers
    Rule(
        "zip.duplicate-name", _H, _U, "two zip members share a name; loaders disagree on which wins"
    ),
    Rule("zip.header-mismatch", _H, _U, "a local header disagrees with the central directory"),
    Rule("zip.prepended-data", _H, _U, "data before the first zip member (polyglot file)"),
    Rule("zip.path-traversal", _M, _U, "an archive member name escapes the extraction folder"),
    Rule("zip.symlink", _M, _U, "an archive member is a symbolic link"),
    Rule("zip.unusual-flags", _M, _K, "a zip member sets encryption or reserved flag bits"),
    Rule("zip.crc-mismatch", _M, _K, "a zip member's CRC does not match its content"),
    Rule("zip.overlapping-members", _M, _K, "zip members overlap (zip-bomb construction)"),
    Rule("zip.malformed", _M, _K, "the zip structure is malformed or truncated"),
    Rule("zip.unsupported-method", _L, _K, "a zip member uses a compression method not supported"),
    Rule("tar.path-traversal", _M, _U, "a tar member name or link target escapes the folder"),
    Rule("tar.special-member", _L, _K, "a tar member is a device, fifo or sparse file"),
    Rule("tar.malformed", _M, _K, "the tar structure is malformed or truncated"),
    Rule("archive.unsupported", _L, _K, "archive or compression format that cannot be opened here"),
    Rule("limit.exceeded", _M, _K, "a size or count limit was reached (bomb or huge header)"),
    Rule("polyglot.zip-trailer", _H, _U, "a non-zip file ends with a zip directory (polyglot)"),
    # model formats
    Rule("torch.legacy-layout", _M, _K, "legacy torch storage layout does not match its records"),
    Rule("torchscript.code", _M, _K, "TorchScript code could not be analysed"),
    Rule(
        "torchscript.risky-op",
        _H,
        _U,
        "TorchScript code calls a file, process, network or custom operator",
    ),
    Rule("numpy.malformed", _M, _K, "the .npy header is malformed or too large"),
    Rule("safetensors.malformed", _M, _K, "the safetensors header is malformed or too large"),
    Rule("safetensors.bad-offsets", _M, _U, "tensor offsets overlap or leave the data buffer"),
    Rule("safetensors.duplicate-key", _M, _U, "the safetensors header repeats a key"),
    Rule("gguf.malformed", _M, _K, "the GGUF header is malformed or exceeds limits"),
    Rule("gguf.bad-offsets", _M, _U, "GGUF tensor data lies outside the file"),
    Rule("template.injection", _C, _U, "a chat template reaches Python internals (SSTI)"),
    Rule("template.unparsable", _M, _K, "a chat template could not be parsed"),
    Rule("onnx.external-data-escape", _H, _U, "ONNX external data path leaves the model folder"),
    Rule("onnx.external-data", _I, _S, "ONNX tensor stored in an external file"),
    Rule(
        "onnx.custom-domain", _I, _S, "ONNX operator from a custom domain (needs a native library)"
    ),
    Rule("onnx.malformed", _M, _K, "the ONNX protobuf is malformed or too deeply nested"),
    Rule("tf.risky-op", _H, _U, "TensorFlow op that reads or writes files or runs Python"),
    Rule("tf.malformed", _M, _K, "the SavedModel protobuf is malformed"),
    Rule("keras.lambda", _C, _U, "Keras Lambda layer or marshalled Python function"),
    Rule("keras.module-not-allowed", _H, _U, "Keras config imports a module outside Keras' layers"),
    Rule("keras.tf-op", _M, _U, "Keras TFOpLambda calls a TensorFlow function outside math/nn"),
    Rule("keras.malformed", _M, _K, "the Keras configuration is malformed"),
    Rule("hdf5.unreadable", _M, _K, "the HDF5 file could not be inspected"),
    Rule("hdf5.pickled-object", _M, _K, "HDF5 content past the inspection limit"),
    # files
    Rule("format.unrecognized", _L, _K, "content matches no known format"),
    Rule("format.native-code", _H, _U, "native executable or shared library"),
    Rule("format.python-bytecode", _H, _U, "compiled Python bytecode (.pyc)"),
    Rule("code.python-source", _H, _U, "Python source, run by loaders as remote code"),
    Rule("fs.symlink-escape", _M, _U, "a symbolic link points outside the scanned folder"),
    Rule("fs.special-file", _L, _K, "a device, fifo or socket was not read"),
    Rule("fs.unreadable", _M, _K, "a file could not be read"),
    Rule("scan.empty", _L, _K, "nothing to scan"),
    Rule("scan.error", _M, _K, "the scanner failed on this content"),
]

RULES: dict[str, Rule] = {r.id: r for r in _ALL}
