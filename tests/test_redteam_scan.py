"""Red team: JSON the scanner gives up on for depth, a loader still reads.

CPython's JSON parser counts nesting against the interpreter's recursion
limit, from wherever it is called. The scanner parses a few dozen frames deep
(CLI, engine, dispatch); a loader calling ``json.load`` near the top of its
stack (transformers reads ``tokenizer_config.json`` that way) still parses a
file a little shallower than the limit. The scanner treated such a file as
unparsable text, hence SAFE, whatever chat template or Keras layer it held.
A limit reached is UNKNOWN, never SAFE (DESIGN: read files the way their
loader will; UNKNOWN when a limit is hit).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from securenb.scan import scan_path

TEMPLATE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"  # template injection
_DEEPEST = """
import json, sys
def text(n): return '{"pad": ' + '[' * n + ']' * n + '}'
best = 0
for n in range(800, 1100):
    try:
        json.loads(text(n))
    except RecursionError:
        break
    best = n
print(best)
"""


def _loader_depth() -> int:
    """The deepest nesting a loader's top-level ``json.load`` parses (a fresh interpreter)."""
    out = subprocess.run([sys.executable, "-c", _DEEPEST], capture_output=True, text=True,
                         check=True, timeout=60)
    return int(out.stdout)


def _loader_reads(path: Path) -> None:
    """The loader's twin: ``json.load`` near the top of a fresh interpreter's stack."""
    subprocess.run([sys.executable, "-c", "import json, sys; json.load(open(sys.argv[1]))",
                    str(path)], check=True, capture_output=True, timeout=60)


def _padded(depth: int, **fields: object) -> str:
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
    return "{" + body + ', "pad": ' + "[" * depth + "]" * depth + "}"


def test_a_tokenizer_config_the_loader_reads_is_never_safe(tmp_path: Path) -> None:
    depth = _loader_depth() - 5  # json.load, and the loader's own frames
    config = tmp_path / "tokenizer_config.json"
    config.write_text(_padded(depth, chat_template=TEMPLATE))
    _loader_reads(config)
    assert scan_path(config).verdict.value != "SAFE"


def test_keras_metadata_json_too_deep_to_read_is_not_skipped(tmp_path: Path) -> None:
    """keras_metadata.pb: a length-delimited field holding a layer config (JSON)."""
    layer = {"class_name": "Lambda", "config": {"name": "l", "function": ["x", None, None]}}
    assert scan_path(_metadata(tmp_path / "plain", _padded(1, **layer))).verdict.value \
        == "UNSAFE"
    path = _metadata(tmp_path / "deep", _padded(_loader_depth() - 5, **layer))
    _loader_reads(path.with_suffix(".json"))
    assert scan_path(path).verdict.value != "SAFE"


def _metadata(folder: Path, text: str) -> Path:
    """``keras_metadata.pb`` holding ``text`` in one length-delimited field (and the JSON
    beside it, for the loader's twin)."""
    folder.mkdir()
    (folder / "keras_metadata.json").write_text(text)
    config = text.encode()
    size = len(config)
    varint = bytearray()
    while True:
        varint.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    path = folder / "keras_metadata.pb"
    path.write_bytes(b"\x0a" + bytes(varint) + config)
    return path
