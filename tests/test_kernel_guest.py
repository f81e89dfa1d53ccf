"""The real kernel under QEMU (marker `kernel`; skipped unless `daxfuzz kernel setup` ran).

One guest boot (about 20-30 s under software emulation) runs two corpus traces: a pin
makes truncate wait and the unpin lets it complete; a long-term pin is refused.  Another
(about 10 s) runs two `write` traces straight from the translation (no oracle needed),
and one more (about 11 s) three `write_from` ones, and one (about 10 s) two traces of
partial munmap, mprotect and mremap.
"""

from __future__ import annotations

import os

import pytest

from daxfuzz.cli import main
from daxfuzz.guest.apt import SetupError, cache_dir
from daxfuzz.guest.build import helper_is_current, load_manifest
from daxfuzz.guest.qemu import run_programs
from daxfuzz.guest.translate import translate
from daxfuzz.vocab.trace import parse_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.kernel


def _manifest():
    try:
        return load_manifest()
    except SetupError as e:
        pytest.skip(f"guest not set up: {e}")


def test_corpus_traces_agree_on_the_kernel(capsys):
    _manifest()
    rc = main(["kernel", "run", os.path.join(ROOT, "corpus/pin-blocks-truncate.trace"),
               os.path.join(ROOT, "corpus/longterm-pin-refused.trace")])
    out = capsys.readouterr().out
    assert "kernel: blocked" in out  # the truncate waited for the vmsplice'd page
    assert "EOPNOTSUPP" in out
    assert rc == 0, out


def test_bad_trace_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.trace"
    bad.write_text("frobnicate mm=0\n")
    assert main(["kernel", "run", str(bad)]) == 2


def test_a_kernel_bug_reboots_the_guest_for_the_next_trace(capsys):
    # the CoW-under-PMD trace oopses the kernel at unmount (kernel BUG at fs/inode.c:777);
    # the trace after it must run in a fresh guest, not on the wedged pmem device
    _manifest()
    rc = main(["kernel", "run", "-q",
               os.path.join(ROOT, "corpus/divergence-cow-pte-under-pmd-entry-nrpages.trace"),
               os.path.join(ROOT, "corpus/pin-blocks-truncate.trace")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "cow-pte-under-pmd-entry-nrpages.trace: DIFFER" in out
    assert "pin-blocks-truncate.trace: agree on the kernel" in out, out
    assert "2 boot(s)" in out


# pwrite over a reflinked (shared) extent whose page is still mapped: the write's CoW
# invalidates the DAX entry (dax_iomap_rw -> invalidate_inode_pages2_range ->
# __dax_invalidate_entry -> dax_disassociate_entry -> dax_folio_put) while the PTE still
# holds the folio, and dax_folio_put's WARN_ON_ONCE(folio_ref_count) fires (fs/dax.c:452
# on 7.2.13).  Without the read fault after the reflink nothing maps the page: silent.
WRITE_MAPPED = """\
mmap mm=0 vma=0 ino=0 pages=4 huge=0
fault mm=0 vma=0 pgoff=0 write=1
reflink src=0 dst=1 pages=4
fault mm=0 vma=0 pgoff=0
write ino=0 pgoff=0 pages=1
munmap mm=0 vma=0
unmount
"""
WRITE_UNMAPPED = WRITE_MAPPED.replace("fault mm=0 vma=0 pgoff=0\n", "")


def test_write_over_a_mapped_shared_extent_warns():
    m = _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxop.c: run `daxfuzz kernel setup`")
    # the silent one first (the guest runs /progs/*.prog in name order): a WARN_ON_ONCE
    # that fired stays quiet for the rest of the boot, and a warning ends the boot
    progs = [(name, translate(parse_trace(text)).text)
             for name, text in (("a-unmapped", WRITE_UNMAPPED), ("b-mapped", WRITE_MAPPED))]
    res = run_programs(m, progs)
    assert res.boots - res.failed_boots == 1 and not res.hung, res.console[-3000:]
    b, a = res.traces["a-unmapped"], res.traces["b-mapped"]
    for gt, n in ((b, 6), (a, 7)):
        assert gt.finished and not gt.error, gt
        assert [gt.steps[i].outcome() for i in range(1, n + 1)] == ["ok"] * n, gt.steps
    assert b.kernel == []
    warn = [line for _, line in a.kernel if "WARNING" in line]
    assert len(warn) == 1, a.kernel
    assert {s for s, line in a.kernel if "WARNING" in line} == {5}  # the write
    assert "fs/dax.c:" in warn[0]
    assert "dax_disassociate_entry" in warn[0] or "dax_folio_put" in warn[0], warn[0]



WARNING_TRACES = ("divergence-write-cow-mapped-pte.trace", "divergence-write-cow-mapped-pmd.trace",
                  "divergence-write-cow-gup-held.trace")


def test_each_warning_trace_warns_in_one_run(capsys):
    # each of these WARNs at fs/dax.c:452, a WARN_ON_ONCE: in one boot the second and the
    # third would be silent.  At loglevel=4 the WARNING reaches the console only as the
    # helper's @@K lines, and those must end the boot as a BUG on the console does
    _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxop.c: run `daxfuzz kernel setup`")
    rc = main(["kernel", "run"] + [os.path.join(ROOT, "corpus", t) for t in WARNING_TRACES])
    out = capsys.readouterr().out
    assert rc == 1, out
    sections = out.split("== ")[1:]
    assert len(sections) == 3, out
    for t, sec in zip(WARNING_TRACES, sections, strict=True):
        assert sec.startswith(os.path.join(ROOT, "corpus", t)), sec
        assert "kernel log: WARNING: fs/dax.c:" in sec, sec
        assert "0 differ, 0 not expressible, 0 missing" in sec, sec
    assert "3 boot(s)" in out, out


# MADV_DONTNEED of one page of a PMD-mapped extent while another page of it is held
# (vmsplice'd): 7.2 zaps the whole PMD, the read refault maps it again, and the unpin,
# munmap and truncate find nothing left behind.
DONTNEED_PINNED = """\
mmap mm=0 vma=0 ino=0 pages=4
fault mm=0 vma=0 pgoff=1 write=1
pin mm=0 vma=0 pgoff=2 h=0
dontneed mm=0 vma=0 pgoff=1 pages=1
fault mm=0 vma=0 pgoff=1
unpin h=0
munmap mm=0 vma=0
truncate ino=0
"""


def test_dontneed_beside_a_pin_agrees_on_the_kernel(tmp_path, capsys):
    _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxop.c: run `daxfuzz kernel setup`")
    t = tmp_path / "dontneed-pinned.trace"
    t.write_text(DONTNEED_PINNED)
    rc = main(["kernel", "run", str(t)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "8 agree, 0 differ, 0 not expressible, 0 missing, 0 kernel warning line(s)" in out
    assert "dontneed mm=0 vma=0 pgoff=1" in out and "WARNING" not in out, out


# fork of a private VMA that made a COW copy (it has an anon_vma): the child's page
# tables are copied, the file page at pgoff 1 is shared with the parent.  The child's
# get (vmsplice, in the child process) holds it: after the parent's munmap the truncate
# waits for it, and after the put (drained by the first process) it completes.
FORK_PRIVATE = """\
mmap mm=0 vma=0 ino=0 pages=4 huge=0
fault mm=0 vma=0 pgoff=1 write=1
munmap mm=0 vma=0
mmap mm=0 vma=1 ino=0 pages=4 shared=0 huge=0
fault mm=0 vma=1 pgoff=0 write=1
fault mm=0 vma=1 pgoff=1
fork mm=0 child=1
get mm=1 vma=1 pgoff=1 h=0
munmap mm=0 vma=1
truncate ino=0
put h=0
truncate ino=0
munmap mm=1 vma=1
"""


def test_fork_child_gup_blocks_truncate_on_the_kernel(tmp_path, capsys):
    _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxop.c: run `daxfuzz kernel setup`")
    t = tmp_path / "fork-private-cow.trace"
    t.write_text(FORK_PRIVATE)
    rc = main(["kernel", "run", str(t)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "13 agree, 0 differ, 0 not expressible, 0 missing, 0 kernel warning line(s)" in out
    assert "kernel: blocked" in out and "WARNING" not in out, out


def test_exchange_waits_for_a_pin_and_swapext_warns(capsys):
    # XFS_IOC_EXCHANGE_RANGE breaks both layouts (blocked by the pin, done after the
    # unpin): agrees step for step, silent.  XFS_IOC_SWAPEXT breaks none: its
    # truncate_pagecache_range() meets the DAX entries -- WARN_ON_ONCE in
    # truncate_folio_batch_exceptionals (mm/truncate.c:89 on 7.2.13, which the model does
    # not predict) -- and deletes the one a get still holds: dax_folio_put's WARN at
    # fs/dax.c:452 (dax_disassociate_entry), which it does.  Silent one first.
    m = _manifest()
    if not helper_is_current(cache_dir()) or not m.get("mkfs_debs"):
        pytest.skip("the guest is older than daxlib.c/build.py: run `daxfuzz kernel setup`")
    names = ("exchange-range-waits-for-pin.trace", "divergence-swapext-gup-held.trace")
    rc = main(["kernel", "run"] + [os.path.join(ROOT, "corpus", t) for t in names])
    out = capsys.readouterr().out
    assert rc == 1, out  # the WARNING
    xch, swp = out.split("== ")[1:3]
    assert "exchange-range-waits-for-pin.trace: agree on the kernel: 13 agree, 0 differ" in xch
    assert "kernel: blocked" in xch and "WARNING" not in xch, xch
    assert "11 agree, 0 differ, 0 not expressible, 0 missing" in swp, swp
    at_swapext = swp.split("\n   6  swapext")[1].split("\n   7  ")[0]
    assert "kernel log: WARNING: fs/dax.c:452 at dax_disassociate_entry" in at_swapext, swp
    assert "kernel log: WARNING: mm/truncate.c:" in at_swapext, swp
    assert "WARNING" not in swp.split("\n   7  ")[1], swp


def test_pin_pages_of_a_pmd_folio_blocks_truncate_until_the_last_unpin(capsys):
    # one vmsplice of the four pages a PMD maps (a multi-page GUP-fast), each page moved to
    # its own pipe: truncate waits, still waits after half are drained, then completes
    _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxlib.c: run `daxfuzz kernel setup`")
    rc = main(["kernel", "run", os.path.join(ROOT, "corpus/pin-pages-of-a-pmd-folio.trace")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "9 agree, 0 differ, 0 not expressible, 0 missing, 0 kernel warning line(s)" in out
    assert out.count("kernel: blocked") == 2 and "WARNING" not in out, out


# write_from: pwrite over a reflinked page 0 from the file's own mapping of page 0.  The
# reflink unmaps it; the write's CoW allocates a new block and invalidates, then the copy
# faults the source in while the file still points at the old, shared block (the remap is
# at iomap_end): the mapping keeps an entry for the old block.  On 7.2.13 the store at
# step 6 then gets SIGBUS (silently: no kernel log line), as the model's 7.2 port says;
# with a plain write in place of the write_from, nothing is stale and the store is fine.
WRITE_FROM_STALE = """\
mmap mm=0 vma=0 ino=0 pages=4 huge=0
fault mm=0 vma=0 pgoff=0 write=1
reflink src=0 dst=1 pages=4
write_from mm=0 vma=0 src_pgoff=0 ino=0 pgoff=0 pages=1
write ino=0 pgoff=0 pages=1
fault mm=0 vma=0 pgoff=0 write=1
munmap mm=0 vma=0
unmount
"""


def test_write_from_own_mapping_over_a_shared_extent_leaves_a_sigbus():
    m = _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxlib.c: run `daxfuzz kernel setup`")
    control = WRITE_FROM_STALE.replace(
        "write_from mm=0 vma=0 src_pgoff=0 ino=0 pgoff=0 pages=1", "write ino=0 pgoff=0 pages=1")
    texts = (("a-control", control), ("b-pte", WRITE_FROM_STALE),
             ("c-pmd", WRITE_FROM_STALE.replace(" huge=0", "")))  # aligned, huge
    progs = [(name, translate(parse_trace(text)).text) for name, text in texts]
    assert "pwrite_from 0 0 0 1 0 1 0 4096" in progs[1][1]
    res = run_programs(m, progs)
    assert res.boots - res.failed_boots == 1 and not res.hung, res.console[-3000:]
    for name, _ in texts:
        gt = res.traces[name]
        assert gt.finished and not gt.error, gt
        want = ["ok"] * 8 if name == "a-control" else ["ok"] * 5 + ["SIGBUS", "ok", "ok"]
        assert [gt.steps[i].outcome() for i in range(1, 9)] == want, (name, gt.steps)
        assert gt.kernel == [], (name, gt.kernel)


# munmap/mprotect/mremap of parts of a PMD mapping, straight from the translation (no
# oracle needed).  What 7.2.13 answers: a partial munmap inside a PMD splits it, the rest
# refaults, the hole SIGSEGVs and makes msync and a dontneed across it ENOMEM; mprotect
# meeting a hole changes what is before it and says ENOMEM, a store to a read-only piece
# SIGSEGVs, a write pin of it is EFAULT; a pin held across a mremap keeps truncate waiting.
PIECES_MUNMAP_MPROTECT = """\
mmap mm=0 vma=0 ino=0 pages=8
fault mm=0 vma=0 pgoff=0 write=1
fault mm=0 vma=0 pgoff=4 write=1
munmap mm=0 vma=0 pgoff=3 pages=2
fault mm=0 vma=0 pgoff=2 write=1
fault mm=0 vma=0 pgoff=3
msync mm=0 vma=0
dontneed mm=0 vma=0 pgoff=0 pages=8
mprotect mm=0 vma=0 pgoff=1 pages=6
fault mm=0 vma=0 pgoff=1 write=1
fault mm=0 vma=0 pgoff=1
fault mm=0 vma=0 pgoff=5 write=1
pin mm=0 vma=0 pgoff=2 h=0 write=1
mprotect mm=0 vma=0 pgoff=0 pages=3 write=1
fault mm=0 vma=0 pgoff=2 write=1
munmap mm=0 vma=0
msync mm=0 vma=0
truncate ino=0
"""
PIECES_MREMAP = """\
mmap mm=0 vma=0 ino=0 pages=8
fault mm=0 vma=0 pgoff=0 write=1
pin mm=0 vma=0 pgoff=1 h=0
munmap mm=0 vma=0 pgoff=2 pages=1
mremap mm=0 vma=0 pgoff=2 pages=2 to=1
mremap mm=0 vma=0 pgoff=0 pages=4 to=1 aligned=0
fault mm=0 vma=1 pgoff=1 write=1
fault mm=0 vma=1 pgoff=2
fault mm=0 vma=0 pgoff=1
truncate ino=0
unpin h=0
truncate ino=0
fault mm=0 vma=1 pgoff=1
mremap mm=0 vma=1 pgoff=0 pages=4 to=1
"""


def test_munmap_mprotect_mremap_of_parts_of_a_pmd_mapping():
    m = _manifest()
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest helper is older than daxlib.c: run `daxfuzz kernel setup`")
    texts = (("a-munmap-mprotect", PIECES_MUNMAP_MPROTECT), ("b-mremap", PIECES_MREMAP))
    progs = [(name, translate(parse_trace(text)).text) for name, text in texts]
    res = run_programs(m, progs)
    assert res.boots - res.failed_boots == 1 and not res.hung, res.console[-3000:]
    want = {
        "a-munmap-mprotect": ["ok", "ok", "ok", "ok", "ok", "SIGSEGV", "ENOMEM", "ENOMEM",
                              "ENOMEM", "SIGSEGV", "ok", "ok", "EFAULT", "ok", "ok", "ok",
                              "EINVAL", "ok"],
        # step 6 spans the hole: since 6.17 a MREMAP_FIXED move of several VMAs keeps
        # the gap (no EFAULT); step 5 starts in the hole (EFAULT)
        "b-mremap": ["ok", "ok", "ok", "ok", "EFAULT", "ok", "ok", "SIGSEGV", "SIGSEGV",
                     "blocked", "ok", "ok", "SIGBUS", "EINVAL"],
    }
    for name, _ in texts:
        gt = res.traces[name]
        assert gt.finished and not gt.error, gt
        got = [gt.steps[i].outcome() for i in range(1, len(want[name]) + 1)]
        assert got == want[name], (name, gt.steps)
        assert gt.kernel == [], (name, gt.kernel)


def test_memory_failure_is_madv_hwpoison_on_the_kernel(capsys):
    # memory_failure holder=0 as MADV_HWPOISON where current maps the pfn: the generic
    # path signals current (killed=0) on an unshared page and answers EBUSY on a shared
    # one (no folio->mapping); its own log lines are its result, not warnings, and the
    # poisoned pages do not end the boot
    _manifest()
    rc = main(["kernel", "run",
               os.path.join(ROOT, "corpus/memory-failure-unshared-generic.trace"),
               os.path.join(ROOT, "corpus/memory-failure-shared-generic-ebusy.trace"),
               os.path.join(ROOT, "corpus/memory-failure-cow-copy-legacy-oops.trace"),
               os.path.join(ROOT, "corpus/memory-failure-shared-holder-rmap.trace")])
    out = capsys.readouterr().out
    assert "kernel: ok killed=0" in out and "kernel: EBUSY" in out, out
    # holder=1 on an rmapbt=1 filesystem: the page two files share is no EBUSY there,
    # each owner's process is signalled (the generic path's EBUSY above)
    assert "rmapbt=1" in out and "kernel: ok killed=1" in out, out
    assert "Sending SIGBUS to daxop" in out  # kill_proc()'s line, shown under the step
    assert "1 boot(s)" in out, out
    assert rc == 0, out  # every expressible step agrees, no kernel warning line


def test_write_from_faults_in_what_the_model_does(capsys):
    # a write_from whose source is a group's last model page (the rest of a 2 MiB extent
    # in the guest) copies only its first 4 KiB from the mapping, the rest from the heap:
    # copied whole, the copy faulted 508 more real pages in, which made a PTE-only VMA
    # map 509 pages of one PMD folio (refcount and large mapcount 510, the port's 2) and
    # a private mapping's read faults leave DAX entries a swapext then warned about
    _manifest()
    triage = os.path.join(ROOT, "docs/triage")
    rc = main(["kernel", "run",
               os.path.join(triage, "raw-write-from-misaligned-sync-large-mapcount.trace"),
               os.path.join(triage, "swapext-after-write-from-own-private-copy.trace")])
    out = capsys.readouterr().out
    assert "raw pages: 2 of 2 steps agree" in out, out
    assert out.count("agree on the kernel: 4 agree, 0 differ") == 2, out
    assert rc == 0, out
