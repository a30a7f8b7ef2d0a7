"""A secret given to a sandbox, split across its outputs, never comes back whole.

Redaction works over everything the sandbox emits as one text: a value begun in one
output (a stream, a display, an update of one) and finished in the next is redacted,
whatever the kinds of the two. Real bwrap: the cell writes the pieces as separate
messages, as an attacker would.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from securenb.core.policy import IsolationPolicy
from securenb.isolation.detect import check_bwrap
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import Reply, SubKernel

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

SECRET = "tok-0f5b2a1c9d8e7f60"  # a test-only value
MARK = "[REDACTED:TOKEN]"

PRELUDE = """
import os, sys, time
from IPython.display import clear_output, display, update_display
t = os.environ["TOKEN"]
a, b, c = t[:7], t[7:13], t[13:]
def out(text, stream=sys.stdout):
    stream.write(text)
    stream.flush()
    time.sleep(0.2)  # each piece its own message
def show(data, **kw):
    display(data, raw=True, **kw)
    time.sleep(0.2)
"""

CASES = {
    "stdout, then a display": """
        out("log " + a + b)
        show({"text/plain": c + " done"})
    """,
    "a display, then stdout": """
        show({"text/plain": "shown " + a + b})
        out(c + " done\\n")
    """,
    "a display, then stderr": """
        show({"text/plain": "shown " + a})
        out(b + c + "\\n", sys.stderr)
    """,
    "two displays": """
        show({"text/plain": "first " + a + b})
        show({"text/plain": c + " second"})
    """,
    "a display, then its update": """
        show({"text/plain": "v1 " + a}, display_id="d")
        update_display({"text/plain": b + c}, display_id="d", raw=True)
        time.sleep(0.2)
    """,
    "stdout, then the HTML of a display": """
        out("x" + a)
        show({"text/html": b + c + "<b>!</b>", "text/plain": "plain"})
    """,
    "stdout, a display, stdout (three pieces)": """
        out("x " + a)
        show({"text/plain": b})
        out(c + " y\\n")
    """,
    "a display, stdout, a display (three pieces)": """
        show({"text/plain": "x " + a})
        out(b)
        show({"text/plain": c + " y"})
    """,
    "stdout, clear_output, stdout": """
        out("x " + a + b)
        clear_output()
        out(c + " y\\n")
    """,
    "HTML whose sanitising would join the pieces": """
        show({"text/html": "x " + a + b + "<script>bad()</script>" + c + " y"})
    """,
}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubKernel]:
    work = tmp_path_factory.mktemp("redaction")
    kernel = SubKernel(build_spec(IsolationPolicy(), workdir=work, backend="bwrap"),
                       {"TOKEN": SECRET})
    kernel.start()
    yield kernel
    kernel.shutdown(now=True)


def _run(kernel: SubKernel, code: str) -> tuple[Reply, list[tuple[str, dict[str, Any]]]]:
    shown: list[tuple[str, dict[str, Any]]] = []
    reply, _, _ = kernel.run(code, lambda kind, content: shown.append((kind, content)),
                             Redactor({"TOKEN": SECRET}), 60,
                             prelude=textwrap.dedent(PRELUDE))
    return reply, shown


@pytest.mark.parametrize("case", list(CASES))
def test_a_secret_split_across_outputs_is_redacted(kernel: SubKernel, case: str) -> None:
    reply, shown = _run(kernel, textwrap.dedent(CASES[case]))
    everything = json.dumps([shown, reply.evalue, reply.traceback])
    for size in (6, 7):  # no piece that another piece would complete
        pieces = [SECRET[i:i + size] for i in range(len(SECRET) - size + 1)]
        assert not any(p in everything for p in pieces), everything
    assert MARK in everything, everything


def test_output_that_only_looks_like_the_start_of_a_secret_still_comes_out(
        kernel: SubKernel) -> None:
    """A display ending in the first characters of a secret is held only until the next
    output shows it does not go on; then both come out unchanged, in order."""
    reply, shown = _run(kernel, textwrap.dedent("""
        show({"text/plain": "ends with " + t[:5]})
        out("something else\\n")
        show({"text/plain": "last " + t[:3]})
    """))
    assert reply.status == "ok", reply
    texts = [c["data"]["text/plain"] if k != "stream" else c["text"] for k, c in shown]
    assert texts == [f"ends with {SECRET[:5]}", "something else\n", f"last {SECRET[:3]}"]


def test_names_the_filter_sets_never_hold_a_display_back() -> None:
    """A secret that begins like the end of "text/plain" ("n") holds no display back."""
    redact = Redactor({"NPM": "npm_0f5b2a1c9d"})
    content = {"data": {"text/plain": "hi"}, "metadata": {},
               "transient": {"display_id": "securenb-sandbox:x"}}
    assert redact.display("display_data", content) == [("display_data", content)]
    assert redact.flush() == []


def test_a_display_of_many_strings_costs_linear_time() -> None:
    """Only a display's MIME texts are checked against held output, not every string of
    a JSON value: a hostile display of many strings must not stall the notebook."""
    redact = Redactor({"TOKEN": SECRET})
    many = {"data": {"application/json": {"k": [SECRET[:3]] * 200_000},
                     "text/plain": "x " + SECRET[:5]}, "metadata": {}}
    assert redact.display("display_data", many) == []  # held: its text may go on
    shown = redact.display("display_data", {"data": {
        "application/json": {"k": [SECRET[3:]] * 200_000}, "text/plain": SECRET[5:] + " y"},
        "metadata": {}})
    assert [c["data"]["text/plain"] for _, c in shown] == [f"x {MARK}", " y"]
