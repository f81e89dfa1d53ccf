"""`daxfuzz kernel repro`: stand-alone C reproducers from the guest's own translation.

Without the guest: every corpus trace the guest can express becomes a C file that
`gcc -static -Wall -Werror` compiles (skipped without gcc), its table is exactly the
translated program, the others are refused with exit 2, and a fork trace's binary runs
on the host (a plain directory, not DAX: the mechanics only).  With the guest (marker
`kernel`): the two CoW-under-PMD reproducers crash / SIGBUS Linux 7.2.13 as the traces
say, about 13 s each under software emulation from `kernel repro` to the crash.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import pytest

from daxfuzz.cli import main
from daxfuzz.errors import InputError
from daxfuzz.guest.build import HELPER_LIB, MKFS_CMD, MOUNT_CMD, NDCTL_CMD
from daxfuzz.guest.repro import program_lines, repro_source
from daxfuzz.guest.translate import translate
from daxfuzz.vocab.trace import parse_trace, read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = sorted(glob.glob(os.path.join(ROOT, "corpus", "*.trace"))
                + glob.glob(os.path.join(ROOT, "corpus", "zoo", "*.trace")))
NRPAGES = os.path.join(ROOT, "corpus", "divergence-cow-pte-under-pmd-entry-nrpages.trace")
SIGBUS = os.path.join(ROOT, "corpus", "divergence-cow-pte-under-pmd-entry-sigbus.trace")
FORK = os.path.join(ROOT, "corpus", "fork-private-cow-copies-page-tables.trace")

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def _expressible(path: str) -> bool:
    return not translate(read_trace(path), path).skipped


def _source(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    return repro_source(parse_trace(raw, path=path), path, raw_text=raw)


def _gcc(src: str, tmp_path, *extra: str) -> str:
    c, exe = tmp_path / "repro.c", tmp_path / "repro"
    c.write_text(src)
    p = subprocess.run(["gcc", "-static", "-Wall", "-Werror", *extra, "-o", str(exe), str(c)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    return str(exe)


@needs_gcc
@pytest.mark.parametrize("path", [p for p in CORPUS if _expressible(p)],
                         ids=lambda p: os.path.relpath(p, os.path.join(ROOT, "corpus")))
def test_every_expressible_corpus_trace_compiles(path, tmp_path):
    _gcc(_source(path), tmp_path)


@pytest.mark.parametrize("path", [p for p in CORPUS if _expressible(p)][:12] + [FORK],
                         ids=os.path.basename)
def test_the_table_is_the_guest_translation(path):
    src = _source(path)
    want = [ln for ln in translate(read_trace(path), path).text.splitlines()
            if not ln.startswith("#")]
    assert program_lines(src) == want
    assert HELPER_LIB.read_text() in src  # the library verbatim


def test_header_names_the_setup_the_trace_and_where_it_was_confirmed():
    src = _source(NRPAGES)
    head = src.split("*/", 1)[0]
    for s in (MKFS_CMD, MOUNT_CMD, NDCTL_CMD, "memmap=1G!1G", "expect: divergence "
              "fault:safety:nrpages", "expect legacy: divergence fault:safety:nrpages",
              "Confirmed on: Linux 7.2.13", "gcc -static", "clear_inode() hits"):
        assert s in " ".join(head.replace("\n *", " ").split()), s
    sig = _source(SIGBUS)
    assert "step 7 differs: a correct kernel: ok; Linux 7.2 as modelled: SIGBUS" in sig
    assert '"step 7 fault mm=0 vma=0 pgoff=1' in sig


def test_unconfirmed_trace_says_so_and_confirmed_adds(tmp_path, capsys):
    path = os.path.join(ROOT, "corpus", "pin-blocks-truncate.trace")
    assert "Confirmed on: no real kernel yet" in _source(path)
    out = tmp_path / "r.c"
    assert main(["kernel", "repro", path, "-o", str(out), "--confirmed", "Linux 6.99"]) == 0
    assert "Confirmed on: Linux 6.99" in out.read_text()


def test_stdout_by_default(capsys):
    assert main(["kernel", "repro", FORK]) == 0
    out = capsys.readouterr().out
    assert out.startswith("/* fork-private-cow-copies-page-tables.trace")
    assert "int main(int argc, char **argv)" in out


@pytest.mark.parametrize("path", [p for p in CORPUS if not _expressible(p)],
                         ids=os.path.basename)
def test_unexpressible_trace_is_refused_with_exit_2(path, tmp_path, capsys):
    out = tmp_path / "r.c"
    assert main(["kernel", "repro", path, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    tr = read_trace(path)
    step = min(translate(tr, path).skipped)
    assert path in err and f"step {step} ({tr.ops[step - 1]})" in err, err
    assert not out.exists()


def test_reflink_with_too_many_segments_is_refused():
    tr = parse_trace("geometry: pages=64 file_pages=40 max_file_pages=40\n"
                     "reflink src=0 dst=1 src_pgoff=0 dst_pgoff=1 pages=17\n")
    with pytest.raises(InputError) as e:
        repro_source(tr, "many.trace")
    msg = str(e.value)
    assert msg.startswith("many.trace: ") and "step 1 (reflink" in msg
    assert "too many segments" in msg


def test_help_documents_the_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["kernel", "repro", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for s in ("-o FILE", "--run", "--confirmed", "gcc -static", "exit 2"):
        assert s in " ".join(out.split()), s


@needs_gcc
def test_fork_reproducer_runs_its_steps_on_a_plain_directory(tmp_path):
    # not DAX (the program says so): this checks the mechanics only -- the table reaches
    # the dispatcher in order, the fork runs through daxop's director, every step answers
    exe = _gcc(_source(FORK), tmp_path, "-O2")
    d = tmp_path / "dir"
    d.mkdir()
    p = subprocess.run([exe, str(d), "/dev/null", "500"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    n = len(read_trace(FORK).ops)
    for i in range(1, n + 1):
        assert f"== step {i}: " in p.stdout
        assert f"@@R step={i} " in p.stdout, p.stdout
    assert "is not DAX" in p.stdout
    assert "child_pid=" in p.stdout  # the fork step forked
    assert p.stdout.rstrip().endswith("@@E done")


# ---------------------------------------------------------------- the real kernel ----
def _guest():
    from daxfuzz.guest.apt import SetupError, cache_dir
    from daxfuzz.guest.build import helper_is_current, load_manifest

    try:
        load_manifest()
    except SetupError as e:
        pytest.skip(f"guest not set up: {e}")
    if not helper_is_current(cache_dir()):
        pytest.skip("the guest's initramfs is older than daxlib.c: run `daxfuzz kernel setup`")
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")


@pytest.mark.kernel
def test_nrpages_reproducer_hits_the_inode_bug_at_umount(tmp_path, capsys):
    _guest()
    out = tmp_path / "repro.c"
    rc = main(["kernel", "repro", NRPAGES, "-o", str(out), "--run"])
    text = capsys.readouterr().out
    assert rc == 1, text
    assert out.exists()
    assert "kernel BUG at fs/inode.c:777" in text, text[-3000:]
    # the BUG is in the reproducer's own umount (step 8), before its "@@E done"
    before_end = text.split("@@E done")[0]
    assert "== step 8: unmount" in before_end
    assert "kernel BUG at fs/inode.c:777" in before_end.split("== step 8: unmount")[1]


@pytest.mark.kernel
def test_sigbus_reproducer_gets_sigbus(tmp_path, capsys):
    _guest()
    rc = main(["kernel", "repro", SIGBUS, "-o", str(tmp_path / "repro.c"), "--run"])
    text = capsys.readouterr().out
    assert rc == 1, text
    assert "@@R step=7 status=sigbus" in text, text[-3000:]
    for i in range(1, 7):
        assert f"@@R step={i} status=ok" in text
    assert "step 7 (fault mm=0 vma=0 pgoff=1): a correct kernel: ok; kernel: SIGBUS" in text


def test_exchange_and_swapext_reproducers_name_their_mkfs_needs():
    xch = _source(os.path.join(ROOT, "corpus", "exchange-range-waits-for-pin.trace"))
    head = " ".join(xch.split("*/", 1)[0].replace("\n *", " ").split())
    assert "-i exchange=1" in head
    assert "xfsprogs >= 6.10 for -i exchange=1; without it the exchange steps fail " \
           "EOPNOTSUPP" in head
    assert "reflink, exchange, swapext, pwrite" in head
    assert "exchange 0 1 1 0 0 2097152" in program_lines(xch)
    swp = _source(os.path.join(ROOT, "corpus", "divergence-swapext-gup-held.trace"))
    assert "which only exchange steps need" in " ".join(swp.split("*/", 1)[0].split())
    assert "swapext 0 1" in program_lines(swp)


PIN_PAGES = """\
geometry: handles=8
mmap mm=0 vma=0 ino=0 pages=8
pin_pages mm=0 vma=0 pgoff=2 pages=4 h=0
pin_pages mm=0 vma=0 pgoff=0 pages=2 h=3
unpin h=1
unpin_pages h=0 pages=2
unpin_pages h=2 pages=2
pin_pages mm=0 vma=0 pgoff=6 pages=4 h=4 write=0
unpin_pages h=4 pages=1
pin_pages mm=0 vma=0 pgoff=0 pages=3 h=6
"""


@needs_gcc
def test_pin_pages_reproducer_keeps_the_handle_bookkeeping_on_a_plain_directory(tmp_path):
    # mechanics only (not DAX): one vmsplice across the group boundary into one pipe per
    # handle, released singly or by sub-range, all or nothing, EEXIST/EINVAL as the model
    tr = parse_trace(PIN_PAGES, path="pin.trace")
    exe = _gcc(repro_source(tr, "pin.trace", predicted=[], port=[]), tmp_path, "-O2")
    d = tmp_path / "dir"
    d.mkdir()
    p = subprocess.run([exe, str(d), "/dev/null", "500"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    r = {int(ln.split()[1][5:]): ln for ln in p.stdout.splitlines() if ln.startswith("@@R")}
    ok = "status=ok ms="
    assert ok in r[2] and "vmsplice_of_4_pages_in_2_ranges" in r[2], r[2]
    assert "errno=EEXIST" in r[3]                   # handle 3 held: nothing taken
    assert ok in r[4] and "errno=EINVAL" in r[5]    # h=1 went alone: h=0..1 is not held
    assert ok in r[6]
    assert "errno=EFAULT" in r[7] and "vmsplice_got_2_of_4_pages" in r[7]  # past the VMA
    assert "errno=EINVAL" in r[8]                   # ... so handle 4 was released again
    assert "errno=EINVAL" in r[9] and "model_bookkeeping" in r[9]         # 6+3 > 8


WRITE_FROM = """\
write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=0 pages=1
mmap mm=0 vma=0 ino=0 pgoff=1 pages=2 huge=0
write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=0 pages=1
write_from mm=0 vma=0 src_pgoff=2 ino=1 pgoff=0 pages=2
fault mm=0 vma=0 pgoff=1 write=1
write_from mm=0 vma=0 src_pgoff=1 ino=1 pgoff=2 pages=2
truncate ino=0 pages=2
write_from mm=0 vma=0 src_pgoff=2 ino=1 pgoff=0 pages=1
write_from mm=0 vma=0 src_pgoff=1 ino=1 pgoff=15 pages=2
fork mm=0 child=1
write_from mm=1 vma=0 src_pgoff=1 ino=0 pgoff=5 pages=1
mmap mm=0 vma=1 ino=1 pages=4 huge=0
write_from mm=0 vma=1 src_pgoff=2 ino=0 pgoff=6 pages=2
"""


@needs_gcc
def test_write_from_reproducer_checks_its_source_first_on_a_plain_directory(tmp_path):
    # mechanics only (not DAX): pwrite from the slot's own mapping, EFAULT before anything
    # for no VMA, a source page outside it or past EOF; in a forked child's process too
    tr = parse_trace(WRITE_FROM, path="wf.trace")
    src = repro_source(tr, "wf.trace", predicted=[], port=[])
    assert "pwrite_from 0 1 8192 2 8192 1 4096 4096 12288 1 8192 4096" in program_lines(src)
    assert "/* pwritev(f1) of 4 KiB from file offset 0x1000 (4 KiB) of f0 through mapping 0" \
           in src
    exe = _gcc(src, tmp_path, "-O2")
    d = tmp_path / "dir"
    d.mkdir()
    p = subprocess.run([exe, str(d), "/dev/null", "500"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    r = {int(ln.split()[1][5:]): ln for ln in p.stdout.splitlines() if ln.startswith("@@R")}
    assert "errno=EFAULT" in r[1] and "no_vma" in r[1], r[1]
    assert "errno=EFAULT" in r[3] and "source_outside_the_vma" in r[3], r[3]
    assert "errno=EFAULT" in r[4] and "source_outside_the_vma" in r[4], r[4]
    assert "status=ok" in r[6] and "wrote_8192_bytes_in_2_calls" in r[6], r[6]
    assert "errno=EFAULT" in r[8] and "source_past_eof" in r[8], r[8]
    # past the model's file bound: write's `pwrite INO -1 4096`, the file opened first
    # (ENOENT when unmounted), then the kernel's own EINVAL for the offset
    assert "pwrite 1 -1 4096" in program_lines(src)
    assert "errno=EINVAL" in r[9] and "model_bookkeeping" not in r[9], r[9]
    assert "status=ok" in r[11] and "wrote_4096_bytes_in_1_calls" in r[11], r[11]
    with open(d / "f1", "rb") as f:  # model page 2 of f1 got the byte stored to page 1
        f.seek(8192)
        assert f.read(1) == b"\x5a"  # the helper stores 0x5a (a store, no load)
    # the same shape ending on a group's last page: one pwritev of 2 MiB - 8 KiB, the
    # model pages' first 4 KiB from the mapping, the rest of page 3's 2 MiB from the heap
    assert "pwrite_from 1 0 12288 1 2105344 2 8192 8192 -1 2080768" in program_lines(src)
    assert "status=ok" in r[13] and "wrote_2088960_bytes_in_1_calls" in r[13], r[13]
    assert "8 KiB from file offset 0x2000 (8 KiB) of f1 through mapping 1 + 2032 KiB from " \
           "a heap buffer" in src


PIECES = """\
mmap mm=0 vma=0 ino=0 pages=8
munmap mm=0 vma=0 pgoff=1 pages=2
fault mm=0 vma=0 pgoff=1
fault mm=0 vma=0 pgoff=0 write=1
msync mm=0 vma=0
mprotect mm=0 vma=0 pgoff=4 pages=2
fault mm=0 vma=0 pgoff=4 write=1
fault mm=0 vma=0 pgoff=4
mprotect mm=0 vma=0 pgoff=0 pages=4 write=1
mprotect mm=0 vma=0 pgoff=1 pages=1
write_from mm=0 vma=0 src_pgoff=0 ino=1 pgoff=0 pages=2
write_from mm=0 vma=0 src_pgoff=3 ino=1 pgoff=0 pages=2
mremap mm=0 vma=0 pgoff=4 pages=4 to=1
fault mm=0 vma=1 pgoff=4 write=1
fault mm=0 vma=1 pgoff=6 write=1
fault mm=0 vma=0 pgoff=5
dontneed mm=0 vma=0 pgoff=0 pages=8
mmap mm=0 vma=1 ino=0 pages=1
fork mm=0 child=1
fault mm=1 vma=1 pgoff=4 write=1
munmap mm=1 vma=1
msync mm=1 vma=1
mprotect mm=1 vma=1 pgoff=0 pages=1
mremap mm=1 vma=1 pgoff=0 pages=1 to=0
mremap mm=1 vma=0 pgoff=0 pages=1 to=1 aligned=0
fault mm=1 vma=1 pgoff=0 write=1
fault mm=1 vma=0 pgoff=0
munmap mm=0 vma=0 pgoff=0 pages=4
msync mm=0 vma=0
mremap mm=0 vma=0 pgoff=0 pages=1 to=0
"""


@needs_gcc
def test_munmap_mprotect_mremap_reproducer_keeps_the_pieces_on_a_plain_directory(tmp_path):
    # mechanics only (not DAX): a partial munmap leaves real holes (SIGSEGV, msync and
    # mprotect ENOMEM, write_from's EFAULT first), a read-only piece SIGSEGVs a store, a
    # mremap moves a piece with its protection into the (emptied) target slot at its
    # placement, a fork copies the pieces, and an empty slot is EINVAL (bookkeeping)
    tr = parse_trace(PIECES, path="pieces.trace")
    src = repro_source(tr, "pieces.trace", predicted=[], port=[])
    lines = program_lines(src)
    for want in ("munmap 0 4096 8192", "mprotect 0 2097152 8192 1",
                 "mremap 0 2097152 2097152 1 0", "mremap 2 0 4096 3 4096", "munmap 3",
                 "munmap 0 0 2097152"):
        assert want in lines, want
    assert "/* mprotect(2) of file offsets [0x200000 (2 MiB), +8 KiB) of f0 through mapping " \
           "0 to PROT_READ */" in src
    exe = _gcc(src, tmp_path, "-O2")
    d = tmp_path / "dir"
    d.mkdir()
    p = subprocess.run([exe, str(d), "/dev/null", "500"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    r = {int(ln.split()[1][5:]): ln for ln in p.stdout.splitlines() if ln.startswith("@@R")}
    assert len(r) == len(tr.ops), p.stdout

    def st(i: int) -> str:
        w = dict(kv.split("=", 1) for kv in r[i].split()[1:] if "=" in kv)
        return w["status"] if w["status"] != "err" else w["errno"]

    assert [st(i) for i in range(1, len(tr.ops) + 1)] == [
        "ok", "ok", "sigsegv", "ok", "ENOMEM",            # msync: the hole inside
        "ok", "sigsegv", "ok",                            # a store to a read-only piece
        "ENOMEM", "ENOMEM",                               # meets / starts in the hole
        "EFAULT", "ok",                                   # write_from's check of the pieces
        "ok", "sigsegv", "ok", "sigsegv",                 # moved read-only and read-write
        "ENOMEM",                                         # dontneed over the extent's hole
        "EEXIST", "ok", "sigsegv",                        # the child's read-only piece
        "ok", "EINVAL", "EINVAL", "EINVAL",               # an empty slot: bookkeeping
        "ok", "ok", "sigsegv",                            # mremap aligned=0; its source
        "ok", "EINVAL",                                   # the last piece unmapped
        "EINVAL",                                         # to == vma: the model's bound
    ]
    assert "note=2_pieces_left" in r[2]
    assert re.search(r"note=to=0x[0-9a-f]*200000_2_pieces_left", r[13]), r[13]  # 2 MiB in
    assert re.search(r"note=to=0x[0-9a-f]*1000_1_pieces_left", r[25]), r[25]  # + 4 KiB


def test_a_holder_path_reproducer_asks_for_the_reverse_map():
    # memory_failure holder=1 needs mkfs.xfs -m rmapbt=1: the header says so, and the
    # program table keeps the line `kernel repro --run` finds in the binary
    from daxfuzz.guest.build import FS_RMAPBT_LINE

    path = os.path.join(ROOT, "corpus/memory-failure-shared-holder-rmap.trace")
    src = repro_source(read_trace(path), path, predicted=[], port=[])
    assert f'"{FS_RMAPBT_LINE}",' in src and "-m reflink=1,rmapbt=1 " in src
    assert "init 2 4194304 2097152 1" in program_lines(src)
    assert "reverse-mapping btree" in src
