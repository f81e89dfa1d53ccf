"""Trace -> guest program translation and guest-console parsing (no QEMU)."""

from __future__ import annotations

import glob
import os

import pytest

from daxfuzz.errors import InputError
from daxfuzz.guest.apt import parse_mirror, resolve_name
from daxfuzz.guest.build import FS_RMAPBT_LINE, Cpio
from daxfuzz.guest.qemu import ConsoleWatch, run_programs, taint_line
from daxfuzz.guest.results import (
    ConsoleMender,
    StepResult,
    compare,
    console_lines,
    oracle_outcome,
    parse_console,
)
from daxfuzz.guest.translate import (
    PMD,
    off,
    reflink_segments,
    span,
    translate,
    unexpressible,
)
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import Reflink, parse_op
from daxfuzz.vocab.trace import Trace, parse_trace, read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G = Geometry()  # pmd_order=2


def prog_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_offsets_map_model_groups_to_2mib():
    assert [off(G, i) for i in range(6)] == [0, 4096, 8192, 12288, PMD, PMD + 4096]
    assert span(G, 0, 4) == (0, PMD)  # a whole model PMD is a whole 2 MiB extent
    assert span(G, 1, 3) == (4096, PMD - 4096)  # part of one is not
    g9 = Geometry(pages=1024, pmd_order=9, max_file_pages=1024, file_pages=512)
    assert off(g9, 513) == 513 * 4096  # order 9: identity


def test_pin_blocks_truncate_program():
    tr = read_trace(os.path.join(ROOT, "corpus/pin-blocks-truncate.trace"))
    p = translate(tr)
    assert p.steps == 5 and not p.skipped
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "mmap 0 0 0 2097152 3 1 0 0 0",
        "step 2", "gup 0 0 8192 1 1",
        "step 3", "truncate 0 0",
        "step 4", "release 0 1",
        "step 5", "truncate 0 0",
    ]


def test_alignment_slots_and_modes():
    tr = parse_trace("geometry: mms=2 vmas=3\n"
                     "mmap mm=1 vma=2 ino=1 pgoff=4 pages=2 aligned=0 write=0 shared=0\n"
                     "fault mm=1 vma=2 pgoff=5 write=1\n"
                     "pin mm=0 vma=0 pgoff=0 h=1 longterm=1\n"
                     "get mm=0 vma=1 pgoff=3 h=2\nput h=2\nmsync mm=1 vma=2\n"
                     "munmap mm=1 vma=2\npunch ino=1 pgoff=2 pages=3\nunmount\nmount\n")
    lines = prog_lines(translate(tr).text)
    assert "mmap 5 1 2097152 8192 1 0 1 4096 0" in lines  # slot 1*3+2, misaligned by 4K
    assert "touch 5 2101248 1" in lines
    assert "gupl 0 0" in lines
    assert "gup 2 1 12288 0 2" in lines and "release 2 2" in lines
    assert "msync 5" in lines and "munmap 5" in lines
    assert "punch 1 8192 2093056" in lines  # pages 2..4 -> [8K, 2M+4K)
    assert lines[-3:] == ["umount", "step 10", "mount"]


def test_write_is_pwrite_of_the_real_span():
    # default geometry: pmd_order=2 (model group = 4 pages = one 2 MiB extent), max 16
    tr = parse_trace("write ino=0 pgoff=0 pages=1\n"
                     "write ino=1 pgoff=1 pages=1\n"
                     "write ino=0 pgoff=3 pages=1\n"   # last of a group: rest of its 2 MiB
                     "write ino=0 pgoff=4 pages=4\n"   # a whole group: a whole extent
                     "write ino=1 pgoff=15 pages=1\n"  # ends exactly at max_file_pages
                     "write ino=1 pgoff=15 pages=2\n"  # past it: the model's EINVAL
                     "unmount\n"
                     "write ino=0 pgoff=0 pages=1\n")  # ENOENT is the helper's open()
    p = translate(tr)
    assert p.steps == 8 and not p.skipped
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "pwrite 0 0 4096",
        "step 2", "pwrite 1 4096 4096",
        "step 3", "pwrite 0 12288 2084864",     # [12K, 2M)
        "step 4", "pwrite 0 2097152 2097152",   # [2M, 4M)
        "step 5", "pwrite 1 6303744 2084864",   # [3*2M + 12K, 8M)
        "step 6", "pwrite 1 -1 4096",
        "step 7", "umount",
        "step 8", "pwrite 0 0 4096",
    ]


def test_write_with_other_pmd_orders():
    # pmd_order=3: groups of 8 model pages; page 6 is [24K, 28K), page 9 starts at 2M+4K
    tr = parse_trace("geometry: pages=32 pmd_order=3 max_file_pages=16\n"
                     "write ino=1 pgoff=6 pages=3\n"
                     "write ino=0 pgoff=8 pages=8\n"
                     "write ino=0 pgoff=9 pages=8\n")
    assert prog_lines(translate(tr).text)[1:] == [
        "step 1", "pwrite 1 24576 2076672",     # [24K, 2M+4K)
        "step 2", "pwrite 0 2097152 2097152",   # group 1, the whole extent
        "step 3", "pwrite 0 -1 4096",           # 9+8 > 16: EINVAL after open
    ]
    # pmd_order=9: the identity
    tr = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512\n"
                     "write ino=0 pgoff=513 pages=2\n"
                     "write ino=0 pgoff=1023 pages=2\n")
    assert prog_lines(translate(tr).text) == [
        "init 2 2097152 2097152", "step 1", "pwrite 0 2101248 8192", "step 2", "pwrite 0 -1 4096"]


def test_memory_failure_holder_path_runs_on_an_rmapbt_filesystem():
    # holder=1: the program asks /init for a filesystem with the reverse map and daxop's
    # init checks it got one; each mm is a process of its own (the fork comes first)
    tr = read_trace(os.path.join(ROOT, "corpus/memory-failure-shared-holder-rmap.trace"))
    p = translate(tr)
    assert not p.skipped
    assert p.text.splitlines()[1:3] == [FS_RMAPBT_LINE, "init 2 4194304 2097152 1"]
    assert "step 8\nhwpoison 2 0 1\nstep 9\nhwpoison 0 0 0\n" in p.text
    # the filesystem decides the path for a whole program: the first memory_failure's
    # holder wins, a step of the other kind is reported, not dropped
    mixed = Trace(ops=(*tr.ops, parse_op("memory_failure pfn=0 mm=0 holder=0")),
                  target="7.2", geometry=tr.geometry)
    assert list(unexpressible(mixed)) == [10]
    assert "holder=0 not expressible" in unexpressible(mixed)[10]
    assert "rmapbt=1" in unexpressible(mixed)[10]
    generic = Trace(ops=(parse_op("memory_failure pfn=0 mm=0 holder=0"), *tr.ops),
                    target="7.2", geometry=tr.geometry)
    p = translate(generic)
    assert FS_RMAPBT_LINE not in p.text and "init 2 4194304 2097152\n" in p.text
    assert sorted(p.skipped) == [1, 9, 10]  # 1: mm 0 maps nothing yet; 9, 10: holder=1
    # the old corpus trace: both mms in the director, so collect_procs_fsdax() would see
    # the other's VMA of an owner file: not expressible, with that reason
    old = translate(read_trace(os.path.join(ROOT, "corpus/memory-failure-shared-holder.trace")))
    assert sorted(old.skipped) == [7, 8]
    assert all("same guest process" in w for w in old.skipped.values())


def test_memory_failure_is_madv_hwpoison_where_current_maps_the_pfn():
    # memory-failure-unshared-generic: the PMD write fault maps pfn 0..3 at file pages
    # 0..3 of slot 0 (pmd_order=2); pfn 2 is file page 2: off(2) = 2 * 4 KiB.  mm 1 maps
    # nothing: not expressible.
    tr = read_trace(os.path.join(ROOT, "corpus/memory-failure-unshared-generic.trace"))
    p = translate(tr)
    assert "step 3\nhwpoison 0 8192 0\n" in p.text
    assert list(p.skipped) == [4] and "mm 1 does not map it" in p.skipped[4]
    # two model mms the director plays, both mapping file 0 at the page's index
    g = Geometry(pages=8, pmd_order=1, inodes=2, mms=2, vmas=2, handles=2, file_pages=4)
    two = Trace(ops=tuple(parse_op(x) for x in (
        "mmap mm=0 vma=0 ino=0 pages=4 huge=0", "mmap mm=1 vma=1 ino=0 pages=4 huge=0",
        "fault mm=0 vma=0 pgoff=1 write=1", "memory_failure pfn=1 mm=0 holder=0")),
        target="7.2", geometry=g)
    assert "same guest process" in unexpressible(two)[4]
    # after a fork into mm 1, mm 1 is a process of its own: expressible
    forked = Trace(ops=tuple(parse_op(x) for x in (
        "mmap mm=0 vma=0 ino=0 pages=4 huge=0", "fault mm=0 vma=0 pgoff=1 write=1",
        "fork mm=0 child=1", "fault mm=1 vma=0 pgoff=1", "memory_failure pfn=1 mm=1 holder=0")),
        target="7.2", geometry=g)
    assert unexpressible(forked) == {}
    assert "hwpoison 2 4096 1" in translate(forked).text
    # a read fault of a hole maps the huge zero folio (pfn HUGE_ZERO = -2): its page 3 is
    # no device pfn 1, and MADV_HWPOISON there poisoned the guest's huge zero page (kernel
    # fuzz seed 3001, before the fix: "Memory failure: 0x6402: unhandlable page")
    zero = Trace(ops=tuple(parse_op(x) for x in (
        "mmap mm=1 vma=0 ino=1 pages=8 write=0 sync=1", "fault mm=1 vma=0 pgoff=3",
        "memory_failure pfn=1 mm=1 holder=0")), target="7.2", geometry=G)
    assert "does not map it" in unexpressible(zero)[3]


def test_reflink_segments():
    assert reflink_segments(G, Reflink(0, 1, 0, 4, 4)) == [(0, PMD, PMD)]
    # different phases: 4 KiB per model page, the last page first
    assert reflink_segments(G, Reflink(0, 1, 1, 2, 2)) == [(8192, 12288, 4096),
                                                          (4096, 8192, 4096)]


def test_reflink_segments_past_eof_first():
    # docs/triage/kernel-fuzz-read-sigbus-after-killed-punch: src_pgoff 2, 10 pages at
    # dst_pgoff 0 (phases 2 and 0).  The first call is model page 11 -> 9: real offsets
    # off(11) = 2 * 2 MiB + 3 * 4 KiB and off(9) = 2 * 2 MiB + 4 KiB, past the 4 MiB
    # source (8 pages): EINVAL before page 2's block is shared.
    segs = reflink_segments(G, Reflink(0, 1, 2, 0, 10))
    assert segs[0] == (2 * PMD + 3 * 4096, 2 * PMD + 4096, 4096)
    assert segs[-1] == (8192, 0, 4096)
    assert len(segs) == 10


def test_reflink_segments_overlap_in_one_file():
    # pages 1..3 onto 2..4 of one file, phases 1 and 2: one call of off(1) = 4 KiB to
    # off(2) = 8 KiB, 8 KiB long, which overlaps itself (the kernel's EINVAL)
    assert reflink_segments(G, Reflink(0, 0, 1, 2, 3)) == [(4096, 8192, 8192)]
    # not overlapping (pages 0..1 onto 5..6): per page as between two files
    assert reflink_segments(G, Reflink(0, 0, 0, 5, 2)) == [(4096, PMD + 8192, 4096),
                                                          (0, PMD + 4096, 4096)]


def test_every_corpus_trace_translates():
    for path in sorted(glob.glob(os.path.join(ROOT, "corpus/*.trace"))):
        tr = read_trace(path)
        p = translate(tr, path)
        assert p.text.count("\nstep ") == len(tr.ops), path
        assert set(p.skipped) <= {i for i, op in enumerate(tr.ops, 1)
                                  if op.name == "memory_failure"}, path


def test_geometry_too_big_is_bad_input():
    tr = parse_trace("geometry: mms=16 vmas=8\nmunmap mm=0 vma=0\n")
    with pytest.raises(InputError):
        translate(tr)


CONSOLE = """\
SeaBIOS \x1b[2J
@@B kernel 7.2.13+deb14-amd64
@@B ready pmem=2060288 dax=1
@@T begin 000-x
@@I dax=1 files=2 size=4194304
@@R step=1 status=ok ms=2.0 errno=0 note=-
@@R step=2 status=ok ms=9.1 errno=0 note=vmsplice
[   12.5] WARNING: CPU: 0 PID: 99 at fs/dax.c:123 dax_folio_put+0x1/0x2
@@K step=2 WARNING: CPU: 0 PID: 99 at fs/dax.c:123 dax_folio_put+0x1/0x2
@@R step=3 status=blocked ms=2004.0 errno=0 note=state=S,wchan=dax_break_layout_left
@@R step=4 status=err ms=0.0 errno=EBUSY note=-
@@R step=5 status=skip ms=0.0 errno=0 note=memory_failure_not_expressible
@@P step=3 done_ms=2100.0 code=0 after_step=4
@@E done
@@T exit 000-x 0
@@T end 000-x
@@T begin 001-y
@@R step=1 status=sigbus ms=1.0 errno=0 note=-
"""


def test_parse_console_and_compare():
    boot, traces = parse_console(CONSOLE)
    assert boot[0].startswith("kernel 7.2.13")
    gt = traces["000-x"]
    assert gt.finished and not gt.error
    assert [gt.steps[i].outcome() for i in range(1, 6)] == ["ok", "ok", "blocked", "EBUSY",
                                                             "n/a"]
    assert gt.kernel[0][0] == 2 and "dax_folio_put" in gt.kernel[0][1]
    assert len(gt.kernel) == 2  # the console copy is kept too, marked
    assert gt.pending == ["step=3 done_ms=2100.0 code=0 after_step=4"]
    rows = compare(["mmap", "pin", "truncate", "unmount", "memory_failure", "munmap"],
                   ["ok", "ok", "blocked pfn=2", "ok", "ok killed=1", "ok"], gt)
    assert [r.verdict for r in rows] == ["agree", "agree", "agree", "DIFFER", "n/a", "missing"]
    y = traces["001-y"]
    assert not y.finished and y.steps[1].outcome() == "SIGBUS"


# printk writes to the UART while the tty drains the helper's line: the kernel's line
# lands inside one of ours (seen in CI: step 7's @@R lost, "no result (guest stopped)")
CUT_CONSOLE = """\
@@T begin 000-mf\r
\x1b[0m@@R step=6 status=ok ms=0.8 errno=0 note=-\r
@@R step=7 status=e[    9.486393] Memory failure: 0x40208: recovery action for dax page: Failed\r
rr ms=4.9 errno=EBUSY note=madvise_hwpoison\r
@@K step=7 Memory failure: 0x40208: recovery action for dax page: Failed\r
@[    9.489307] Memory failure: 0x40208: recovery action for dax page: Failed\r
[    9.489400] kernel BUG at fs/inode.c:777!\r
@R step=8 status=err ms=1.0 errno=EBUSY note=madvise_hwpoison\r
@@T e[    9.5] BUG: Bad page state in process daxop\r
nd 000-mf\r
"""


def test_a_printk_line_inside_one_of_ours_is_cut_out():
    lines = console_lines(CUT_CONSOLE)
    assert lines == [
        "@@T begin 000-mf",
        "@@R step=6 status=ok ms=0.8 errno=0 note=-",
        "[    9.486393] Memory failure: 0x40208: recovery action for dax page: Failed",
        "@@R step=7 status=err ms=4.9 errno=EBUSY note=madvise_hwpoison",
        "@@K step=7 Memory failure: 0x40208: recovery action for dax page: Failed",
        "[    9.489307] Memory failure: 0x40208: recovery action for dax page: Failed",
        "[    9.489400] kernel BUG at fs/inode.c:777!",
        "@@R step=8 status=err ms=1.0 errno=EBUSY note=madvise_hwpoison",
        "[    9.5] BUG: Bad page state in process daxop",
        "@@T end 000-mf"]
    _boot, traces = parse_console(CUT_CONSOLE)
    gt = traces["000-mf"]
    assert gt.finished
    assert [gt.steps[i].outcome() for i in (6, 7, 8)] == ["ok", "EBUSY", "EBUSY"]
    # the console's own kernel lines go to the step reported last before them
    assert (7, "kernel BUG at fs/inode.c:777!  [console]") in gt.kernel
    assert (8, "BUG: Bad page state in process daxop  [console]") in gt.kernel
    # the watch sees the mended lines too: the BUG taints, the cut @@T end ends the boot
    w = ConsoleWatch()
    m = ConsoleMender()
    evs = [w.feed(x) for raw in CUT_CONSOLE.splitlines() for x in m.feed(raw)]
    assert evs[0] == "begin" and evs[-1] == "stop"
    assert "kernel BUG at fs/inode.c:777" in w.why


# at loglevel=4 a WARNING reaches the console only as the helper's @@K copy of it
WARN_CONSOLE = """\
[    0.512] ACPI: something noisy at boot
@@B kernel 7.2.13+deb14-amd64
@@B ready pmem=2097152 dax=1
@@T begin 000-a
@@I dax=1 files=2 size=4194304
@@R step=1 status=ok ms=1.6 errno=0 note=-
@@K step=1 WARNING: fs/dax.c:452 at dax_disassociate_entry.isra.0+0x86/0xb0, CPU#1: daxop/137
@@K step=1 Call Trace:
@@R step=2 status=ok ms=2.0 errno=0 note=-
@@T exit 000-a 0
@@T end 000-a
@@T begin 001-b
@@R step=1 status=ok ms=1.0 errno=0 note=-
"""


def _events(text: str, last=()) -> tuple[ConsoleWatch, list[tuple[str, str]]]:
    w = ConsoleWatch(last)
    evs = []
    for line in text.splitlines():
        ev = w.feed(line)
        if ev:
            evs.append((ev, line))
        if ev == "stop":
            break
    return w, evs


def test_taint_line_reads_the_helpers_kernel_lines():
    assert taint_line("@@K step=5 WARNING: fs/dax.c:452 at x") == "WARNING: fs/dax.c:452 at x"
    assert taint_line("\r@@K step=2 BUG: Bad page map in process daxop") is not None
    assert taint_line("[   9.1] kernel BUG at fs/inode.c:777!") is not None
    assert taint_line("[   9.2] Oops: invalid opcode: 0000 [#1] SMP NOPTI") is not None
    assert taint_line("[   9.1] BUG: Bad page state@@R step=3 status=ok ms=1 errno=0 note=-")
    for clean in ("@@K step=3 Memory failure: 0x40000: recovery action for dax page",
                  "@@R step=1 status=err ms=0.0 errno=EBUSY note=WARNING:_not_a_log",
                  "@@T begin 000-WARNING-trace", "[   1.0] random: crng init done", ""):
        assert taint_line(clean) is None, clean


def test_a_warning_seen_only_through_at_at_k_ends_the_boot():
    w, evs = _events(WARN_CONSOLE)
    assert [e for e, _ in evs] == ["ready", "begin", "stop"]
    assert evs[-1][1] == "@@T end 000-a"  # the tainting program finishes, then the guest stops
    assert w.stop and w.taint.startswith("WARNING: fs/dax.c:452")
    # a clean program does not stop the boot; boot noise before any program does not count
    clean = "\n".join(ln for ln in WARN_CONSOLE.splitlines() if not ln.startswith("@@K"))
    clean = "[    0.3] WARNING: CPU: 0 PID: 1 at arch/x86/boot_noise.c:1\n" + clean
    w, evs = _events(clean)
    assert not w.stop and [e for e, _ in evs] == ["ready", "begin", "end", "begin"]


def test_a_program_the_port_says_leaks_pages_ends_the_boot():
    # clean console: without `last` both programs run in one boot; with 000-a in it the
    # guest stops at its end (the rest in a fresh guest), saying why
    clean = "\n".join(ln for ln in WARN_CONSOLE.splitlines() if not ln.startswith("@@K"))
    w, evs = _events(clean, last={"000-a"})
    assert [e for e, _ in evs] == ["ready", "begin", "stop"]
    assert evs[-1][1] == "@@T end 000-a" and not w.taint
    assert w.why == "000-a leaves struct pages behind (the port)"
    w, evs = _events(clean, last={"001-b"})
    assert not w.stop


def test_an_oops_between_programs_ends_the_boot_at_once():
    text = WARN_CONSOLE.replace("@@K step=1 WARNING", "@@K step=1 note").replace(
        "@@T end 000-a\n", "@@T end 000-a\n[   12.0] BUG: unable to handle page fault\n")
    w, evs = _events(text)
    assert [e for e, _ in evs] == ["ready", "begin", "end", "stop"]
    assert "unable to handle" in evs[-1][1] and w.current is None


def _fake_boots(consoles: list[str]):
    """A `run_programs` boot stand-in replaying `consoles` one boot each; the programs
    each boot was given."""
    given: list[list[str]] = []

    def boot(manifest, progs, **kw):
        given.append([n for n, _ in progs])
        text = consoles.pop(0)
        return text, ("<boot>" if text == "" else None), 1.0
    return boot, given


PANIC_AT_BOOT = ("[    1.700918] Oops: int3: 0000 [#1] SMP NOPTI\n"
                 "[    1.700918] Kernel panic - not syncing: Fatal exception in interrupt\n")


def test_a_guest_that_dies_before_its_first_program_is_booted_again():
    # the CI guest once oopsed on an int3 at 1.7 s (TCG, the kernel patching its text):
    # no program ran, so the batch gets a fresh guest instead of "never ran"
    ran = "@@B ready\n@@T begin 000-a\n@@R step=1 status=ok ms=1.0 errno=0 note=-\n" \
          "@@T exit 000-a 0\n@@T end 000-a\n"
    boot, given = _fake_boots([PANIC_AT_BOOT, ran])
    res = run_programs({}, [("000-a", "x")], one_boot=boot)
    assert given == [["000-a"], ["000-a"]] and res.boots == 2 and res.failed_boots == 1
    assert res.traces["000-a"].finished and not res.hung
    assert "Oops: int3" in res.console  # the failed boot's console is kept
    # a guest that never gets a program going stops after boot_retries fresh guests
    boot, given = _fake_boots([PANIC_AT_BOOT, "", PANIC_AT_BOOT, ran])
    res = run_programs({}, [("000-a", "x")], one_boot=boot, boot_retries=2)
    assert len(given) == 3 and res.failed_boots == 3 and "000-a" not in res.traces
    # retries are counted in a row: a boot that ran a program resets them
    two = ran + PANIC_AT_BOOT  # 000-a runs, then the guest dies between programs
    b_ran = ran.replace("000-a", "001-b")
    boot, given = _fake_boots([PANIC_AT_BOOT, two, PANIC_AT_BOOT, b_ran])
    res = run_programs({}, [("000-a", "x"), ("001-b", "y")], one_boot=boot, boot_retries=1)
    assert given == [["000-a", "001-b"], ["000-a", "001-b"], ["001-b"], ["001-b"]]
    assert set(res.traces) == {"000-a", "001-b"} and res.failed_boots == 2


def test_oracle_outcome():
    assert oracle_outcome("blocked pfn=3") == "blocked"
    assert oracle_outcome("ok killed=0,1") == "ok killed=0,1"
    assert StepResult(3, "ok", note="killed=0").outcome() == "ok killed=0"
    assert StepResult(3, "ok", note="off=0_len=4096").outcome() == "ok"
    assert oracle_outcome("EOPNOTSUPP") == "EOPNOTSUPP"


def test_mirror_from_sources():
    deb822 = ("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm "
              "bookworm-updates\nComponents: main\n\nTypes: deb\n"
              "URIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n")
    assert parse_mirror([("x.sources", deb822)]) == "http://mirror.invalid/debian"
    one = "deb http://sec.invalid/x bookworm-security main\n" \
          "deb [arch=amd64] http://m.invalid/debian bookworm main\n"
    assert parse_mirror([("sources.list", one)]) == "http://m.invalid/debian"
    assert parse_mirror([("sources.list", "# nothing\n")]) is None


def test_resolve_package_name():
    names = ["linux-binary-7.2.13+deb14-amd64", "linux-binary-7.2.14+deb14-amd64",
             "linux-binary-7.2.14+deb14-cloud-amd64"]
    assert resolve_name("linux-binary-7.2.13+deb14-amd64", names, "binary") == names[0]
    assert resolve_name("linux-binary-7.2.99+deb14-amd64", names, "binary") == names[1]


def test_cpio_newc_layout():
    c = Cpio()
    c.file("progs/a.prog", b"step 1\n")
    data = c.finish()
    assert data.startswith(b"070701") and len(data) % 512 == 0
    assert b"progs/a.prog\0" in data and b"TRAILER!!!\0" in data


def test_dontneed_is_madvise_of_the_real_span():
    # default geometry: pmd_order=2, vmas=2 (slot = mm*2 + vma); the helper clips to the VMA
    tr = parse_trace("mmap mm=1 vma=1 ino=0 pages=4\n"
                     "dontneed mm=1 vma=1 pgoff=1 pages=1\n"
                     "dontneed mm=1 vma=1 pgoff=3 pages=1\n"  # last of a group: rest of 2M
                     "dontneed mm=0 vma=1 pgoff=0 pages=4\n"  # a whole group, empty slot
                     "dontneed mm=0 vma=0 pgoff=2 pages=5\n"  # across a group boundary
                     "dontneed mm=0 vma=0 pgoff=12 pages=4\n"
                     "dontneed mm=0 vma=0\n")
    p = translate(tr)
    assert p.steps == 7 and not p.skipped
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "mmap 3 0 0 2097152 3 1 1 0 0",
        "step 2", "madv 3 4096 4096",
        "step 3", "madv 3 12288 2084864",     # [12K, 2M)
        "step 4", "madv 1 0 2097152",         # [0, 2M)
        "step 5", "madv 0 8192 2101248",      # [8K, 2M + 12K)
        "step 6", "madv 0 6291456 2097152",   # [6M, 8M)
        "step 7", "madv 0 0 4096",
    ]


def test_dontneed_with_pmd_order_9_is_the_identity():
    tr = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512\n"
                     "dontneed mm=0 vma=1 pgoff=1 pages=511\n"
                     "dontneed mm=1 vma=0 pgoff=512 pages=512\n"
                     "dontneed mm=1 vma=1 pgoff=1000 pages=3\n")
    assert prog_lines(translate(tr).text) == [
        "init 2 2097152 2097152",
        "step 1", "madv 1 4096 2093056",      # [4K, 2M): all but the first page
        "step 2", "madv 2 2097152 2097152",   # [2M, 4M)
        "step 3", "madv 3 4096000 12288",
    ]


def test_fork_names_both_processes_and_the_slot_count():
    # mms=3 vmas=2: mm 1's slots are 2..3, mm 2's 4..5; fork carries the slot count so
    # the helper knows which slots the child process plays
    tr = parse_trace("geometry: mms=3 vmas=2\n"
                     "mmap mm=1 vma=1 ino=0 pages=4 shared=0 huge=0\n"
                     "fault mm=1 vma=1 pgoff=1 write=1\n"
                     "fork mm=1 child=2\n"
                     "get mm=2 vma=1 pgoff=1 h=0\n"
                     "fork mm=2 child=0\n"       # a child forks in its turn
                     "fork mm=1 child=1\n"       # into itself: the model's EINVAL
                     "put h=0\n"
                     "munmap mm=2 vma=1\n")
    p = translate(tr)
    assert p.steps == 8 and not p.skipped
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "mmap 3 0 0 2097152 3 0 0 0 0",
        "step 2", "touch 3 4096 1",
        "step 3", "fork 1 2 2",
        "step 4", "gup 0 5 4096 0 2",
        "step 5", "fork 2 0 2",
        "step 6", "errno EINVAL",
        "step 7", "release 0 2",
        "step 8", "munmap 5",
    ]


def test_fork_errors_program():
    # EINVAL is the translator's (child == mm); EBUSY, a child that maps something, is the
    # helper's, from its slot table
    tr = parse_trace("fork mm=0 child=0\n"
                     "mmap mm=1 vma=0 ino=0\n"
                     "mmap mm=0 vma=0 ino=0\n"
                     "fork mm=0 child=1\n"
                     "munmap mm=0 vma=0\n"
                     "munmap mm=1 vma=0\n")
    assert prog_lines(translate(tr).text) == [
        "init 2 4194304 2097152",
        "step 1", "errno EINVAL",
        "step 2", "mmap 2 0 0 2097152 3 1 1 0 0",
        "step 3", "mmap 0 0 0 2097152 3 1 1 0 0",
        "step 4", "fork 0 1 2",
        "step 5", "munmap 0",
        "step 6", "munmap 2",
    ]


def test_exchange_is_one_call_for_ranges_of_the_same_shape():
    # default geometry: pmd_order=2 (a model group = 4 pages = one 2 MiB extent)
    tr = parse_trace("exchange ino1=0 ino2=1\n"                            # group 0 both
                     "exchange ino1=0 ino2=1 pgoff1=4 pgoff2=8 pages=8\n"  # whole groups
                     "exchange ino1=1 ino2=0 pgoff1=1 pgoff2=5 pages=2\n"  # same phase
                     "exchange ino1=0 ino2=1 pgoff1=3 pgoff2=7 pages=1\n"  # a group's last
                     "exchange ino1=0 ino2=1 pgoff1=0 pgoff2=1 pages=2\n"  # no boundary met
                     "unmount\n"
                     "exchange ino1=0 ino2=1\n")  # ENOENT is the helper's open()
    p = translate(tr)
    assert p.steps == 7 and not p.skipped
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "exchange 0 1 1 0 0 2097152",
        "step 2", "exchange 0 1 1 2097152 4194304 4194304",  # [2M, 6M) <-> [4M, 8M)
        "step 3", "exchange 1 0 1 4096 2101248 8192",
        "step 4", "exchange 0 1 1 12288 2109440 2084864",    # the rest of both 2 MiB
        "step 5", "exchange 0 1 1 0 4096 8192",
        "step 6", "umount",
        "step 7", "exchange 0 1 1 0 0 2097152",
    ]


def test_exchange_of_different_shapes_is_one_call_per_page_last_first():
    tr = parse_trace("exchange ino1=0 ino2=1 pgoff1=0 pgoff2=2 pages=3\n"
                     "exchange ino1=0 ino2=0 pgoff1=0 pgoff2=6 pages=2\n"
                     "exchange ino1=0 ino2=0 pgoff1=0 pgoff2=2 pages=4\n")  # overlapping
    assert prog_lines(translate(tr).text)[1:] == [
        # model pages 2<->4, 1<->3, 0<->2: their first 4 KiB, the furthest first
        "step 1", "exchange 0 1 3 8192 2097152 4096 4096 12288 4096 0 8192 4096",
        "step 2", "exchange 0 0 2 4096 2109440 4096 0 2105344 4096",
        # one file, overlapping: a call that overlaps itself, EINVAL from the kernel
        "step 3", "exchange 0 0 1 0 8192 12288",
    ]
    tr = parse_trace("geometry: max_file_pages=32\n"
                     "exchange ino1=0 ino2=1 pgoff1=0 pgoff2=2 pages=16\n"
                     "exchange ino1=0 ino2=1 pgoff1=0 pgoff2=1 pages=17\n")
    p = translate(tr)
    lines = prog_lines(p.text)
    assert lines[2].startswith("exchange 0 1 16 6303744 8392704 4096 ")
    assert lines[2].endswith(" 4096 12288 4096 0 8192 4096")
    assert lines[4] == "skip exchange of 17 pages of different shapes needs 17 calls (max 16)"
    assert p.skipped == {2: "too many segments"}


def test_exchange_with_pmd_order_9_is_the_identity():
    tr = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512\n"
                     "exchange ino1=0 ino2=1 pgoff1=0 pgoff2=512 pages=512\n"
                     "exchange ino1=0 ino2=1 pgoff1=3 pgoff2=700 pages=5\n"
                     "exchange ino1=1 ino2=1 pgoff1=10 pgoff2=12 pages=4\n")
    assert prog_lines(translate(tr).text) == [
        "init 2 2097152 2097152",
        "step 1", "exchange 0 1 1 0 2097152 2097152",  # a whole 2 MiB extent
        "step 2", "exchange 0 1 1 12288 2867200 20480",
        "step 3", "exchange 1 1 1 40960 49152 16384",   # overlapping: the kernel's EINVAL
    ]


def test_swapext_is_the_xfs_fsr_call_with_every_result_the_kernels():
    tr = parse_trace("swapext ino=0 tmp=1\nswapext ino=1 tmp=1\nunmount\nswapext ino=1 tmp=0\n")
    p = translate(tr)
    assert not p.skipped
    assert prog_lines(p.text) == ["init 2 4194304 2097152", "step 1", "swapext 0 1",
                                  "step 2", "swapext 1 1", "step 3", "umount",
                                  "step 4", "swapext 1 0"]
    g9 = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512\n"
                     "swapext ino=1 tmp=0\n")
    assert prog_lines(translate(g9).text) == ["init 2 2097152 2097152", "step 1", "swapext 1 0"]


def test_the_guest_mkfs_is_sids_with_exchange_range():
    from daxfuzz.guest.build import INIT_SCRIPT, MKFS_CMD, MKFS_WRAPPER, SID_MKFS_PKGS
    assert "-i exchange=1" in MKFS_CMD and "reflink=1,rmapbt=0" in MKFS_CMD
    assert MKFS_CMD in INIT_SCRIPT and "xfsprogs" in SID_MKFS_PKGS
    assert "--library-path /sid/lib /sid/mkfs.xfs" in MKFS_WRAPPER


def test_pin_pages_is_one_vmsplice_of_the_runs_into_one_pipe_per_handle():
    tr = read_trace(os.path.join(ROOT, "corpus/pin-pages-of-a-pmd-folio.trace"))
    p = translate(tr)
    assert not p.skipped
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "mmap 0 0 0 2097152 3 1 1 0 0",
        "step 2", "touch 0 0 1",
        "step 3", "gupv 0 0 1 1 0 4",      # one run: the 4 model pages of one group
        "step 4", "truncate 0 0",
        "step 5", "release 0 1 2",         # pipes 0 and 1
        "step 6", "truncate 0 2097152",
        "step 7", "release 2 1 2",
        "step 8", "munmap 0",
        "step 9", "truncate 0 0",
    ]


def test_pin_pages_runs_break_at_group_boundaries_and_bounds_are_the_models():
    from daxfuzz.guest.translate import pin_runs
    assert pin_runs(G, 0, 4) == [(0, 4)]
    assert pin_runs(G, 2, 5) == [(8192, 2), (PMD, 3)]       # 4 KiB apart only in a group
    assert pin_runs(G, 3, 6) == [(12288, 1), (PMD, 4), (2 * PMD, 1)]
    tr = parse_trace("geometry: handles=8\n"
                     "mmap mm=1 vma=1 ino=1 pgoff=0 pages=8 aligned=0\n"
                     "pin_pages mm=1 vma=1 pgoff=2 pages=5 h=3 write=0\n"
                     "pin_pages mm=0 vma=0 pgoff=0 pages=4 h=5\n"   # 5+4 > 8 handles
                     "unpin h=4\nunpin_pages h=5 pages=3\nunpin_pages h=6 pages=4\n")
    p = translate(tr)
    assert not p.skipped
    assert prog_lines(p.text)[1:] == [
        "step 1", "mmap 3 1 0 4194304 3 1 1 4096 0",
        "step 2", "gupv 3 3 0 2 8192 2 2097152 3",
        "step 3", "errno EINVAL",           # the model's bound; the helper has 64 pipes
        "step 4", "release 4 1",            # one handle of the five alone
        "step 5", "release 5 1 3",
        "step 6", "release 6 1 4",          # past the handles: the helper's EINVAL too
    ]


def test_pin_pages_with_pmd_order_9_is_one_run():
    tr = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512 "
                     "handles=64\n"
                     "mmap mm=0 vma=0 ino=0 pgoff=0 pages=512\n"
                     "pin_pages mm=0 vma=0 pgoff=510 pages=64 h=0\n"
                     "unpin_pages h=0 pages=64\n")
    assert prog_lines(translate(tr).text)[3:] == [
        "step 2", "gupv 0 0 1 1 2088960 64", "step 3", "release 0 1 64"]


def test_write_from_is_pwrite_from_the_slots_mapping():
    # default geometry: pmd_order=2 (a model group = 4 pages = one 2 MiB extent), vmas=2
    tr = parse_trace("write_from mm=0 vma=0 src_pgoff=0 ino=0 pgoff=0 pages=1\n"
                     "write_from mm=0 vma=1 src_pgoff=1 ino=1 pgoff=5 pages=2\n"  # same phase
                     "write_from mm=1 vma=0 src_pgoff=3 ino=0 pgoff=7 pages=1\n"  # groups' last
                     "write_from mm=0 vma=0 src_pgoff=4 ino=1 pgoff=8 pages=4\n"  # whole group
                     "write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=2 pages=3\n"  # shapes differ
                     "write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=14 pages=3\n"  # past max
                     "unmount\n"
                     "write_from mm=0 vma=0 src_pgoff=0 ino=0 pgoff=0 pages=1\n"  # ENOENT: open
                     "write_from mm=0 vma=0 src_pgoff=15 ino=1 pgoff=15 pages=4\n")  # ENOENT
    p = translate(tr)
    assert p.steps == 9 and not p.skipped
    # pwrite_from SLOT INO LAST NSEG (DOFF NIOV (SOFF LEN)*NIOV)...;
    # LAST = off(src_pgoff + pages - 1); SOFF -1 is the heap
    assert prog_lines(p.text) == [
        "init 2 4194304 2097152",
        "step 1", "pwrite_from 0 0 0 1 0 1 0 4096",
        "step 2", "pwrite_from 1 1 8192 1 2101248 1 4096 8192",
        # the rest of both 2 MiB: the source's first 4 KiB, then 2 MiB - 16 KiB of heap
        "step 3", "pwrite_from 2 0 12288 1 2109440 2 12288 4096 -1 2080768",
        # a whole extent: four model pages' first 4 KiB from the mapping, the rest heap
        "step 4", "pwrite_from 0 1 2109440 1 4194304 2 2097152 16384 -1 2080768",
        # model pages 0->2, 1->3, 2->4: each one's first 4 KiB, in order
        "step 5", "pwrite_from 0 1 8192 3 8192 1 0 4096 12288 1 4096 4096 "
                  "2097152 1 8192 4096",
        "step 6", "pwrite 1 -1 4096",  # past max: EINVAL after open, as for write
        "step 7", "umount",
        "step 8", "pwrite_from 0 0 0 1 0 1 0 4096",
        "step 9", "pwrite 1 -1 4096",  # past max, unmounted: open's ENOENT (kf-2028 1797)
    ]
    tr = parse_trace("geometry: max_file_pages=32\n"
                     "write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=1 pages=17\n")
    p = translate(tr)
    assert prog_lines(p.text)[2] == ("skip write_from of 17 pages of different shapes needs "
                                     "17 calls (max 16)")
    assert p.skipped == {1: "too many segments"}


def test_write_from_with_pmd_order_9_is_the_identity():
    tr = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512\n"
                     "write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=512 pages=512\n"
                     "write_from mm=1 vma=1 src_pgoff=3 ino=0 pgoff=700 pages=5\n"
                     "write_from mm=0 vma=0 src_pgoff=0 ino=0 pgoff=1000 pages=25\n")
    assert prog_lines(translate(tr).text) == [
        "init 2 2097152 2097152",
        "step 1", "pwrite_from 0 1 2093056 1 2097152 1 0 2097152",
        "step 2", "pwrite_from 3 0 28672 1 2867200 1 12288 20480",
        "step 3", "pwrite 0 -1 4096",
    ]


def test_munmap_whole_or_of_the_real_span():
    # default geometry: pmd_order=2 (a model group = 4 pages = one 2 MiB extent), vmas=2
    tr = parse_trace("mmap mm=0 vma=0 ino=0 pages=8\n"
                     "munmap mm=0 vma=0 pgoff=1 pages=2\n"    # inside group 0: [4K, 12K)
                     "munmap mm=0 vma=0 pgoff=3 pages=1\n"    # a group's last: rest of 2 MiB
                     "munmap mm=1 vma=1 pgoff=4 pages=4\n"    # a whole group, slot 3
                     "munmap mm=0 vma=0 pgoff=15 pages=1\n"   # ends at max_file_pages
                     "munmap mm=0 vma=0 pgoff=15 pages=2\n"   # past it: the model's EINVAL
                     "munmap mm=0 vma=0\n"                    # pages=0: everything
                     "munmap mm=0 vma=1 pgoff=9 pages=0\n")   # pages=0 ignores pgoff
    p = translate(tr)
    assert p.steps == 8 and not p.skipped
    assert prog_lines(p.text)[3:] == [
        "step 2", "munmap 0 4096 8192",
        "step 3", "munmap 0 12288 2084864",
        "step 4", "munmap 3 2097152 2097152",
        "step 5", "munmap 0 6303744 2084864",
        "step 6", "errno EINVAL",
        "step 7", "munmap 0",
        "step 8", "munmap 1",
    ]


def test_mprotect_is_the_real_span_with_read_or_read_write():
    tr = parse_trace("mprotect mm=0 vma=1 pgoff=2 pages=3\n"          # [8K, 2M+4K) read-only
                     "mprotect mm=1 vma=0 pgoff=4 pages=4 write=1\n"  # a whole extent, RW
                     "mprotect mm=0 vma=0 pgoff=12 pages=4 write=1\n"  # ends at the bound
                     "mprotect mm=0 vma=0 pgoff=13 pages=4\n")         # past it: EINVAL
    assert prog_lines(translate(tr).text)[1:] == [
        "step 1", "mprotect 1 8192 2093056 1",
        "step 2", "mprotect 2 2097152 2097152 3",
        "step 3", "mprotect 0 6291456 2097152 3",
        "step 4", "errno EINVAL",
    ]


def test_mremap_names_the_target_slot_and_its_placement():
    tr = parse_trace("geometry: mms=2 vmas=3\n"
                     "mremap mm=0 vma=0 pgoff=0 pages=4 to=1\n"             # 2 MiB, aligned
                     "mremap mm=1 vma=2 pgoff=1 pages=2 to=0 aligned=0\n"   # slot 5 -> 3, +4K
                     "mremap mm=0 vma=1 pgoff=3 pages=2 to=2\n"             # [12K, 2M+4K)
                     "mremap mm=0 vma=1 pgoff=2 pages=2 to=1\n"             # to == vma
                     "mremap mm=0 vma=0 pgoff=15 pages=2 to=1\n")           # past the bound
    p = translate(tr)
    assert p.steps == 5 and not p.skipped
    # mremap SLOT OFF LEN TO MISALIGN
    assert prog_lines(p.text)[1:] == [
        "step 1", "mremap 0 0 2097152 1 0",
        "step 2", "mremap 5 4096 8192 3 4096",
        "step 3", "mremap 1 12288 2088960 2 0",
        "step 4", "errno EINVAL",
        "step 5", "errno EINVAL",
    ]


def test_mprotect_and_mremap_with_pmd_order_9_are_the_identity():
    tr = parse_trace("geometry: pages=1024 pmd_order=9 max_file_pages=1024 file_pages=512\n"
                     "munmap mm=0 vma=0 pgoff=511 pages=2\n"
                     "mprotect mm=0 vma=0 pgoff=3 pages=5 write=1\n"
                     "mremap mm=1 vma=0 pgoff=512 pages=512 to=1 aligned=0\n"
                     "mremap mm=1 vma=0 pgoff=513 pages=512 to=1\n")
    assert prog_lines(translate(tr).text)[1:] == [
        "step 1", "munmap 0 2093056 8192",
        "step 2", "mprotect 0 12288 20480 3",
        "step 3", "mremap 2 2097152 2097152 3 4096",
        "step 4", "errno EINVAL",
    ]


def test_reflink_past_the_model_bound_is_a_clone_from_past_the_source_eof():
    # the model: EINVAL after breaking both layouts; the kernel would grow the file, so
    # the helper clones 4 KiB from off(max_file_pages) of the source instead (EINVAL)
    tr = parse_trace("reflink src=0 dst=1 dst_pgoff=11 pages=8\n")
    g = tr.geometry
    assert prog_lines(translate(tr).text)[-1] == (
        f"reflink 0 1 1 {off(g, g.max_file_pages)} {off(g, 11)} 4096")


def test_mmap_past_the_bound_keeps_the_models_eexist_first():
    # the model checks the slot (EEXIST) before its bound (EINVAL): the helper's mmap
    # checks the slot, then mmap(2) at offset 1 is the kernel's EINVAL
    tr = parse_trace("mmap mm=0 vma=0 ino=1 pgoff=4 pages=16 sync=1\n")
    assert prog_lines(translate(tr).text)[-1] == "mmap 0 1 1 4096 3 1 1 0 0"


def test_qemu_refusing_the_accelerator_is_the_boot_failure_said():
    # what `--accel kvm` printed on a host whose nested KVM cannot run the guest
    text = ("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
            "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
            "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n"
            "\x1bc\x1b[?7l\x1b[2JKVM internal error. Suberror: 1\n"
            "SeaBIOS (version 1.16.2-debian-1.16.2-1)\n")
    boot, traces = parse_console(text)
    assert traces == {}
    assert boot == ["qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69",
                    "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
                    "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
                    "KVM internal error. Suberror: 1"]


def test_a_guest_dies_with_the_process_that_started_it(tmp_path):
    # a SIGKILLed `kernel fuzz` left QEMU running (it has a session of its own)
    import signal
    import subprocess
    import sys
    import time

    from daxfuzz.guest.qemu import dies_with_us

    cmd = dies_with_us(["sleep", "60"])
    if cmd[0] == "sleep":
        pytest.skip("no setpriv on this machine")
    pidfile = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({cmd!r}, start_new_session=True)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n")])
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    child = int(pidfile.read_text())
    # setpriv asks for the signal (prctl PR_SET_PDEATHSIG) after its exec, then execs
    # sleep: a parent killed before that is not the case tested (CI once was that fast)
    for _ in range(200):
        with open(f"/proc/{child}/comm") as f:
            if f.read().strip() == "sleep":
                break
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(200):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        try:  # reap it if it became ours (it does not: it is re-parented to init)
            os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived its parent")
