"""The generated corpus: every malicious sample UNSAFE or UNKNOWN, every benign one SAFE."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scan_corpus.loader import generator

from securenb.scan import Verdict, scan_path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, generator().build(root)


def test_corpus_size_and_one_technique_each(corpus: tuple[Path, list[Any]]) -> None:
    root, samples = corpus
    kinds = Counter(s.expect for s in samples)
    assert kinds["malicious"] >= 40 and kinds["benign"] >= 15
    techniques = [s.technique for s in samples if s.expect == "malicious"]
    assert len(set(techniques)) == len(techniques)
    assert len({s.id for s in samples}) == len(samples)
    manifest = json.loads((root / "manifest.json").read_text())
    assert len(manifest) == len(samples)


def test_every_malicious_sample_is_caught(corpus: tuple[Path, list[Any]]) -> None:
    root, samples = corpus
    missed = {
        s.id: s.technique
        for s in samples
        if s.expect == "malicious" and scan_path(root / s.path).verdict is Verdict.SAFE
    }
    assert not missed


def test_every_benign_sample_is_safe(corpus: tuple[Path, list[Any]]) -> None:
    root, samples = corpus
    flagged = {}
    for s in samples:
        if s.expect == "benign":
            report = scan_path(root / s.path)
            if report.verdict is not Verdict.SAFE:
                flagged[s.id] = [(f.rule, f.message) for f in report.all_findings()]
    assert not flagged
