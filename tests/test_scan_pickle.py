"""The pickle virtual machine: every protocol, every opcode that imports or calls, the memo,
stack-built names, state tricks, nested and concatenated streams, joblib arrays."""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from securenb.scan import Allowlist, ScanReport, Verdict, scan_path


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


def scan_bytes(tmp_path: Path, data: bytes, name: str = "x.pkl", **kw: object) -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_path(path, **kw)  # type: ignore[arg-type]


def rules(report: ScanReport) -> set[str]:
    return {f.rule for f in report.all_findings()}


def su(text: str) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text.encode()


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_payload_is_unsafe(tmp_path: Path, protocol: int) -> None:
    report = scan_bytes(tmp_path, pickle.dumps(Payload(), protocol=protocol))
    assert report.verdict is Verdict.UNSAFE
    (finding,) = [f for f in report.all_findings() if f.rule == "pickle.global-dangerous"]
    assert finding.construct == "posix.system"
    assert finding.severity.value == "critical"


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_benign_data_is_safe(tmp_path: Path, protocol: int) -> None:
    obj = {
        "a": [1, 2.5, "x", b"y", None, True],
        "b": (1, 2),
        "c": {3},
        "d": frozenset({4}),
        "e": collections.OrderedDict(k=1),
        "n": np.arange(3),
        "big": 2**100,
    }
    report = scan_bytes(tmp_path, pickle.dumps(obj, protocol=protocol))
    assert report.verdict is Verdict.SAFE, report.all_findings()


@pytest.mark.parametrize(
    "data",
    [
        b"cos\nsystem\n(S'true'\ntR.",  # GLOBAL + REDUCE
        b"(S'true'\nios\nsystem\n.",  # INST
        b"(cos\nsystem\nS'true'\no.",  # OBJ
        b"\x80\x02csubprocess\nPopen\n]X\x04\x00\x00\x00truea\x85\x81.",  # NEWOBJ
        b"\x80\x04" + su("subprocess") + su("Popen") + b"\x93)}\x92.",  # NEWOBJ_EX
    ],
    ids=["global", "inst", "obj", "newobj", "newobj_ex"],
)
def test_every_import_opcode(tmp_path: Path, data: bytes) -> None:
    report = scan_bytes(tmp_path, data)
    assert report.verdict is Verdict.UNSAFE
    assert "pickle.global-dangerous" in rules(report)


def test_finding_has_offset_and_construct(tmp_path: Path) -> None:
    data = pickle.dumps([1, 2, Payload()], protocol=2)
    report = scan_bytes(tmp_path, data)
    (finding,) = report.all_findings()
    ops = [(op.name, pos) for op, _, pos in pickletools.genops(data)]
    assert ("GLOBAL", finding.offset) in ops
    assert finding.path.endswith("x.pkl") and finding.member is None


def test_stack_global_through_memo(tmp_path: Path) -> None:
    data = (
        b"\x80\x04"
        + su("os")
        + b"p0\n0"
        + su("system")
        + b"p1\n0g0\ng1\n\x93"
        + su("true")
        + b"\x85R."
    )
    assert scan_bytes(tmp_path, data).all_findings()[0].construct == "os.system"


def test_memo_confusion_put_and_memoize(tmp_path: Path) -> None:
    """memo[0]/[1] hold os/system; MEMOIZE stores at len(memo) (2, 3), not at 0 and 1."""
    data = (
        b"\x80\x04"
        + su("os")
        + b"q\x00"
        + su("system")
        + b"q\x01"
        + su("torch._utils")
        + b"\x94"
        + su("_rebuild_tensor_v2")
        + b"\x94"
        + b"0000"
        + b"h\x00h\x01\x93"
        + su("true")
        + b"\x85R."
    )
    findings = scan_bytes(tmp_path, data).all_findings()
    assert [f.construct for f in findings] == ["os.system"]


def test_stack_global_on_computed_name(tmp_path: Path) -> None:
    data = (
        b"\x80\x04"
        + su("builtins")
        + su("str")
        + b"\x93C\x02os"
        + su("ascii")
        + b"\x86R"
        + su("system")
        + b"\x93"
        + su("true")
        + b"\x85R."
    )
    report = scan_bytes(tmp_path, data)
    assert rules(report) == {"pickle.dynamic-global"}
    assert report.verdict is Verdict.UNSAFE


def test_python2_names_are_mapped_below_protocol_3(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, b"c__builtin__\neval\n(S'1'\ntR.")
    assert report.all_findings()[0].construct == "builtins.eval"
    assert scan_bytes(tmp_path, b"(S'x'\nicommands\ngetoutput\n.").all_findings()[0].construct == (
        "subprocess.getoutput"
    )
    assert scan_bytes(tmp_path, b"\x80\x02c__builtin__\nset\n)R.").verdict is Verdict.SAFE


def test_build_on_global_and_dotted_lookup(tmp_path: Path) -> None:
    data = b"\x80\x05cnumpy\nprod\nN(Va\nVos\nd\x86b0cnumpy\nprod.a\n."
    assert {"pickle.build-on-global", "pickle.global-not-allowed"} <= rules(
        scan_bytes(tmp_path, data)
    )


def test_setstate_injection(tmp_path: Path) -> None:
    data = b"\x80\x02ccollections\nOrderedDict\n)R}S'__setstate__'\nN sbS'x'\nb.".replace(
        b"N ", b"N"
    )
    report = scan_bytes(tmp_path, data)
    assert "pickle.dunder-state" in rules(report)
    assert report.verdict is Verdict.UNSAFE


def test_harmless_dunder_state_is_allowed(tmp_path: Path) -> None:
    data = b"\x80\x02ccollections\nOrderedDict\n)R}S'__version__'\nK\x01sb."
    assert scan_bytes(tmp_path, data).verdict is Verdict.SAFE


@pytest.mark.parametrize("code", [b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00"])
def test_extension_registry(tmp_path: Path, code: bytes) -> None:
    assert rules(scan_bytes(tmp_path, b"\x80\x02" + code + b")R.")) == {"pickle.extension-code"}


def test_call_on_computed_object(tmp_path: Path) -> None:
    data = b"\x80\x02ccollections\nOrderedDict\n)R)R."
    assert rules(scan_bytes(tmp_path, data)) == {"pickle.call-on-non-global"}


def test_mutating_a_global_object(tmp_path: Path) -> None:
    data = b"\x80\x02ccollections\nOrderedDict\nK\x01K\x02s."
    assert rules(scan_bytes(tmp_path, data)) == {"pickle.mutates-global"}


def test_getattr_is_checked(tmp_path: Path) -> None:
    ok = b"\x80\x02c__builtin__\ngetattr\nczoneinfo\nZoneInfo\nX\t\x00\x00\x00_unpickle\x86R."
    assert scan_bytes(tmp_path, ok).verdict is Verdict.SAFE
    bad = b"\x80\x02c__builtin__\ngetattr\nczoneinfo\nZoneInfo\nX\x08\x00\x00\x00__init__\x86R."
    assert rules(scan_bytes(tmp_path, bad)) == {"pickle.global-not-allowed"}
    computed = (
        b"\x80\x02c__builtin__\ngetattr\nccollections\nOrderedDict\n)RX\x01\x00\x00\x00a\x86R."
    )
    assert rules(scan_bytes(tmp_path, computed)) == {"pickle.checked-call-rejected"}


def test_codecs_encode_only_with_text_codecs(tmp_path: Path) -> None:
    assert scan_bytes(tmp_path, pickle.dumps(b"\x00\xff", protocol=2)).verdict is Verdict.SAFE
    bad = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R."
    assert rules(scan_bytes(tmp_path, bad)) == {"pickle.checked-call-rejected"}


def test_ufunc_reconstruct_names_are_checked(tmp_path: Path) -> None:
    good = b"cnumpy.core\n_ufunc_reconstruct\n(S'numpy'\nS'log1p'\ntR."
    assert scan_bytes(tmp_path, good).verdict is Verdict.SAFE
    bad = b"cnumpy.core\n_ufunc_reconstruct\n(S'os'\nS'system'\ntR(S'true'\ntR."
    assert scan_bytes(tmp_path, bad).all_findings()[0].construct == "os.system"


def test_nested_pickle_in_bytes(tmp_path: Path) -> None:
    inner = pickle.dumps(Payload(), protocol=2)
    report = scan_bytes(tmp_path, pickle.dumps({"blob": inner}, protocol=4))
    finding = next(f for f in report.all_findings() if f.rule == "pickle.global-dangerous")
    assert finding.member is not None and finding.member.startswith("<bytes@")
    assert (
        scan_bytes(tmp_path, pickle.dumps({"blob": pickle.dumps([1])}, 4)).verdict is Verdict.SAFE
    )


def test_random_bytes_that_start_like_a_pickle_are_data(tmp_path: Path) -> None:
    data = pickle.dumps({"w": b"\x80\x02\xff\xfe" + bytes(range(256)) * 300}, protocol=4)
    assert scan_bytes(tmp_path, data).verdict is Verdict.SAFE


def test_concatenated_pickles(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, pickle.dumps([1]) + pickle.dumps(Payload()))
    assert report.verdict is Verdict.UNSAFE


def test_trailing_garbage_is_inert(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, pickle.dumps([1]) + b"\x00\x01garbage")
    assert report.verdict is Verdict.SAFE
    assert rules(report) == {"pickle.trailing-data"}


@pytest.mark.parametrize("cut", [1, 5, 12])
def test_truncated_stream_is_unknown(tmp_path: Path, cut: int) -> None:
    data = pickle.dumps({"a": list(range(20))}, protocol=2)[:-cut]
    report = scan_bytes(tmp_path, data)
    assert report.verdict is Verdict.UNKNOWN
    assert rules(report) == {"pickle.malformed"}


def test_payload_then_malformed_is_unsafe(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, b"cos\nsystem\n(S'true'\ntR\xff")
    assert report.verdict is Verdict.UNSAFE
    assert {"pickle.global-dangerous", "pickle.malformed"} <= rules(report)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x06N.",
        b"\x80\x02h\x05.",
        b"\x80\x02(t0u.",
        b"\x80\x02N\x87.",
        b"\x80\x02" + b"(" * 5 + b".",
    ],
    ids=["protocol", "memo", "mark", "underflow", "stop-without-value"],
)
def test_malformed_streams(tmp_path: Path, data: bytes) -> None:
    assert scan_bytes(tmp_path, data).verdict is not Verdict.SAFE


def test_huge_declared_lengths_do_not_allocate(tmp_path: Path) -> None:
    for data in (b"\x80\x04\x8e" + (2**62).to_bytes(8, "little"), b"\x80\x02\x8b\xff\xff\xff\x7f"):
        assert scan_bytes(tmp_path, data).verdict is Verdict.UNKNOWN


def test_large_constants_are_skipped_not_read(tmp_path: Path) -> None:
    data = pickle.dumps({"w": np.zeros(2_000_000)}, protocol=4)
    report = scan_bytes(tmp_path, data)
    assert report.verdict is Verdict.SAFE


def test_joblib_arrays_and_payload_after_them(tmp_path: Path) -> None:
    import joblib

    safe = tmp_path / "safe.joblib"
    joblib.dump(
        {"a": np.arange(100.0), "o": np.array(["x", None], dtype=object), "u": np.array(["ab"])},
        safe,
    )
    assert scan_path(safe).verdict is Verdict.SAFE
    bad = tmp_path / "bad.joblib"
    joblib.dump({"a": np.arange(100.0), "p": Payload()}, bad)
    assert scan_path(bad).verdict is Verdict.UNSAFE
    obj = tmp_path / "obj.joblib"
    joblib.dump({"o": np.array([Payload()], dtype=object)}, obj)
    assert scan_path(obj).verdict is Verdict.UNSAFE


def test_joblib_array_bytes_read_as_opcodes(tmp_path: Path) -> None:
    """Raw array bytes a plain pickle.load would execute are reported."""
    import joblib

    payload = b"cos\nsystem\n(S'true'\ntR."
    path = tmp_path / "a.joblib"
    joblib.dump(np.frombuffer(payload, dtype=np.uint8), path)
    assert "pickle.global-dangerous" in rules(scan_path(path))


def test_extra_allowed_globals(tmp_path: Path) -> None:
    data = b"\x80\x02cmypkg.models\nNet\n)\x81}b."
    assert scan_bytes(tmp_path, data).verdict is Verdict.UNSAFE
    assert (
        scan_bytes(tmp_path, data, extra_allowed_globals=["mypkg.models.Net"]).verdict
        is Verdict.SAFE
    )
    assert (
        scan_bytes(tmp_path, data, extra_allowed_globals=["mypkg.models:*"]).verdict is Verdict.SAFE
    )
    dotted = b"\x80\x04" + su("mypkg.models") + su("os.system") + b"\x93."
    assert (
        scan_bytes(tmp_path, dotted, extra_allowed_globals=["mypkg.models:*"]).verdict
        is Verdict.UNSAFE
    )
    with pytest.raises(ValueError, match="module:qualname"):
        Allowlist(["not a name"])


def test_torchscript_names_only_inside_torchscript(tmp_path: Path) -> None:
    data = b"\x80\x02c__torch__.foo\nBar\n)\x81."
    assert scan_bytes(tmp_path, data).verdict is Verdict.UNSAFE


def test_real_sklearn_estimators_are_safe(tmp_path: Path) -> None:
    """Every default-constructible estimator, fitted where possible, pickles to allowed names."""
    import warnings

    from sklearn.datasets import make_classification
    from sklearn.utils.discovery import all_estimators

    X, y = make_classification(40, 5, random_state=0)
    X = np.abs(X)
    unsafe = {}
    for name, cls in all_estimators():
        try:
            est = cls()
        except TypeError:
            continue
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            est.fit(X, y)  # unfitted estimators are checked too
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(est, protocol=5))
        report = scan_path(path)
        if report.verdict is not Verdict.SAFE:
            unsafe[name] = [f.construct for f in report.all_findings()]
    assert not unsafe


def test_pandas_frames_are_safe(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "i": [1, 2],
            "s": ["a", None],
            "c": pd.Categorical(["x", "y"]),
            "t": pd.to_datetime(["2024-01-01", None]).tz_localize("Europe/Paris"),
            "d": pd.to_timedelta([1, 2], unit="s"),
            "n": pd.array([1, None], dtype="Int64"),
            "p": pd.period_range("2024-01", periods=2, freq="M"),
        }
    ).set_index("i")
    for protocol in (2, 4, 5):
        assert scan_bytes(tmp_path, pickle.dumps(frame, protocol=protocol)).verdict is Verdict.SAFE


def test_globals_are_reported(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, pickle.dumps(collections.OrderedDict(a=1), protocol=2))
    assert report.files[0].globals == ["collections:OrderedDict"]


def test_findings_are_capped_but_verdict_kept(tmp_path: Path) -> None:
    data = b"\x80\x02" + b"cos\nsystem\n0" * 500 + b"N."
    report = scan_bytes(tmp_path, data)
    assert report.verdict is Verdict.UNSAFE
    assert len(report.all_findings()) <= 30
    assert "more finding" in report.all_findings()[-1].message


def test_deep_nesting_is_bounded(tmp_path: Path) -> None:
    data = b"\x80\x02" + b"]" * 10000 + b"a" * 9999 + b"."
    assert scan_bytes(tmp_path, data).verdict is Verdict.SAFE
    nested = b"\x80\x02" + b"(" * 200_000 + b"."
    assert scan_bytes(tmp_path, io.BytesIO(nested).getvalue()).verdict is Verdict.UNKNOWN


def test_every_pickletools_opcode_is_handled(tmp_path: Path) -> None:
    """The machine knows every opcode pickletools documents (protocols 0-5)."""
    from securenb.scan.context import Ctx, FileState
    from securenb.scan.options import ScanOptions
    from securenb.scan.pickle_analysis import PickleMachine
    from securenb.scan.source import Source

    machine = PickleMachine(
        Source(io.BytesIO(b".")), 0, Ctx(FileState("x", ScanOptions(), Allowlist()))
    )
    table = machine._opcode_table()
    assert {op.code.encode("latin-1")[0] for op in pickletools.opcodes} <= set(table)
