"""Trace -> guest program for the static helper ``daxop`` (see daxop.c for the format).

Geometry.  The model's pages are 4 KiB and its "PMD" is ``2**pmd_order`` pages
(default 4).  In the guest a PMD is 2 MiB (order 9).  Model page ``i`` of a file goes to
byte offset

    off(i) = (i >> pmd_order) * 2 MiB + (i & (2**pmd_order - 1)) * 4 KiB

so model PMD group ``g`` is real 2 MiB extent ``g``, and a model PTE-sized page is the
first 4 KiB of its slot.  The last model page of a group stands for the rest of its
2 MiB (the extents ``[off(i), off(i+1))`` tile the file), so a model range
``[a, a+n)`` is the real byte range ``[off(a), off(a+n))``: a VMA of a whole model
group is a whole 2 MiB extent (a PMD fault can happen), one of part of a group is not.
With ``pmd_order=9`` the mapping is the identity.  File sizes (``file_pages``,
``truncate pages=``) are ``off(pages)``.

CoW fork.  ``init`` gives every file a 2 MiB XFS CoW extent size hint
(FS_IOC_FSSETXATTR with FS_XFLAG_COWEXTSIZE, ``fsx_cowextsize`` = 2 MiB, while the file
is still empty; ``@@I ... cowextsize=2097152`` says so).  A CoW write (a write fault or
pwrite over a shared block) preallocates CoW fork blocks over the hint around it
(xfs_reflink_allocate_cow, xfs_bmap_extsize_align), and what the write does not cover
stays in the CoW fork: a later write there, even to an unshared block or a hole, is a
CoW write.  The model takes the hint to be one model PMD group (daxfuzz/vocab/blockfs.py),
i.e. one real 2 MiB extent; XFS's default, 32 blocks (128 KiB), is a piece of a group
the model's pages cannot express (pages 0..2 of a group are real 4 KiB pages, the last
stands for the rest of the 2 MiB).  A ``kernel repro`` does the same (daxlib.c's
``init``).

Writes.  ``write ino pgoff pages`` is ``pwrite`` of the real range ``span(pgoff, pages)``
(so a write of a group's last model page writes the rest of its 2 MiB) from a heap
buffer, never from a DAX mapping; the helper loops over short writes.  Past the model's
bound (``pgoff + pages > max_file_pages``) it is the model's EINVAL after its ENOENT:
``pwrite INO -1 4096``, which opens the file and which pwrite(2) refuses (a negative
offset).  When the filesystem is unmounted the helper's open() fails with ENOENT, as it
does for truncate and punch (the files are gone from the bare mount point).

Mappings.  ``mmap mm vma ino pgoff pages ...`` is ``mmap SLOT INO OFF LEN PROT SHARED
HUGE MIS SYNC`` with ``(OFF, LEN) = span(pgoff, pages)``: mmap(2) MAP_FIXED at the
slot's window + OFF + MIS (``MIS`` 0, or 4 KiB for ``aligned=0``; see Processes), the
file opened read-write whenever it may be (so a later mprotect can add PROT_WRITE to a
shared mapping).  Past ``max_file_pages`` it is the model's EINVAL after its ENOENT
(unmounted) and EEXIST (slot in use): ``mmap SLOT INO 1 4096 ...``, which the helper
checks as any mmap (open, slot) and mmap(2) refuses for its unaligned offset.  A slot
that still maps anything is EEXIST (the helper's bookkeeping).  The placement of model
page ``i`` in a slot is the window + ``off(i)`` + MIS of the slot's last mmap or mremap.
A slot maps a list of pieces (real address ranges, read back from /proc/self/maps after
each call that may change them); while it maps anything its window holds nothing else,
so the holes between and around the pieces are really unmapped and the kernel answers
for them itself, as for the model's gaps between VMAs (mprotect, msync, madvise ENOMEM;
mremap and GUP EFAULT; a load or store SIGSEGV); a slot that maps nothing is a PROT_NONE
reservation again.  Every command on a slot that maps nothing (munmap, msync, mprotect,
dontneed, mremap's source) is EINVAL from that bookkeeping.

``munmap mm vma`` (``pages=0``) is ``munmap SLOT``: one munmap(2) over the slot's extent
(its first mapped byte to its last), so every piece goes.  ``munmap mm vma pgoff pages``
is ``munmap SLOT OFF LEN``, munmap(2) of ``span(pgoff, pages)`` at the slot's placement
(``errno EINVAL`` past ``max_file_pages``, the model's bound): the kernel splits the VMA
(a PMD mapping across a split point is zapped) and leaves 0, 1 or 2 pieces; a range
with nothing mapped is ``ok``.  ``msync mm vma`` is msync(MS_SYNC) over the slot's
extent: a hole inside it is the kernel's ENOMEM, after it synced the rest.

``mprotect mm vma pgoff pages write`` is ``mprotect SLOT OFF LEN PROT``, mprotect(2) of
``span(pgoff, pages)`` at the slot's placement to PROT_READ, or PROT_READ|PROT_WRITE with
``write=1`` (``errno EINVAL`` past ``max_file_pages``); the kernel's ENOMEM when the range
starts in or meets a hole.  Protections are not bookkept: a store to a read-only piece is
the kernel's SIGSEGV (the helper catches it, as for a hole), a ``write=1`` pin of one
fails its first store (EFAULT).

``mremap mm vma pgoff pages to aligned`` is ``mremap SLOT OFF LEN TO MIS`` with ``TO`` slot
``(mm, to)``: the helper first munmap(2)s everything ``TO`` maps (fine when nothing),
then mremap(2)s ``span(pgoff, pages)`` of the source slot (``old_len == new_len``)
MREMAP_MAYMOVE|MREMAP_FIXED to ``TO``'s window + OFF + MIS (``MIS`` 4 KiB for
``aligned=0``): the placement an ``mmap ... aligned=A`` of that file range into ``TO``
would get, which becomes ``TO``'s placement.  The moved range keeps its file, sharing
and protection (and the slot's MADV_DONTFORK, MADV_NOHUGEPAGE); the source loses it
(split in two, or emptied).  Past ``max_file_pages``, or ``to == vma``, it is ``errno
EINVAL`` (the model's bounds), checked before anything is unmapped, as is a source that
maps nothing (EINVAL, bookkeeping); every other result is the kernel's.  Since Linux
6.17 a move with MREMAP_FIXED and ``old_len == new_len`` may span several VMAs and the
gaps between them (7.2.13 does so for these XFS DAX VMAs, checked in the guest): each
VMA in the range is moved, the gaps kept, so a range over a hole, past the mapping's end
or across an mprotect split is ``ok``; EFAULT only when ``old_address`` is in a hole.
The target's pieces are read back from /proc/self/maps, so a moved gap is a hole of
``TO``.

Faults.  ``fault mm vma pgoff write`` is ``touch SLOT OFF WRITE``: a one-byte load, or
a one-byte store with no load before it (so a store is one write fault, as the model's,
not a read fault then a write-protect fault; and a store to a read-only mapping past
EOF is SIGSEGV, not the load's SIGBUS).  The helper catches SIGBUS and SIGSEGV.

Write from a mapping.  ``write_from mm vma src_pgoff ino pgoff pages`` is pwrite(2) to
``ino`` whose source buffer is slot ``(mm, vma)``'s own DAX mapping at model page
``src_pgoff`` (command ``pwrite_from SLOT INO LAST NSEG [DOFF NIOV SOFF LEN ...] ...``:
one pwritev(2) per segment), so the kernel faults the source pages in during the copy,
as the model's write does after each extent's blocks are in place.  When the source
and destination runs have the same real shape (``off(src_pgoff + k) - off(src_pgoff)
== off(pgoff + k) - off(pgoff)`` for every ``k`` up to ``pages``; always with
``pmd_order=9``) it is one pwritev of ``span(pgoff, pages)``.  Its source is each model
page's first 4 KiB in the mapping and, for a page that stands for the rest of its
2 MiB, the rest from a heap buffer (``SOFF -1``): copied from the mapping, the rest
made a PTE-only source VMA map 509 real pages of one large folio, and the folio's
refcount and large mapcount went up by 509 where the model's one page adds 1 (kernel
fuzz seed 3002, docs/triage/raw-write-from-misaligned-sync-large-mapcount.trace).
Otherwise each model page's first 4 KiB is its own pwrite, in order
(:func:`write_from_segments`), and the model's write_from is then as many one-page
writes (``daxfuzz/vocab/world.py write_from_calls``: an earlier call's copy may read a
source page through a mapping before a later call allocates it); more than 16 is
a ``skip``.  The model's
EFAULT (no VMA in the slot, a source page no VMA of it covers, or the last source page
``src_pgoff + pages - 1`` at or past its file's EOF) is the helper's check before
anything is written: every byte of every piece from the mapping inside the slot's mapped
pieces (the pieces are unions of whole model pages' extents, so that is the model's
cover, holes included), and ``LAST = off(src_pgoff + pages - 1)`` below the source
file's size (stat).  Past ``max_file_pages`` it is ``pwrite INO -1 4096``, as for
``write``: EINVAL, and when unmounted ENOENT (the helper opens ``ino`` first).  It runs in
the process playing ``mm`` (a forked child's worker for a child mm), not in a child of
the helper: the fault must be in that mm.  So it is not timed out; a pwrite cannot wait
for GUP (no layout break for BREAK_WRITE).

Dontneed.  ``dontneed mm vma pgoff pages`` is ``madv SLOT OFF LEN`` with ``(OFF, LEN) =
span(pgoff, pages)``: the helper clips it to the slot's extent (``off`` is monotonic,
so the real intersection is the span of the model's) and calls madvise(MADV_DONTNEED)
on it, which zaps every piece in it and says ENOMEM for a hole inside it (the kernel's);
an empty intersection is ``ok`` without a call, an empty slot ``EINVAL`` (the helper's
bookkeeping, as for ``msync`` and ``munmap``).  Zapping a
model page that is the last of its group zaps the rest of its 2 MiB, and a model range
covering a whole group covers a whole 2 MiB extent, so the kernel's PTE-table reclaim
(CONFIG_PT_RECLAIM) and its split of a partly covered PMD line up with the model's.

Reflink past the model's bound (``dst_pgoff + pages > max_file_pages``, where the model
says EINVAL after breaking both files' layouts and the kernel would grow the file) is
one FICLONERANGE of 4 KiB from ``off(max_file_pages)`` of ``src`` -- past any source
EOF -- which XFS refuses with EINVAL after xfs_ilock2_io_mmap() broke both layouts (so
a pin still blocks it first, as in the model).

Reflink of ranges at different phases in their PMD groups is one FICLONERANGE of 4 KiB
per model page (its first 4 KiB), issued the last page first.  The model's reflink is
all or nothing: EINVAL (after both layout breaks) when ``src_pgoff + pages`` passes the
source's size.  Each call is a whole ioctl, so calls in ascending order would share the
first pages' blocks before a later call fails past EOF (fs/remap_range.c
generic_remap_checks(): ``pos_in >= size_in`` is -EINVAL); the last page's call reaches
furthest (``off`` is monotonic), so issued first it is the one refused, before anything
is shared.  Overlapping ranges of one file are EINVAL in the model, but 4 KiB calls at
different phases never overlap each other: they are one call of ``(off(src_pgoff),
off(dst_pgoff), |off(dst_pgoff) - off(src_pgoff)| + 4 KiB)``, which overlaps itself and
which the kernel refuses (EINVAL, generic_remap_checks()) after xfs_ilock2_io_mmap()
broke the layout, as for exchange.

Exchange.  ``exchange ino1 ino2 pgoff1 pgoff2 pages`` is XFS_IOC_EXCHANGE_RANGE issued on
``ino2``'s fd with ``file1_fd`` ``ino1``'s (both opened read-write), as the command
``exchange INO1 INO2 NSEG OFF1 OFF2 LEN ...``.  When the two model ranges have the same
real shape (``off(pgoff1 + k) - off(pgoff1) == off(pgoff2 + k) - off(pgoff2)`` for every
``k`` up to ``pages``: the same phase in their PMD groups, or no group boundary met
differently; always with ``pmd_order=9``) it is one call over ``span(pgoff1, pages)``
at ``off(pgoff2)`` (a range of whole groups is whole 2 MiB extents), and the kernel's
own checks decide: a range ending past EOF (``off`` is strictly monotonic, so the real
range ends past ``off(size)`` exactly when the model's passes ``size``) or two
overlapping ranges of one file are EINVAL after both layouts are broken, as in the
model.  Otherwise, as for reflink, each model page's first 4 KiB is exchanged by its own
call, the last page first: its call reaches furthest in both files, so a range past EOF
is refused (EINVAL) before anything moved, and a pin blocks the first call's layout
break either way.  Overlapping ranges of one file of different shapes are one call the
kernel refuses: ``(off(pgoff1), off(pgoff2), |off(pgoff2) - off(pgoff1)| + 4 KiB)``
overlaps itself (EINVAL after the layout break).  More than 16 calls is a ``skip``.
The filesystem needs the exchange-range feature (``mkfs.xfs -i exchange=1``, xfsprogs
>= 6.10; without it the call is EOPNOTSUPP): build.py's MKFS_CMD runs sid's mkfs.xfs.

Swapext.  ``swapext ino tmp`` is XFS_IOC_SWAPEXT as xfs_fsr issues it (command
``swapext INO TMP``): ``sx_fdtarget`` ``ino``'s fd, ``sx_fdtmp`` ``tmp``'s (both
read-write), ``sx_offset`` 0, ``sx_length`` ``ino``'s size, ``sx_stat``'s ctime and
mtime from a statx of ``ino`` just before (the kernel's EBUSY check for a file changed
under the defragmenter).  The kernel decides every result: EINVAL for one file twice
(``ip->i_ino == tip->i_ino``), a page cache left after the flush, or ``ino`` with fewer
extents than ``tmp``; EFAULT when the sizes differ.  Model and real extent counts agree
as the block allocator is modelled (2 MiB stripe unit alignment).

Both run in a child of the helper like reflink, so a wait for GUP is reported
``blocked``; when the filesystem is unmounted the helper's open() fails with ENOENT.

Processes.  VMA slot ``(mm, vma)`` is helper slot ``mm * vmas + vma``, a 1 GiB window
of address space that is 2 MiB aligned.  ``aligned=0`` maps 4 KiB past the congruent
address, so only PTEs fit.  Every model ``mm`` nobody forked into is played by the one
helper process (the director); refcounts and mapcounts are per mapping, so this changes
nothing the model observes; only ``memory_failure``'s "who is killed" would differ (and
it is not expressible anyway, see below).  ``fork mm child`` is ``fork MM CHILD VMAS``:
the process playing ``mm`` forks (its slot VMAs lose MADV_DONTFORK for the call) and
the child process plays ``child``, its slots at the parent's addresses (the same
pieces, with their protections); the director
hands each later command naming one of ``child``'s slots to that process and waits for
it, so steps stay in trace order.  ``child == mm`` is ``errno EINVAL`` (the model's);
the helper answers EBUSY from its slot table when ``child`` maps anything, as the model
does.  GUP handles are pipes made before any fork, shared by every process, so a
release drains the page out of the pipe whichever process took it.

GUP.  ``pin``/``get`` (not long-term) hold one page in a pipe via ``vmsplice()``, a
FOLL_GET reference (userspace cannot hold a FOLL_PIN beyond one syscall); with
``write=1`` the page is first stored to, as GUP with FOLL_WRITE faults it writable.
For ``dax_busy_page()`` a get and a pin are alike (``refcount - mapcount != 0``), so
blocking is the same; the 1024 bias is not observable from userspace.  ``unpin``/``put``
drain the pipe.  ``pin longterm=1`` registers an io_uring fixed buffer of the page and
unregisters it (FOLL_PIN | FOLL_WRITE | FOLL_LONGTERM; a result, no handle): the kernel
refuses fs-DAX with EOPNOTSUPP, but GUP-fast pins a writable anonymous copy (ok).
Handle bookkeeping (EEXIST for a busy handle, EINVAL for an empty or wrong-kind one)
is the helper's, as it is the model's.

Multi-page pins.  ``pin_pages mm vma pgoff pages h write`` is ``gupv H SLOT WRITE NSEG
OFF NPAGES ...``: model pages ``pgoff .. pgoff+pages-1`` are the 4 KiB pages at
``off(pgoff+k)``, which are contiguous within a PMD group and 2 MiB apart across one,
so they are ``NSEG`` runs of real pages (one for ``pmd_order=9``); :func:`pin_runs`.
The helper vmsplice()s all the runs in one call into a staging pipe: the kernel's
``iov_iter_get_pages2()`` is a ``get_user_pages_fast()`` of a run's pages at once (up
to 16), so GUP-fast grabs the subpages a PMD maps with one ``try_grab_folio_fast(folio,
refs)``, as the model's pin_user_pages_fast does (a FOLL_GET, not a FOLL_PIN: the bias,
as for ``pin``).  Then each page's pipe buffer is spliced on, whole, to its own handle
pipe ``h+k`` (a pipe-to-pipe move carries the reference, no second GUP), so handles are
released singly (``unpin h=H+1``) or in any sub-range as the model allows.  All or
nothing: a page vmsplice cannot take (the call is retried from it after a short one, to
get its errno) makes the helper drain what it took, and report that errno (EFAULT, as
in the model, for a page outside the VMA, a SIGBUS page or a write to a read-only
mapping; ``write=1`` stores to each page first, as for ``pin``).  ``h + pages >
handles`` is ``errno EINVAL`` here (the model's bound; the helper does not know the
geometry); EEXIST when any of the handles is held is the helper's bookkeeping, checked
after it as the model does.  ``unpin_pages h pages`` is ``release H 1 N``: EINVAL unless
all N pipes hold pins (none drained then), else each is drained.  The kernel's
``unpin_user_pages()`` puts consecutive pages of one folio with one
``gup_put_folio(folio, nr)``; draining the pipes puts each page by itself, which is the
same counts (the model's own note: count for count the per-page release).

Memory failure.  ``memory_failure pfn mm holder`` is ``hwpoison SLOT OFF MM``:
madvise(MADV_HWPOISON) by the process playing ``mm`` at a page where that process maps
``pfn`` (mm/madvise.c madvise_inject_error(): GUP-fast of the page, memory_failure()
with MF_COUNT_INCREASED, whose put_ref_page() drops that reference first, then
memory_failure_dev_pagemap(), which asks the pmem holder, XFS's
xfs_dax_notify_failure(), first).  The filesystem decides the path, so a program has
one kind: without the reverse-mapping btree (MKFS_CMD, rmapbt=0) the holder answers
-EOPNOTSUPP and the kernel takes the generic path, mf_generic_kill_procs(): the model's
``holder=0``.  A trace with a ``holder=1`` step gets a filesystem with it (the program's
first lines hold build.FS_RMAPBT_LINE and ``init ... 1``, which the guest's /init and
daxop check): the holder queries the rmap btree and calls mf_dax_kill_procs() for every
file owning the block: the model's ``holder=1``; its ``holder=0`` steps are then not
expressible.  The address is found on the port before the step
(:func:`memory_failure_lines`: the first slot of ``mm``, by slot and file page, whose
PTE or PMD maps ``pfn``); the signal current gets (BUS_MCEERR_AR) is the helper's
``killed=MM``, compared with the model's ``killed=``.  Not expressible, and reported
``skip`` with the reason: a step of the other kind than its trace's filesystem; a
``pfn`` that ``mm`` does not map (GUP would fault in, and poison, whatever page is
there); and an ``mm`` that shares the director with another model mm whose VMA covers
the folio's index in its file, or with holder=1 an owner's index in its file
(collect_procs_fsdax() walks current->mm's VMAs: it would see both).  The
HWPoison flag a DAX page keeps for the rest of the boot is read by nothing fs/dax.c,
GUP or the fault path do (DAX faults return VM_FAULT_NOPAGE before __do_fault()'s
PageHWPoison test; memory_failure_dev_pagemap() does not test it), so such a program
does not end its boot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daxfuzz.errors import InputError
from daxfuzz.guest.build import FS_RMAPBT_LINE
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.ops import (
    Dontneed,
    Exchange,
    Fault,
    Fork,
    Get,
    MemoryFailure,
    Mmap,
    Mount,
    Mprotect,
    Mremap,
    Msync,
    Munmap,
    Op,
    Pin,
    PinPages,
    Punch,
    Put,
    Reflink,
    Swapext,
    Truncate,
    Unmount,
    Unpin,
    UnpinPages,
    Write,
    WriteFrom,
)
from daxfuzz.vocab.trace import Trace

PAGE = 4096
PMD = 2 << 20
#: the XFS CoW extent size hint every file gets (see "CoW fork" in the docstring)
COWEXTSIZE = PMD
MAX_SLOTS = 64  # daxop.c MAXSLOTS
MAX_HANDLES = 64  # daxop.c MAXH
MAX_SEGS = 16  # daxop.c segments per reflink
PROT_READ, PROT_WRITE = 1, 2
KIND_PIN, KIND_GET = 1, 2

MEMORY_FAILURE_WHY = ("memory_failure not expressible without the state before it: "
                      "MADV_HWPOISON poisons the page current maps at an address")
HOLDER_WHY = ("memory_failure holder={holder} not expressible in a trace whose other "
              "memory_failure steps need holder={other}: the guest's filesystem, {fs}, decides "
              "the path for the whole program")


def wants_rmapbt(ops) -> bool:
    """True when the program of `ops` runs on a filesystem with the reverse-mapping btree:
    its first memory_failure asks for the holder path (holder=1)."""
    for op in ops:
        if isinstance(op, MemoryFailure):
            return bool(op.holder)
    return False


def off(g: Geometry, i: int) -> int:
    """Real byte offset of model page `i` (see the module docstring)."""
    return (i >> g.pmd_order) * PMD + (i & g.pmd_colour) * PAGE


def span(g: Geometry, first: int, n: int) -> tuple[int, int]:
    """(offset, length) of model pages [first, first+n)."""
    a = off(g, first)
    return a, off(g, first + n) - a


@dataclass
class Program:
    """A guest program: its text and the steps that are not expressible."""

    text: str
    steps: int
    skipped: dict[int, str] = field(default_factory=dict)


def reflink_segments(g: Geometry, op: Reflink) -> list[tuple[int, int, int]]:
    """FICLONERANGE segments (src_off, dst_off, len) for a model reflink."""
    if (op.src_pgoff & g.pmd_colour) == (op.dst_pgoff & g.pmd_colour):
        s, n = span(g, op.src_pgoff, op.pages)
        d, _ = span(g, op.dst_pgoff, op.pages)
        return [(s, d, n)]
    s, d = op.src_pgoff, op.dst_pgoff
    if op.src == op.dst and d + op.pages > s and s + op.pages > d:
        # overlapping in one file: one call that overlaps itself (EINVAL, as the model)
        return [(off(g, s), off(g, d), abs(off(g, d) - off(g, s)) + PAGE)]
    # different phases in the group: clone each model page's first 4 KiB, the last page
    # first, so that a range past the source's EOF is refused before anything is shared
    return [(off(g, s + k), off(g, d + k), PAGE) for k in reversed(range(op.pages))]


def exchange_segments(g: Geometry, op: Exchange) -> list[tuple[int, int, int]]:
    """XFS_IOC_EXCHANGE_RANGE calls (file1_offset, file2_offset, length), in the order
    they are issued, for a model exchange (see the module docstring)."""
    p1, p2, n = op.pgoff1, op.pgoff2, op.pages
    o1, o2 = off(g, p1), off(g, p2)
    if all(off(g, p1 + k) - o1 == off(g, p2 + k) - o2 for k in range(1, n + 1)):
        return [(o1, o2, off(g, p1 + n) - o1)]  # the same real shape: one call
    if op.ino1 == op.ino2 and p2 + n > p1 and p1 + n > p2:
        # overlapping in one file: one call that overlaps itself, which the kernel
        # refuses (EINVAL) after breaking the layout, as the model does
        return [(o1, o2, abs(o2 - o1) + PAGE)]
    # different shapes: each model page's first 4 KiB, the last page first
    return [(off(g, p1 + k), off(g, p2 + k), PAGE) for k in reversed(range(n))]


#: a pwrite_from segment: (destination offset, [(source offset in the mapping or -1 for
#: the heap, length)...]), one pwritev(2)
Segment = tuple[int, list[tuple[int, int]]]
MAX_IOV = 32  # daxlib.c MAXIOV: pieces per segment


def write_from_segments(g: Geometry, op: WriteFrom) -> list[Segment]:
    """pwritev calls for a model write_from, in the order they are issued (see the module
    docstring): the destination offset and the source pieces of each.  Only each model
    page's first 4 KiB comes from the mapping; the rest of a page that stands for more
    (a group's last) comes from a heap buffer, so the copy faults in what the model's
    does: its PTE faults map one real page per model page, as the model's map one."""
    s, p, n = op.src_pgoff, op.pgoff, op.pages
    so, po = off(g, s), off(g, p)
    if all(off(g, s + k) - so == off(g, p + k) - po for k in range(1, n + 1)):
        pieces: list[tuple[int, int]] = []
        for k in range(n):  # the same real shape: one call
            a, end = off(g, s + k), off(g, s + k + 1)
            if pieces and pieces[-1][0] >= 0 and sum(pieces[-1]) == a:
                pieces[-1] = (pieces[-1][0], pieces[-1][1] + PAGE)
            else:
                pieces.append((a, PAGE))
            if end - a > PAGE:
                pieces.append((-1, end - a - PAGE))
        return [(po, pieces)]
    return [(off(g, p + k), [(off(g, s + k), PAGE)]) for k in range(n)]


def pin_runs(g: Geometry, first: int, n: int) -> list[tuple[int, int]]:
    """(file offset, pages) of the runs of real 4 KiB pages that model pages
    [first, first+n) pin: consecutive model pages are 4 KiB apart within a PMD group."""
    runs: list[tuple[int, int]] = []
    for i in range(first, first + n):
        o = off(g, i)
        if runs and runs[-1][0] + runs[-1][1] * PAGE == o:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((o, 1))
    return runs


def op_lines(g: Geometry, op: Op) -> tuple[list[str], str | None]:
    """Helper commands for one op, and a reason when it is not expressible."""
    if isinstance(op, Mmap | Fault | Msync | Munmap | Dontneed | Pin | Get | PinPages
                  | Mprotect | Mremap):
        slot = op.mm * g.vmas + op.vma
    if isinstance(op, Mmap):
        o, n = span(g, op.pgoff, op.pages)
        prot = PROT_READ | (PROT_WRITE if op.write else 0)
        if op.pgoff + op.pages > g.max_file_pages:
            # the model's bound, after its ENOENT (unmounted) and EEXIST (slot in use):
            # the helper checks those, then mmap(2) at an unaligned offset is EINVAL
            return [f"mmap {slot} {op.ino} 1 {PAGE} {prot} {op.shared} {op.huge} 0 0"], None
        mis = 0 if op.aligned else PAGE
        return [f"mmap {slot} {op.ino} {o} {n} {prot} {op.shared} {op.huge} {mis} "
                f"{op.sync}"], None
    if isinstance(op, Munmap):
        if not op.pages:
            return [f"munmap {slot}"], None  # everything the slot maps
        if op.pgoff + op.pages > g.max_file_pages:
            return ["errno EINVAL"], None  # the model's bound, as for mmap
        o, n = span(g, op.pgoff, op.pages)
        return [f"munmap {slot} {o} {n}"], None
    if isinstance(op, Mprotect):
        if op.pgoff + op.pages > g.max_file_pages:
            return ["errno EINVAL"], None  # the model's bound, as for mmap
        o, n = span(g, op.pgoff, op.pages)
        prot = PROT_READ | (PROT_WRITE if op.write else 0)
        return [f"mprotect {slot} {o} {n} {prot}"], None
    if isinstance(op, Mremap):
        if op.pgoff + op.pages > g.max_file_pages or op.to == op.vma:
            return ["errno EINVAL"], None  # the model's bounds
        o, n = span(g, op.pgoff, op.pages)
        mis = 0 if op.aligned else PAGE
        return [f"mremap {slot} {o} {n} {op.mm * g.vmas + op.to} {mis}"], None
    if isinstance(op, Msync):
        return [f"msync {slot}"], None
    if isinstance(op, Dontneed):
        o, n = span(g, op.pgoff, op.pages)
        return [f"madv {slot} {o} {n}"], None  # the helper clips it to the slot's VMA
    if isinstance(op, Fault):
        return [f"touch {slot} {off(g, op.pgoff)} {op.write}"], None
    if isinstance(op, Pin | Get):
        if isinstance(op, Pin) and op.longterm:
            return [f"gupl {slot} {off(g, op.pgoff)}"], None
        kind = KIND_PIN if isinstance(op, Pin) else KIND_GET
        return [f"gup {op.h} {slot} {off(g, op.pgoff)} {op.write} {kind}"], None
    if isinstance(op, PinPages):
        if op.h + op.pages > g.handles:
            return ["errno EINVAL"], None  # the model's bound on the handles
        runs = pin_runs(g, op.pgoff, op.pages)
        flat = " ".join(f"{o} {n}" for o, n in runs)
        return [f"gupv {op.h} {slot} {op.write} {len(runs)} {flat}"], None
    if isinstance(op, UnpinPages):
        return [f"release {op.h} {KIND_PIN} {op.pages}"], None
    if isinstance(op, Unpin):
        return [f"release {op.h} {KIND_PIN}"], None
    if isinstance(op, Put):
        return [f"release {op.h} {KIND_GET}"], None
    if isinstance(op, Truncate):
        return [f"truncate {op.ino} {off(g, op.pages)}"], None
    if isinstance(op, Punch):
        o, n = span(g, op.pgoff, op.pages)
        return [f"punch {op.ino} {o} {n}"], None
    if isinstance(op, Write):
        if op.pgoff + op.pages > g.max_file_pages:
            # the model's bound, after its ENOENT (unmounted): the helper opens the file,
            # then pwrite(2) at a negative offset is the kernel's EINVAL
            return [f"pwrite {op.ino} -1 {PAGE}"], None
        o, n = span(g, op.pgoff, op.pages)
        return [f"pwrite {op.ino} {o} {n}"], None
    if isinstance(op, WriteFrom):
        if op.pgoff + op.pages > g.max_file_pages:
            # the model's bound, after its ENOENT, as for write: `errno EINVAL` here
            # would not open the file and so hide an unmount's ENOENT
            return [f"pwrite {op.ino} -1 {PAGE}"], None
        segs = write_from_segments(g, op)
        if len(segs) > MAX_SEGS:
            return [f"skip write_from of {op.pages} pages of different shapes needs "
                    f"{len(segs)} calls (max {MAX_SEGS})"], "too many segments"
        if len(segs[0][1]) > MAX_IOV:
            return [f"skip write_from of {op.pages} pages needs {len(segs[0][1])} source "
                    f"pieces (max {MAX_IOV})"], "too many segments"
        slot = op.mm * g.vmas + op.vma
        flat = " ".join(f"{d} {len(ps)} " + " ".join(f"{a} {n}" for a, n in ps)
                        for d, ps in segs)
        last = off(g, op.src_pgoff + op.pages - 1)
        return [f"pwrite_from {slot} {op.ino} {last} {len(segs)} {flat}"], None
    if isinstance(op, Reflink):
        if op.dst_pgoff + op.pages > g.max_file_pages:
            # the model's bound, checked after both layouts are broken: a clone from past
            # the source's EOF, which the kernel refuses (EINVAL) after breaking them
            return [f"reflink {op.src} {op.dst} 1 {off(g, g.max_file_pages)} "
                    f"{off(g, op.dst_pgoff)} {PAGE}"], None
        segs = reflink_segments(g, op)
        if len(segs) > MAX_SEGS:
            return [f"skip reflink of {op.pages} pages at different phases needs "
                    f"{len(segs)} segments (max {MAX_SEGS})"], "too many segments"
        flat = " ".join(f"{s} {d} {n}" for s, d, n in segs)
        return [f"reflink {op.src} {op.dst} {len(segs)} {flat}"], None
    if isinstance(op, Exchange):
        segs = exchange_segments(g, op)
        if len(segs) > MAX_SEGS:
            return [f"skip exchange of {op.pages} pages of different shapes needs "
                    f"{len(segs)} calls (max {MAX_SEGS})"], "too many segments"
        flat = " ".join(f"{a} {b} {n}" for a, b, n in segs)
        return [f"exchange {op.ino1} {op.ino2} {len(segs)} {flat}"], None
    if isinstance(op, Swapext):
        return [f"swapext {op.ino} {op.tmp}"], None  # every result is the kernel's
    if isinstance(op, Fork):
        if op.child == op.mm:
            return ["errno EINVAL"], None  # the model's: a process cannot fork into itself
        return [f"fork {op.mm} {op.child} {g.vmas}"], None
    if isinstance(op, Unmount):
        return ["umount"], None
    if isinstance(op, Mount):
        return ["mount"], None
    if isinstance(op, MemoryFailure):
        return [f"skip {MEMORY_FAILURE_WHY}"], MEMORY_FAILURE_WHY
    return [f"skip op {op.name} has no guest translation"], f"no translation for {op.name}"


def mapped_pfns(t, g: Geometry, mm: int) -> dict[int, tuple[int, int]]:
    """Device pfn -> (slot, file page) of its first mapping in `mm` on the port `t`, by
    slot and file page: where a PTE or a PMD of `mm` maps it.  Not the (huge) zero page
    of a hole nor an anonymous copy: MADV_HWPOISON there poisons a RAM page (memory
    failure of the huge zero folio: "unhandlable page", and it stays poisoned)."""
    mmst = t.mms[mm]
    npages = len(t.pages)
    out: dict[int, tuple[int, int]] = {}
    for slot in sorted(mmst.vmas):
        for vma in mmst.vmas[slot]:
            for idx in range(vma.pgoff, vma.pgoff + vma.pages):
                va = vma.vaddr(idx)
                pmd = mmst.pmd.get(va >> g.pmd_order)
                if pmd is not None:
                    head = pmd[0]
                    here = head + (va & g.pmd_colour) if 0 <= head < npages else -1
                else:
                    here = mmst.pte.get(va, (-1, False))[0]
                if 0 <= here < npages:
                    out.setdefault(here, (slot, idx))
    return out


def memory_failure_lines(t, g: Geometry, op: MemoryFailure, workers: set[int],
                         rmapbt: bool = False) -> tuple[list[str], str | None]:
    """The helper command for `op` on the port `t` in the state before it, or a skip
    and why (see "Memory failure" in the module docstring).  `workers`: the model mms
    a fork gave a process of their own; the director plays every other one.  `rmapbt`:
    the program's filesystem has the reverse map (:func:`wants_rmapbt`)."""
    if bool(op.holder) != rmapbt:
        why = HOLDER_WHY.format(holder=op.holder, other=int(rmapbt),
                                fs="rmapbt=1" if rmapbt else "rmapbt=0")
        return [f"skip {why}"], why
    if not 0 <= op.pfn < len(t.pages) or not 0 <= op.mm < len(t.mms):
        why = f"memory_failure of pfn {op.pfn} in mm {op.mm}: outside the geometry"
        return [f"skip {why}"], why
    site = mapped_pfns(t, g, op.mm).get(op.pfn)
    if site is None:
        why = (f"memory_failure of pfn {op.pfn}: mm {op.mm} does not map it (MADV_HWPOISON "
               "poisons the page at an address of current)")
        return [f"skip {why}"], why
    folio = t.page_folio(t.pages[op.pfn])
    if op.holder:  # mf_dax_kill_procs() per rmap owner of the block
        places = list(t.fs.owners(op.pfn))
    else:  # mf_generic_kill_procs(): folio->mapping and ->index
        places = [(folio.mapping, folio.index)] if isinstance(folio.mapping, int) else []
    if op.mm not in workers:
        for other, st in enumerate(t.mms):
            if other == op.mm or other in workers:
                continue
            if any(ino >= 0 and v.ino == ino and v.covers(idx)
                   for ino, idx in places for v in st.each_vma()):
                why = (f"memory_failure with mm {op.mm} current: mm {other} maps the page's "
                       "file at its index and is played by the same guest process, whose "
                       "VMAs collect_procs() would see too")
                return [f"skip {why}"], why
    slot, idx = site
    return [f"hwpoison {op.mm * g.vmas + slot} {off(g, idx)} {op.mm}"], None


def step_tracking_workers(r, op: Op, workers: set[int]) -> None:
    """Step the runner `r` by `op`; a fork that succeeded gives its child a guest process
    of its own (daxop's worker), so the child mm joins `workers`."""
    r.step(op)
    if isinstance(op, Fork) and r.last_result == "ok":
        workers.add(op.child)


def stateful_lines(trace: Trace, target: str | None = None
                   ) -> dict[int, tuple[list[str], str | None]]:
    """The lines of each step whose translation depends on the state before it (today
    memory_failure), by step number, from `target`'s port (the trace's own target when
    None) replaying the trace."""
    if not any(isinstance(op, MemoryFailure) for op in trace.ops):
        return {}
    from daxfuzz.core.runner import Runner

    g = trace.geometry
    r = Runner(target or trace.target or "7.2", g)
    workers: set[int] = set()
    rmapbt = wants_rmapbt(trace.ops)
    out: dict[int, tuple[list[str], str | None]] = {}
    for i, op in enumerate(trace.ops, 1):
        if isinstance(op, MemoryFailure):
            out[i] = memory_failure_lines(r.t, g, op, workers, rmapbt)
        step_tracking_workers(r, op, workers)
    return out


def unexpressible(trace: Trace, target: str | None = None) -> dict[int, str]:
    """Step number -> why, for every step of `trace` the guest cannot express."""
    state = stateful_lines(trace, target)
    out = {}
    for i, op in enumerate(trace.ops, 1):
        why = state[i][1] if i in state else op_lines(trace.geometry, op)[1]
        if why:
            out[i] = why
    return out


def check_geometry(g: Geometry, path: str = "<trace>") -> None:
    if g.mms * g.vmas > MAX_SLOTS:
        raise InputError(f"geometry mms*vmas={g.mms * g.vmas}: the guest helper has "
                         f"{MAX_SLOTS} VMA slots", path=path)
    if g.handles > MAX_HANDLES:
        raise InputError(f"geometry handles={g.handles}: the guest helper has {MAX_HANDLES}",
                         path=path)
    if off(g, g.max_file_pages) > 256 << 20:
        raise InputError("geometry max_file_pages maps to more than 256 MiB per file "
                         "(pmem in the guest is 1 GiB)", path=path)


def translate(trace: Trace, path: str = "<trace>", target: str | None = None) -> Program:
    """The guest program for `trace` (steps numbered from 1, as replay numbers them);
    `target`'s port (the trace's target when None) places its memory failures."""
    g = trace.geometry
    check_geometry(g, path)
    rmapbt = wants_rmapbt(trace.ops)
    lines = [f"# daxfuzz guest program: {path}"]
    if rmapbt:  # the guest's /init makes the filesystem with the reverse map; init checks
        lines += [FS_RMAPBT_LINE, f"init {g.inodes} {off(g, g.file_pages)} {COWEXTSIZE} 1"]
    else:
        lines.append(f"init {g.inodes} {off(g, g.file_pages)} {COWEXTSIZE}")
    skipped: dict[int, str] = {}
    state = stateful_lines(trace, target)
    for i, op in enumerate(trace.ops, 1):
        cmds, why = state[i] if i in state else op_lines(g, op)
        lines.append(f"step {i}")
        lines.extend(cmds)
        if why:
            skipped[i] = why
    return Program("\n".join(lines) + "\n", len(trace.ops), skipped)
