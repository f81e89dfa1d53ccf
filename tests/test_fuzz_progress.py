"""What `daxfuzz fuzz` shows while it runs is true: execs counted before every
reduction, atheris execs and ops from libFuzzer and the harness, and reductions
bounded past the budget (the finding saved as far as it got)."""

from __future__ import annotations

import io

from daxfuzz.campaign import libfuzzer as L
from daxfuzz.campaign import workers as W
from daxfuzz.campaign.progress import Status
from daxfuzz.core.emit import save_finding
from daxfuzz.core.reduce import UNREDUCED, reduce
from daxfuzz.vocab.geometry import DEFAULT
from daxfuzz.vocab.trace import parse_trace

BROKEN = "test-broken-unmap-ref"
RAW = """target: test-broken-unmap-ref
expect: divergence munmap:refcount

mmap mm=0 vma=0 ino=0 huge=0
fault mm=0 vma=0 pgoff=0 write=1
fault mm=0 vma=0 pgoff=1
msync mm=0 vma=0
munmap mm=0 vma=0
"""


class ListQueue:
    def __init__(self) -> None:
        self.msgs: list[W.Message] = []

    def put(self, msg: W.Message) -> None:
        self.msgs.append(msg)


def test_random_worker_reports_execs_before_it_reduces(tmp_path):
    q = ListQueue()
    W.random_worker(q, W.Job(BROKEN, DEFAULT, 1.0, 1, None, False, set(), str(tmp_path)))
    kinds = [type(m) for m in q.msgs]
    assert W.Found in kinds and kinds[-1] is W.Done
    first = kinds.index(W.Found)
    # every execs count of the inputs that found it is on the queue before the finding
    assert sum(m.execs for m in q.msgs[:first] if isinstance(m, W.Progress)) > 0
    before = q.msgs[first - 1]
    assert isinstance(before, W.Reducing) and before.left >= 1
    assert W.Reducing(before.worker, 0) in q.msgs[first:]


def test_status_line_counts_worker_execs_and_says_when_reducing():
    st = Status("random", BROKEN, 10.0)
    disp = type("Disp", (), {"say": lambda self, msg: None})()
    seen: set[str] = set()
    done = [W.fold(msg, st, disp, seen) for msg in [
        W.Progress(11, 256, 4000, 7, {"fault": 3}), W.Reducing(11, 2),
        W.Progress(11, 100, 900, 9, {"fault": 5}), W.Done(11)]]
    assert done == [False, False, False, True]
    assert st.execs == 356 and st.steps == 4900 and st.cov == 9
    line = st.line()
    assert "execs 356" in line and "reducing 2" in line
    W.fold(W.Reducing(11, 0), st, disp, seen)
    assert "reducing" not in st.line()


def test_libfuzzer_execs_of_a_slice_that_ends_on_a_crash():
    # a crash before the first status line: only the final stats give the execs
    err = ("INFO: Seed: 1\n#2\tINITED cov: 30 ft: 30 corp: 1/1b exec/s: 0 rss: 40Mb\n"
           "==1== ERROR: libFuzzer: fuzz target exited\n"
           "stat::number_of_executed_units: 68\nstat::average_exec_per_sec:     0\n")
    st = Status("atheris", BROKEN, 10.0)
    L.read_libfuzzer(type("P", (), {"stderr": io.StringIO(err)})(), st, [], 100)
    assert st.execs == 168 and st.cov == 30


def test_atheris_ops_per_input_from_the_harness_stats(tmp_path):
    p = tmp_path / "stats"
    p.write_text("512 7680 1.0 100 2.0\n")
    assert L.ops_per_input(str(p), 32) == 15.0
    assert L.ops_per_input(str(tmp_path / "none"), 32) == 32.0


def test_reduction_stopped_by_its_deadline_keeps_a_failing_trace():
    t = parse_trace(RAW)
    fails = lambda ops: any(op.name == "munmap" for op in ops)  # noqa: E731
    stats: dict = {}
    out = reduce(list(t.ops), fails, DEFAULT, stats=stats, deadline=0.0)
    assert out == list(t.ops) and fails(out) and stats["complete"] == 0
    stats = {}
    assert len(reduce(list(t.ops), fails, DEFAULT, stats=stats)) == 1
    assert stats["complete"] == 1


def test_finding_past_the_reduction_limit_is_saved_unreduced(tmp_path):
    raw = parse_trace(RAW)
    saved = save_finding(str(tmp_path), raw, engine="unit", deadline=0.0)
    assert saved["reduced"] is False and saved["ops"] == 5
    text = open(saved["trace_path"]).read()
    assert UNREDUCED in text and "expect: divergence munmap:refcount" in text
    again = save_finding(str(tmp_path), raw, engine="unit")  # no limit: reduced, replaces it
    assert again["reduced"] is True and again["ops"] < 5
    assert UNREDUCED not in open(again["trace_path"]).read()


def test_reduce_deadline_is_proportional_to_the_budget():
    assert W.reduce_deadline(100.0, 8 * 3600) == 100.0 + 2 * 3600
    assert W.reduce_deadline(100.0, 10) == 100.0 + W.REDUCE_GRACE_MIN


def test_the_summary_names_the_kernel_an_alias_stands_for():
    from daxfuzz.campaign.progress import shown_target

    assert shown_target("mainline") == "mainline (7.2)"
    assert shown_target("7.2") == "7.2" and shown_target("zoo-get-no-ref") == "zoo-get-no-ref"
