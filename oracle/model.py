"""The oracle's world and the meaning of every operation.

Facts kept (all plain sets, dicts and per-PFN counts):

- processes: VMAs, PTEs and huge PMDs (what each virtual page reaches), PTE tables;
- GUP handles: which PFN each live handle holds, pin or get;
- address spaces: per inode, the DAX entries by file index: empty, zero or real
  (a PFN), PTE- or PMD-sized, dirty or clean;
- the filesystem's blocks (its own `BlockFS`): which file pages own which PFN;
- folios: which PFNs form one PMD folio, how many address-space entries reference
  each folio, its single owner (inode, index) or "shared" (two or more owners
  at once; it stays shared until the last entry goes).

Rules are written from what the kernel is meant to do (KERNEL.md), not from how it
counts: e.g. "a truncate unmaps the whole file, then waits for the first entry whose
folio a GUP handle holds", "a fault on a shared (reflinked) extent first unmaps that
file page everywhere".  The decisions a kernel makes about *structure* (PMD or PTE
fallback, zero pages, copy-on-write) are the kernel's documented ones, so that the
counters a target shows can be checked against facts that mean something.
"""

from __future__ import annotations

from daxfuzz.vocab import ops as O
from daxfuzz.vocab.blockfs import HOLE, BlockFS
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.rules import Rules
from daxfuzz.vocab.world import (
    ANON,
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOENT,
    ENOMEM,
    ENOSPC,
    ENOTTY,
    ENTRY_PMD,
    ENTRY_SHIFT,
    EOPNOTSUPP,
    HUGE_ZERO,
    OK,
    SIGBUS,
    SIGSEGV,
    ZERO_PFN,
    MMState,
    Vma,
    blocked,
    buffer_readable,
    entry_code,
    entry_kind,
    make_vma,
    write_from_calls,
)

# Entry kinds (the canonical form shared with the runner's view of a target).
REAL, ZERO, EMPTY = "real", "zero", "empty"
FALLBACK = object()


class Blocked(Exception):
    def __init__(self, pfn: int) -> None:
        super().__init__(pfn)
        self.pfn = pfn


class Oracle:
    """The reference model.  `apply(op)` returns the op's result string."""

    def __init__(self, g: Geometry, rules: Rules = Rules()) -> None:
        self.g = g
        self.rules = rules
        self.nr = g.pmd_nr
        self.colour = g.pmd_colour
        self.order = g.pmd_order
        self.fs = BlockFS(g)
        self.mms = [MMState() for _ in range(g.mms)]
        # per inode: slot base -> (slot order, entry code); see daxfuzz.vocab.world.entry_code
        self.entries: list[dict[int, tuple[int, int]]] = [{} for _ in range(g.inodes)]
        self.dirty: list[set[int]] = [set() for _ in range(g.inodes)]
        self.handles: dict[int, tuple[int, str]] = {}
        self.mounted = True
        # an unmount that waits: the mount has left the namespace already (no path
        # reaches the files: ENOENT), the superblock is still being torn down
        self.detached = False
        self.holder = True
        n = g.pages
        self.pte_maps = [0] * n  # PTEs reaching each pfn
        self.pmd_maps = [0] * n  # huge PMDs whose head is each pfn
        self.gets = [0] * n  # FOLL_GET handles on each pfn
        self.pins = [0] * n  # FOLL_PIN handles on each pfn
        self.head = list(range(n))  # pfn -> first pfn of its folio
        self.forder = [0] * n  # folio order, at the head
        self.assoc = [0] * n  # address-space entries referencing the folio, at the head
        self.owner: list[tuple[int, int] | None] = [None] * n  # sole owner, at the head
        self.shared: set[int] = set()  # heads of folios in shared mode
        # per page (legacy per-page association): entries covering each pfn, the sole
        # owner (ino, index) of each page, and pages associated through a shared extent
        self.page_assoc = [0] * n
        self.page_owner: list[tuple[int, int] | None] = [None] * n
        self.page_cow: set[int] = set()
        self.changed: set[int] = set()  # pfns whose facts changed in this op
        self.killed: set[int] = set()

    # ================================================================ op dispatch ====
    def apply(self, op: O.Op) -> str:
        self.changed.clear()
        self.killed.clear()
        try:
            return getattr(self, self._dispatch[type(op)])(op)
        except Blocked as b:
            return blocked(b.pfn)

    # ============================================================ folio facts ====
    def folio_pfns(self, head: int) -> range:
        return range(head, head + (1 << self.forder[head]))

    def gup_refs(self, head: int) -> int:
        return sum(self.gets[p] + self.pins[p] for p in self.folio_pfns(head))

    def _touch_folio(self, head: int) -> None:
        self.changed.update(self.folio_pfns(head))

    def _associate(self, ino: int, base: int, eorder: int, pfn: int, shared: bool) -> None:
        """An address-space entry now references `pfn`'s folio."""
        for i in range(1 << eorder):
            p = pfn + i
            self.page_assoc[p] += 1
            if shared or p in self.page_cow:
                self.page_cow.add(p)
                self.page_owner[p] = None
            else:
                self.page_owner[p] = (ino, base + i)
        h = self.head[pfn]
        if self.assoc[h]:
            # a second owner: the folio is shared until its last entry goes
            self.shared.add(h)
            self.owner[h] = None
        else:
            if eorder and self.forder[h] == 0:
                # the first association of a PMD entry builds the PMD folio
                for p in range(pfn, pfn + (1 << eorder)):
                    self.changed.add(p)
                    if self.head[p] != p or self.forder[p]:
                        self._split(self.head[p])
                    self.head[p] = pfn
                self.forder[pfn] = eorder
                self.assoc[pfn] = sum(self.assoc[p] for p in range(pfn + 1, pfn + (1 << eorder)))
                for p in range(pfn + 1, pfn + (1 << eorder)):
                    self.assoc[p] = 0
                h = pfn
                if self.assoc[h]:
                    self.shared.add(h)
            if h not in self.shared:
                self.owner[h] = (ino, base)
        self.assoc[h] += 1
        self._touch_folio(h)

    def _disassociate(self, pfn: int, eorder: int) -> None:
        """An address-space entry no longer references `pfn`'s folio."""
        for p in range(pfn, pfn + (1 << eorder)):
            self.page_assoc[p] -= 1
            self.changed.add(p)
            if not self.page_assoc[p]:
                self.page_owner[p] = None
                self.page_cow.discard(p)
        h = self.head[pfn]
        self._touch_folio(h)
        self.assoc[h] -= 1
        if self.assoc[h] == 0:
            self.shared.discard(h)
            self.owner[h] = None
            self._split(h)

    def _split(self, h: int) -> None:
        """A folio with no entry left is order-0 pages again."""
        for p in self.folio_pfns(h):
            self.head[p] = p
            self.changed.add(p)
        self.forder[h] = 0

    # ============================================================ page tables ====
    def _set_pte(self, mm: int, va: int, pfn: int, w: bool) -> None:
        mmst = self.mms[mm]
        old = mmst.pte.get(va)
        if old is not None and old[0] >= 0:
            self.pte_maps[old[0]] -= 1
            self.changed.add(old[0])
        mmst.pte[va] = (pfn, w)
        mmst.tables.add(va >> self.order)
        if pfn >= 0:
            self.pte_maps[pfn] += 1
            self.changed.add(pfn)

    def _clear_pte(self, mm: int, va: int) -> None:
        pfn, _w = self.mms[mm].pte.pop(va)
        if pfn >= 0:
            self.pte_maps[pfn] -= 1
            self.changed.add(pfn)

    def _set_pmd(self, mm: int, slot: int, pfn: int, w: bool) -> None:
        self.mms[mm].pmd[slot] = (pfn, w)
        if pfn >= 0:
            self.pmd_maps[pfn] += 1
            self.changed.add(pfn)

    def _clear_pmd(self, mm: int, slot: int) -> None:
        pfn, _w = self.mms[mm].pmd.pop(slot)
        if pfn >= 0:
            self.pmd_maps[pfn] -= 1
            self.changed.add(pfn)

    def _unmap_vma_range(self, mm: int, vma: Vma, first: int, last: int,
                         even_cows: bool) -> None:
        """Remove what file pages [first, last] of `vma` reach; a huge PMD touching the
        range goes whole; private COW copies stay unless `even_cows`."""
        lo, hi = max(first, vma.pgoff), min(last, vma.pgoff + vma.pages - 1)
        if lo > hi:
            return
        mmst = self.mms[mm]
        va_lo, va_hi = vma.vaddr(lo), vma.vaddr(hi)
        for slot in range(va_lo >> self.order, (va_hi >> self.order) + 1):
            if slot in mmst.pmd:
                self._clear_pmd(mm, slot)
        for va in range(va_lo, va_hi + 1):
            pte = mmst.pte.get(va)
            if pte is not None and (pte[0] != ANON or even_cows):
                self._clear_pte(mm, va)

    def _unmap_file(self, ino: int, first: int, last: int, even_cows: bool = False) -> None:
        """Unmap file pages [first, last] of `ino` from every process."""
        for mm, mmst in enumerate(self.mms):
            for vmas in list(mmst.vmas.values()):
                for vma in vmas:
                    if vma.ino == ino:
                        self._unmap_vma_range(mm, vma, first, last, even_cows)

    # ================================================================ entries ====
    def _load(self, ino: int, idx: int) -> tuple[int, tuple[int, int, str, int]] | None:
        """(slot base, (slot order, entry order, kind, pfn)) holding file page `idx`."""
        es = self.entries[ino]
        e = es.get(idx)
        b = idx
        if e is None:
            b = idx & ~self.colour
            e = es.get(b)
            if e is None or not e[0]:
                return None
        return b, self._unpack(e)

    def _unpack(self, e: tuple[int, int]) -> tuple[int, int, str, int]:
        tie, code = e
        return tie, self.order if code & ENTRY_PMD else 0, entry_kind(code), code >> ENTRY_SHIFT

    def _store(self, ino: int, base: int, tie: int, eorder: int, kind: str, pfn: int) -> None:
        self.entries[ino][base] = (tie, entry_code(kind, bool(eorder), pfn))

    def _drop_entry(self, ino: int, base: int) -> None:
        _to, eo, kind, pfn = self._unpack(self.entries[ino].pop(base))
        self.dirty[ino].discard(base)
        if kind == REAL:
            self._disassociate(pfn, eo)

    def _delete_entries(self, ino: int, first: int = 0, last: int = 1 << 62) -> None:
        for base in sorted(self.entries[ino]):
            tie = self.entries[ino][base][0]
            if base <= last and base + (1 << tie) - 1 >= first:
                self._drop_entry(ino, base)

    def _drop_page_cache(self, ino: int, first: int, last: int) -> None:
        """The file pages [first, last] map nothing (private copies aside) and have no
        entry any more."""
        self._unmap_file(ino, first, last)
        self._delete_entries(ino, first, last)

    def _insert_entry(self, ino: int, base: int, eorder: int, kind: str, pfn: int,
                      shared: bool, write: bool) -> tuple[int, int, str, int]:
        """A fault found `pfn` (or a zero page) for the entry at `base`.  A zero or
        empty entry is replaced, a real one is kept -- unless the extent is shared:
        then the old entry (and every mapping of it) is replaced."""
        # the fault's entry (empty at least) is at `base`: _load is not None
        tb, old = self._load(ino, base)  # type: ignore[misc]
        if shared or (old[2] == ZERO and kind != ZERO):
            if old[1]:
                self._unmap_file(ino, tb, tb + self.nr - 1)
            else:
                self._unmap_file(ino, base, base)
        if shared or old[2] in (ZERO, EMPTY):
            if old[2] == REAL:
                self._disassociate(old[3], old[1])
            if old[0] > eorder and not self.rules.pte_entry_keeps_pmd_slot:
                del self.entries[ino][tb]  # the PMD join undone: a slot of its own
                self.dirty[ino].discard(tb)
                tb = base
                new = (0, eorder, kind, pfn)
            else:
                new = (old[0], eorder, kind, pfn)  # the slot keeps its size
            self._store(ino, tb, *new)
            if kind == REAL:
                self._associate(ino, base, eorder, pfn, shared)
            cur = new
        else:
            cur = old
        if write:
            self.dirty[ino].add(tb)
        return cur

    def _grab_pte_entry(self, ino: int, idx: int) -> None:
        """Make sure an entry covers `idx`: a zero/empty PMD entry is torn down (its
        zero PMD unmapped), a real PMD entry stays; else a new empty PTE entry."""
        got = self._load(ino, idx)
        if got is not None:
            base, e = got
            if not e[1] or e[2] == REAL:
                return
            if e[2] == ZERO:
                self._unmap_file(ino, base, base + self.nr - 1)
            self._drop_entry(ino, base)
        self._store(ino, idx, 0, 0, EMPTY, 0)

    def _grab_pmd_entry(self, ino: int, base: int) -> bool:
        """A PMD entry for [base, base+nr): False if a PTE-sized entry is in the way."""
        es = self.entries[ino]
        for i in range(base, base + self.nr):
            e = es.get(i)
            if e is not None and (not e[1] & ENTRY_PMD or i != base):
                return False
        if base not in es:
            self._store(ino, base, self.order, self.order, EMPTY, 0)
        return True

    # ================================================================= faults ====
    def _access(self, mm: int, vma: Vma, idx: int, write: bool) -> str:
        """A user load/store of file page `idx` through `vma`."""
        if write and not vma.write:
            return SIGSEGV
        mmst = self.mms[mm]
        va = vma.vaddr(idx)
        slot = va >> self.order
        pmd = mmst.pmd.get(slot)
        if pmd is not None:
            if not write or pmd[1]:
                return OK
            if vma.shared:
                r = self._pmd_fault(mm, vma, idx, True)
                if r is not FALLBACK:
                    return r
            if slot in mmst.pmd:
                self._clear_pmd(mm, slot)  # split: for a file VMA, the PMD is zapped
        elif slot not in mmst.tables and vma.huge:
            r = self._pmd_fault(mm, vma, idx, write)
            if r is not FALLBACK:
                return r
        pte = mmst.pte.get(va)
        if pte is not None:
            if not write or pte[1]:
                return OK
            if pte[0] == ANON:
                mmst.pte[va] = (ANON, True)
                return OK
            if vma.shared:
                return self._pte_fault(mm, vma, idx, True)  # pfn_mkwrite: a write fault
            self._set_pte(mm, va, ANON, True)  # copy-on-write of a private mapping
            mmst.anon.add(vma.start)
            return OK
        if write and not vma.shared:
            return self._cow_fault(mm, vma, idx)
        return self._pte_fault(mm, vma, idx, write)

    def _cow_fault(self, mm: int, vma: Vma, idx: int) -> str:
        """Private write with no PTE: copy the file page into a new anon page."""
        if idx >= self.fs.size[vma.ino]:
            return SIGBUS
        self._grab_pte_entry(vma.ino, idx)
        self._set_pte(mm, vma.vaddr(idx), ANON, True)
        self.mms[mm].anon.add(vma.start)
        return OK

    def _pte_fault(self, mm: int, vma: Vma, idx: int, write: bool) -> str:
        ino = vma.ino
        if idx >= self.fs.size[ino]:
            return SIGBUS
        self._grab_pte_entry(ino, idx)
        va = vma.vaddr(idx)
        if write:
            # a PTE fault writes 4 KiB: of a group's last page, which stands for the
            # rest of its 2 MiB, only the first 4 KiB get a block (not `whole`)
            pfn, _n, shared, _freed = self.fs.iomap_write(ino, idx, 1, False)
            if pfn == HOLE:
                return SIGBUS  # ENOSPC
        else:
            pfn, _n, shared = self.fs.iomap_read(ino, idx, 1, self.rules.read_faults_share)
            if pfn == HOLE:
                self._insert_entry(ino, idx, 0, ZERO, ZERO_PFN, False, False)
                if va not in self.mms[mm].pte:
                    self._set_pte(mm, va, ZERO_PFN, False)
                return OK
        sync = write and self._sync_write(vma)
        self._insert_entry(ino, idx, 0, REAL, pfn, shared, write and not sync)
        if write:  # the written page's CoW fork block (if any) joins the file
            self.fs.end_write(ino, idx, 1, 1, False)
        if sync:
            self._fsync(ino, idx, idx)
            # the fault just stored the entry holding `idx`: _load is not None
            self.dirty[ino].add(self._load(ino, idx)[0])  # type: ignore[index]
        pte = self.mms[mm].pte.get(va)
        if pte is None:
            self._set_pte(mm, va, pfn, write and vma.write)
        elif write and pte[0] == pfn:
            self.mms[mm].pte[va] = (pfn, vma.write)
        return OK

    def _pmd_fault(self, mm: int, vma: Vma, idx: int, write: bool):
        """Try to map the PMD around `idx`; FALLBACK when the kernel would use PTEs."""
        ino = vma.ino
        base = idx & ~self.colour
        size = self.fs.size[ino]
        if base >= size:
            return SIGBUS
        mmst = self.mms[mm]
        va = vma.vaddr(idx)
        slot = va >> self.order
        s0 = slot << self.order
        if (not vma.aligned or (write and not vma.shared) or s0 < vma.start
                or s0 + self.nr > vma.end or (base | self.colour) >= size
                or not self._grab_pmd_entry(ino, base)):
            return self._pmd_fallback(mm, slot)
        if write:
            pfn, n, shared, _freed = self.fs.iomap_write(ino, base, self.nr)
        else:
            pfn, n, shared = self.fs.iomap_read(ino, base, self.nr,
                                                self.rules.read_faults_share)
        # a PMD maps one 2 MiB extent: not a group whose last page has only its first
        # 4 KiB allocated (whatever was allocated over holes before it stays)
        if n < self.nr or (pfn == HOLE and write) or not self.fs.whole_group(ino, base):
            if write:  # nothing written: XFS cancels the iomap's CoW fork blocks
                self.fs.end_write(ino, base, n, 0)
            return self._pmd_fallback(mm, slot)
        if pfn == HOLE:
            self._insert_entry(ino, base, self.order, ZERO, HUGE_ZERO, False, False)
            if slot in mmst.pmd:
                return self._pmd_fallback(mm, slot)
            self._set_pmd(mm, slot, HUGE_ZERO, False)
            return OK
        if pfn & self.colour:
            if write:
                self.fs.end_write(ino, base, n, 0)
            return self._pmd_fallback(mm, slot)
        sync = write and self._sync_write(vma)
        self._insert_entry(ino, base, self.order, REAL, pfn, shared, write and not sync)
        if write:
            self.fs.end_write(ino, base, self.nr, self.nr)
        if sync:
            self._fsync(ino, idx, idx + self.nr - 1)
            self.dirty[ino].add(base)
        old = mmst.pmd.get(slot)
        if old is None:
            self._set_pmd(mm, slot, pfn, write and vma.write)
        elif write and old[0] == pfn:
            mmst.pmd[slot] = (pfn, vma.write)
        return OK

    def _pmd_fallback(self, mm: int, slot: int):
        if slot in self.mms[mm].pmd:
            self._clear_pmd(mm, slot)
        return FALLBACK

    # ================================================================ layouts ====
    def _break_layout(self, ino: int, wait: bool = True) -> None:
        """Unmap the whole file, then block on the first entry (in file order) whose
        folio a GUP handle holds; if none, (6.15+) delete every entry."""
        self._unmap_file(ino, 0, 1 << 62)
        for base in sorted(self.entries[ino]):
            _to, eo, kind, pfn = self._unpack(self.entries[ino][base])
            if kind != REAL:
                continue
            if self.rules.busy_reports_head:
                if self.gup_refs(self.head[pfn]):
                    raise Blocked(self.head[pfn])
            else:
                for p in range(pfn, pfn + (1 << eo)):
                    if self.gets[p] or self.pins[p]:
                        raise Blocked(p)
        if self.rules.break_deletes_entries:
            self._delete_entries(ino)

    # ================================================================ ops ========
    def op_mmap(self, op: O.Mmap) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        mmst = self.mms[op.mm]
        if op.vma in mmst.vmas:
            return EEXIST
        if op.pgoff + op.pages > self.g.max_file_pages:
            return EINVAL
        mmst.vmas[op.vma] = (make_vma(self.g, op.mm, op.vma, op.ino, op.pgoff, op.pages,
                                      bool(op.shared), bool(op.write), bool(op.huge),
                                      bool(op.aligned), bool(op.sync and op.shared)),)
        return OK

    # ================================================================ VMAs =======
    def _range(self, op: O.Munmap | O.Mprotect | O.Mremap) -> tuple[int, int] | None:
        """Virtual pages [lo, hi) of the op's file pages in its slot, or None (EINVAL:
        nothing mapped there, or past the model's bound)."""
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas or op.pgoff + op.pages > self.g.max_file_pages:
            return None
        lo = vmas[0].vaddr(op.pgoff)
        return lo, lo + op.pages

    def _split_vma(self, mm: int, slot: int, va: int) -> None:
        """A VMA boundary at `va`: a huge PMD it cuts through is zapped (a file PMD is
        not split into PTEs), then the VMA is two."""
        mmst = self.mms[mm]
        if va & self.colour and va >> self.order in mmst.pmd:
            self._clear_pmd(mm, va >> self.order)
        if mmst.vma_at(slot, va) is not None:
            mmst.split_vma(slot, va)

    def _munmap(self, mm: int, slot: int, lo: int, hi: int) -> None:
        """Virtual pages [lo, hi) of the slot map nothing and belong to no VMA; a PTE
        table no VMA overlaps any more is freed."""
        mmst = self.mms[mm]
        if slot not in mmst.vmas:
            return
        self._split_vma(mm, slot, lo)
        self._split_vma(mm, slot, hi)
        gone = mmst.detach_vmas(slot, lo, hi)
        for vma in gone:
            self._unmap_vma_range(mm, vma, vma.pgoff, vma.pgoff + vma.pages - 1, True)
        for vma in gone:
            for pslot in range(vma.start >> self.order, ((vma.end - 1) >> self.order) + 1):
                if not mmst.pmd_in_use(pslot, self.order):
                    mmst.tables.discard(pslot)

    def op_munmap(self, op: O.Munmap) -> str:
        vmas = self.mms[op.mm].vmas.get(op.vma)
        r = self._range(op) if op.pages else vmas and (vmas[0].start, vmas[-1].end)
        if not r:
            return EINVAL
        self._munmap(op.mm, op.vma, *r)
        return OK

    def op_mprotect(self, op: O.Mprotect) -> str:
        """The VMAs over the range get (or lose) write permission: split at its ends
        (a huge PMD cut through is zapped), merged with neighbours that end up the
        same.  Losing write write-protects every PTE and PMD there; gaining it changes
        none (they refault writable).  A private mapping made writable stays
        accountable (VM_ACCOUNT), which keeps it from merging with one never writable.
        The range must start mapped; it stops at the first hole (ENOMEM)."""
        r = self._range(op)
        if r is None:
            return EINVAL
        lo, hi = r
        mmst = self.mms[op.mm]
        write = bool(op.write)
        vmas = [v for v in mmst.vmas[op.vma] if v.end > lo and v.start < hi]
        if not vmas or vmas[0].start > lo:
            return ENOMEM
        end = vmas[0].start
        for vma in vmas:
            if vma.start != end:
                return ENOMEM
            start, end = max(lo, vma.start), min(vma.end, hi)
            if vma.write == write:
                continue
            account = vma.account or (write and not vma.shared)
            self._split_vma(op.mm, op.vma, start)
            self._split_vma(op.mm, op.vma, end)
            mmst.vmas[op.vma] = tuple(
                v._replace(write=write, account=account) if start <= v.start and v.end <= end
                else v for v in mmst.vmas[op.vma])
            mmst.merge_vmas(op.vma)
            if not write:
                for va in range(start, end):
                    pte = mmst.pte.get(va)
                    if pte is not None:
                        mmst.pte[va] = (pte[0], False)
                    pmd = mmst.pmd.get(va >> self.order)
                    if pmd is not None:
                        mmst.pmd[va >> self.order] = (pmd[0], False)
        return ENOMEM if end < hi else OK

    def op_mremap(self, op: O.Mremap) -> str:
        """Slot `to` is unmapped, then the range moves there: the VMAs (one only before
        6.17, else each in the range, gaps kept; EFAULT if the range starts in a gap)
        keep file, flags and anon_vma at the new address.  What was mapped stays mapped
        with the same references: a huge PMD moves when both addresses are PMD-aligned
        over a whole PMD, otherwise it is zapped; PTEs move, and a PTE table reaches
        each new PMD that an old one did.  The old range is then unmapped."""
        r = self._range(op)
        if r is None or op.to == op.vma:
            return EINVAL
        lo, hi = r
        mmst = self.mms[op.mm]
        if op.to in mmst.vmas:
            tv = mmst.vmas[op.to]
            self._munmap(op.mm, op.to, tv[0].start, tv[-1].end)
        new = make_vma(self.g, op.mm, op.to, 0, op.pgoff, op.pages, True, True, True,
                       bool(op.aligned)).start
        vmas = [v for v in mmst.vmas[op.vma] if v.end > lo and v.start < hi]
        if not vmas or vmas[0].start > lo or (not self.rules.mremap_moves_many
                                              and vmas[0].end < hi):
            return EFAULT
        for vma in vmas:
            a, b = max(vma.start, lo), min(vma.end, hi)
            self._move(op.mm, vma, a, b, op.to, new + a - lo, bool(op.aligned))
        return OK

    def _move(self, mm: int, vma: Vma, a: int, b: int, to: int, new: int,
              aligned: bool) -> None:
        mmst = self.mms[mm]
        moved = vma._replace(slot=to, start=new, pgoff=vma.pgoff + a - vma.start,
                             pages=b - a, aligned=aligned)
        mmst.vmas[to] = tuple(sorted(mmst.vmas.get(to, ()) + (moved,)))
        if vma.start in mmst.anon:
            mmst.anon.add(new)
        delta = new - a
        for va in range(a, b):
            pslot = va >> self.order
            if pslot in mmst.pmd:
                s0 = pslot << self.order
                if (a <= s0 and s0 + self.nr <= b and not (s0 + delta) & self.colour):
                    if va == s0:
                        mmst.pmd[(s0 + delta) >> self.order] = mmst.pmd.pop(pslot)
                    continue
                self._clear_pmd(mm, pslot)
            if pslot in mmst.tables:
                mmst.tables.add((va + delta) >> self.order)
            pte = mmst.pte.pop(va, None)
            if pte is not None:
                mmst.pte[va + delta] = pte
        # a table whose PMD the range covers whole went along (move_normal_pmd)
        for pslot in range(a >> self.order, ((b - 1) >> self.order) + 1):
            s0 = pslot << self.order
            if a <= s0 and s0 + self.nr <= b and not (s0 + delta) & self.colour:
                mmst.tables.discard(pslot)
        self._munmap(mm, vma.slot, a, b)

    def op_fault(self, op: O.Fault) -> str:
        idx = op.pgoff
        for vma in self.mms[op.mm].vmas.get(op.vma, ()):  # find_vma(), inline: hot
            if vma.pgoff <= idx < vma.pgoff + vma.pages:
                return self._access(op.mm, vma, idx, bool(op.write))
        return SIGSEGV

    def op_msync(self, op: O.Msync) -> str:
        """Each MAP_SHARED VMA of the slot is written back over its file range; a hole
        between the slot's VMAs is ENOMEM, after the rest is synced."""
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas:
            return EINVAL
        ret, end = OK, vmas[0].start
        for vma in vmas:
            if vma.start != end:
                ret = ENOMEM
            if vma.shared:
                self._fsync(vma.ino, vma.pgoff, vma.pgoff + vma.pages - 1)
            end = vma.end
        return ret

    def _fsync(self, ino: int, first: int, last: int) -> None:
        """Write back the dirty entries touching [first, last]: every writable mapping of
        their pages becomes read-only; then the inode's metadata is stable."""
        for base in sorted(self.dirty[ino]):
            tie, eorder, _kind, pfn = self._unpack(self.entries[ino][base])
            if base > last or base + (1 << tie) - 1 < first:
                continue
            # write-protect every writable mapping of the entry's pages of this file
            nr = 1 << eorder
            for _mm, mmst in enumerate(self.mms):
                for v in mmst.each_vma():
                    if v.ino != ino:
                        continue
                    for i in range(base, base + nr):
                        if not v.covers(i):
                            continue
                        va = v.vaddr(i)
                        pte = mmst.pte.get(va)
                        if pte is not None and pfn <= pte[0] < pfn + nr and pte[1]:
                            mmst.pte[va] = (pte[0], False)
                        pmd = mmst.pmd.get(va >> self.order)
                        if pmd is not None and pmd[0] == pfn and pmd[1]:
                            mmst.pmd[va >> self.order] = (pfn, False)
            self.dirty[ino].discard(base)
        self.fs.fsync(ino)

    def _sync_write(self, vma: Vma) -> bool:
        """Is this a MAP_SYNC write with metadata not yet stable?  Then the faulting
        range is fsynced before the page is mapped writable, and the entry is marked
        dirty only after that."""
        return vma.sync and self.fs.meta_dirty[vma.ino]

    def _longterm_pin(self, mm: int, slot: int, idx: int) -> str:
        """A long-term pin (an io_uring fixed buffer: FOLL_WRITE | FOLL_LONGTERM), tried
        and released at once: only a writable anonymous copy can be pinned long-term
        (GUP-fast takes it without looking at the VMA); a DAX page, the zero page or
        nothing mapped goes to the slow path, which refuses fs-DAX VMAs."""
        vma = self.mms[mm].find_vma(slot, idx)
        if vma is None:
            return EFAULT
        mmst = self.mms[mm]
        va = vma.vaddr(idx)
        if (self.rules.longterm_pins_anon_copy and va >> self.order not in mmst.pmd
                and mmst.pte.get(va) == (ANON, True)):
            return OK
        return EOPNOTSUPP

    def _gup(self, mm: int, slot: int, idx: int, h: int, kind: str, write: bool,
             longterm: bool) -> str:
        if longterm:
            return self._longterm_pin(mm, slot, idx)
        if h in self.handles:
            return EEXIST
        vma = self.mms[mm].find_vma(slot, idx)
        if vma is None:
            return EFAULT
        if write and not vma.write:
            return EFAULT
        mmst = self.mms[mm]
        va = vma.vaddr(idx)
        for _ in range(4):
            pmd = mmst.pmd.get(va >> self.order)
            if pmd is not None and (not write or pmd[1]):
                pfn = pmd[0] if pmd[0] == HUGE_ZERO else pmd[0] + (va & self.colour)
                break
            pte = mmst.pte.get(va)
            if pmd is None and pte is not None and (not write or pte[1]):
                pfn = pte[0]
                break
            r = self._access(mm, vma, idx, write)
            if r != OK:
                return EFAULT
        else:
            return EFAULT
        if pfn >= 0:
            (self.pins if kind == "pin" else self.gets)[pfn] += 1
            self.changed.add(pfn)
        self.handles[h] = (pfn, kind)
        return OK

    def op_pin(self, op: O.Pin) -> str:
        return self._gup(op.mm, op.vma, op.pgoff, op.h, "pin", bool(op.write), bool(op.longterm))

    def op_get(self, op: O.Get) -> str:
        return self._gup(op.mm, op.vma, op.pgoff, op.h, "get", bool(op.write), False)

    def _release(self, h: int, kind: str) -> str:
        held = self.handles.get(h)
        if held is None or held[1] != kind:
            return EINVAL
        del self.handles[h]
        pfn = held[0]
        if pfn >= 0:
            (self.pins if kind == "pin" else self.gets)[pfn] -= 1
            self.changed.add(pfn)
        return OK

    def op_pin_pages(self, op: O.PinPages) -> str:
        """Each page pinned as a single pin would be, in order; all or nothing."""
        hs = range(op.h, op.h + op.pages)
        if op.h + op.pages > self.g.handles:
            return EINVAL
        if any(h in self.handles for h in hs):
            return EEXIST
        for h in hs:
            r = self._gup(op.mm, op.vma, op.pgoff + h - op.h, h, "pin", bool(op.write), False)
            if r != OK:
                for done in range(op.h, h):
                    self._release(done, "pin")
                return r
        return OK

    def op_unpin_pages(self, op: O.UnpinPages) -> str:
        hs = range(op.h, op.h + op.pages)
        if op.h + op.pages > self.g.handles or any(
                self.handles.get(h, (0, ""))[1] != "pin" for h in hs):
            return EINVAL
        for h in hs:
            self._release(h, "pin")
        return OK

    def op_unpin(self, op: O.Unpin) -> str:
        return self._release(op.h, "pin")

    def op_put(self, op: O.Put) -> str:
        return self._release(op.h, "get")

    def op_truncate(self, op: O.Truncate) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        self._break_layout(op.ino)
        old = self.fs.size[op.ino]
        self.fs.set_size(op.ino, op.pages)
        if op.pages < old:
            self._unmap_file(op.ino, op.pages, 1 << 62, even_cows=True)
        self._delete_entries(op.ino, op.pages)
        if op.pages <= old:  # blocks and CoW fork blocks past the new EOF are freed
            self.fs.unmap_range(op.ino, op.pages, 1 << 40)
            self.fs.cancel_cow_range(op.ino, op.pages, 1 << 40)
        return OK

    def op_punch(self, op: O.Punch) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        self._break_layout(op.ino)
        size = self.fs.size[op.ino]
        if op.pgoff >= size:
            return OK
        end = min(op.pgoff + op.pages, size)
        self._drop_page_cache(op.ino, op.pgoff, end - 1)
        self.fs.unmap_range(op.ino, op.pgoff, end)
        return OK

    def op_reflink(self, op: O.Reflink) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        ip1, ip2 = sorted((op.src, op.dst))
        self._break_layout(ip1)
        if ip2 != ip1:
            self._break_layout(ip2)
        fs = self.fs
        if (op.src_pgoff + op.pages > fs.size[op.src]
                or op.dst_pgoff + op.pages > self.g.max_file_pages
                or (op.src == op.dst and op.dst_pgoff + op.pages > op.src_pgoff
                    and op.dst_pgoff < op.src_pgoff + op.pages)):
            return EINVAL
        self._delete_entries(op.dst, op.dst_pgoff, op.dst_pgoff + op.pages - 1)
        fs.remap(op.src, op.dst, op.src_pgoff, op.dst_pgoff, op.pages)
        return OK

    def op_unmount(self, op: O.Unmount) -> str:
        if not self.mounted:
            return EINVAL
        if any(mmst.vmas for mmst in self.mms):
            return EBUSY
        # the mount leaves the namespace before the teardown that may wait (below): a
        # blocked unmount leaves the files unreachable; a later unmount is its end
        self.detached = True
        for ino in range(self.g.inodes):
            if self.rules.unmount_waits:
                self._break_layout(ino)
            self._delete_entries(ino)
            self.fs.cancel_cow_range(ino, 0, 1 << 40)  # inactivation drops the CoW fork
        self.mounted = False
        self.detached = False
        self.holder = False
        return OK

    def op_mount(self, op: O.Mount) -> str:
        if self.mounted:
            return EBUSY
        self.mounted = True
        self.holder = True
        return OK

    def op_write_from(self, op: O.WriteFrom) -> str:
        """write(2) from a buffer in a DAX mapping: as op_write, extent by extent; the
        source pages of each extent are read (faulted in as any load) during the copy,
        while a copy-on-write is still pending, so they see the old blocks -- but once
        the write is over, nothing of the written range may reach a block it replaced
        (a source that is the written range itself must not stay mapped or cached)."""
        if not self.mounted or self.detached:
            return ENOENT
        if op.pgoff + op.pages > self.g.max_file_pages:
            return EINVAL
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas or not buffer_readable(vmas, op.src_pgoff, op.pages,
                                           self.fs.size[vmas[0].ino]):
            return EFAULT
        # one pwrite(2), or one per page when the source and destination runs have
        # different real shapes (what the guest can express); the first error ends it
        for src, pgoff, pages in write_from_calls(self.g, op.src_pgoff, op.pgoff, op.pages):
            ret = self._write(op.ino, pgoff, pages, (op.mm, op.vma, src))
            if ret != OK:
                return ret
        return OK

    def op_write(self, op: O.Write) -> str:
        """pwrite(2), extent by extent: an unshared written extent is overwritten in
        place; over a hole new blocks are allocated, over a shared extent new blocks
        replace the old (copy on write) -- and then every mapping of those file pages
        goes and their entries are dropped, so that mmap sees the new data and no
        mapping keeps reaching the old block.  No layout break: GUP holders keep their
        page (the old block stays owned by its other file).  The file grows to the end
        of what was written; nothing written at all is ENOSPC."""
        if not self.mounted or self.detached:
            return ENOENT
        if op.pgoff + op.pages > self.g.max_file_pages:
            return EINVAL
        return self._write(op.ino, op.pgoff, op.pages)

    def _write(self, ino: int, first: int, pages: int, src=None) -> str:
        pos, end = first, first + pages
        while pos < end:
            new = self.fs.pfn(ino, pos) == HOLE
            pfn, n, shared, _freed = self.fs.iomap_write(ino, pos, end - pos)
            if pfn == HOLE:
                break
            if new or shared:
                self._drop_page_cache(ino, pos, pos + n - 1)
            if src is not None:
                # the copy reads the source while a CoW is pending (the file keeps its
                # old blocks until the write ends): reads see the old blocks
                mm, slot, s0 = src
                for j in range(pos - first, pos - first + n):
                    v = self.mms[mm].find_vma(slot, s0 + j)
                    if v is not None:
                        self._access(mm, v, s0 + j, False)
            self.fs.end_write(ino, pos, n, n)  # CoW fork blocks join the file
            if src is not None and shared:
                # ... and when the write ends, the written range of this file must not
                # keep reaching the blocks it replaced, whatever the reads faulted in
                self._drop_page_cache(ino, pos, pos + n - 1)
            pos += n
        if pos == first:
            return ENOSPC
        if pos > self.fs.size[ino]:
            self.fs.set_size(ino, pos)
        return OK

    def op_dontneed(self, op: O.Dontneed) -> str:
        """MADV_DONTNEED: the range of the VMA maps nothing afterwards (file pages refault
        from the file, private copies are dropped); the VMA stays.  A PTE table left with
        nothing in it and covered whole by the range is gone (6.14+), so the next fault
        there may map a PMD."""
        mmst = self.mms[op.mm]
        vmas = mmst.vmas.get(op.vma)
        if not vmas:
            return EINVAL
        first = max(op.pgoff, vmas[0].pgoff)
        last = min(op.pgoff + op.pages, vmas[-1].pgoff + vmas[-1].pages) - 1
        ret, nxt = OK, first
        for vma in vmas:
            # each VMA's part of the range on its own; a hole between them is ENOMEM
            lo_i, hi_i = max(first, vma.pgoff), min(last, vma.pgoff + vma.pages - 1)
            if lo_i > hi_i:
                continue
            if lo_i != nxt:
                ret = ENOMEM
            nxt = hi_i + 1
            self._unmap_vma_range(op.mm, vma, lo_i, hi_i, True)
            if self.rules.dontneed_frees_tables:
                lo, hi = vma.vaddr(lo_i), vma.vaddr(hi_i)
                for slot in range(lo >> self.order, (hi >> self.order) + 1):
                    s0 = slot << self.order
                    if lo <= s0 and s0 + self.nr - 1 <= hi:
                        mmst.tables.discard(slot)
        return ENOMEM if nxt <= last else ret  # the range ends in a hole

    def op_exchange(self, op: O.Exchange) -> str:
        """Both layouts are broken as for a reflink (waiting for GUP), then the two
        ranges lose their mappings and entries and exchange their blocks."""
        if not self.rules.exchange_range:
            return ENOTTY
        if not self.mounted or self.detached:
            return ENOENT
        ip1, ip2 = sorted((op.ino1, op.ino2))
        self._break_layout(ip1)
        if ip2 != ip1:
            self._break_layout(ip2)
        fs, n = self.fs, op.pages
        if op.pgoff1 + n > fs.size[op.ino1] or op.pgoff2 + n > fs.size[op.ino2]:
            return EINVAL
        if op.ino1 == op.ino2 and op.pgoff2 + n > op.pgoff1 and op.pgoff1 + n > op.pgoff2:
            return EINVAL
        self._drop_page_cache(op.ino2, op.pgoff2, op.pgoff2 + n - 1)
        self._drop_page_cache(op.ino1, op.pgoff1, op.pgoff1 + n - 1)
        fs.cancel_cow_range(op.ino1, op.pgoff1, op.pgoff1 + n)  # CoW preallocations go
        fs.cancel_cow_range(op.ino2, op.pgoff2, op.pgoff2 + n)
        fs.exchange(op.ino1, op.ino2, op.pgoff1, op.pgoff2, n)
        return OK

    def op_swapext(self, op: O.Swapext) -> str:
        """The defragmenter's swap: both files lose every mapping and entry at once --
        no layout break, GUP holders are not waited for -- then, if they have the same
        size and `ino` has at least as many extents as `tmp`, all their blocks are
        swapped.  A page cache that could not be emptied refuses the swap."""
        if not self.mounted or self.detached:
            return ENOENT
        if op.ino == op.tmp:
            return EINVAL
        for ino in (op.ino, op.tmp):
            self._drop_page_cache(ino, 0, 1 << 62)
        fs = self.fs
        if fs.size[op.ino] != fs.size[op.tmp]:
            return EFAULT
        if fs.nextents(op.ino) < fs.nextents(op.tmp):
            return EINVAL
        # tmp's CoW fork is dropped, then the two CoW forks are swapped with the data
        fs.cancel_cow_range(op.tmp, 0, 1 << 40)
        fs.exchange(op.ino, op.tmp, 0, 0, self.g.max_file_pages)
        fs.cow[op.ino], fs.cow[op.tmp] = fs.cow[op.tmp], fs.cow[op.ino]
        return OK

    def op_fork(self, op: O.Fork) -> str:
        """The child gets the parent's VMAs.  Only a private VMA with anonymous pages
        (an anon_vma) keeps what it maps: its PTE tables and PTEs are duplicated, the
        file pages shared read-only (each child PTE is one more mapping of the page),
        anonymous pages write-protected on both sides; its PMDs, and everything in other
        VMAs, refault in the child."""
        if op.child == op.mm:
            return EINVAL
        src, dst = self.mms[op.mm], self.mms[op.child]
        if dst.vmas:
            return EBUSY
        for slot, vmas in sorted(src.vmas.items()):
            dst.vmas[slot] = tuple(v._replace(mm=op.child) for v in vmas)
        for vma in list(src.each_vma()):
            if vma.start not in src.anon:
                continue
            dst.anon.add(vma.start)
            for pslot in range(vma.start >> self.order, ((vma.end - 1) >> self.order) + 1):
                if pslot not in src.tables:
                    continue
                dst.tables.add(pslot)
                s0 = pslot << self.order
                for va in range(max(s0, vma.start), min(s0 + self.nr, vma.end)):
                    pte = src.pte.get(va)
                    if pte is None:
                        continue
                    if pte[0] == ANON:
                        src.pte[va] = (ANON, False)
                    self._set_pte(op.child, va, pte[0], False)
        return OK

    def op_memory_failure(self, op: O.MemoryFailure) -> str:
        if op.holder and self.holder:
            # the filesystem finds every owner of the block by reverse map
            for ino, idx in self.fs.owners(op.pfn):
                got = self._load(ino, idx)
                if got is not None and got[1][2] == REAL:
                    self._kill(op.mm, ino, idx)
        else:
            # the generic path needs the folio's single owner (6.1: the page's)
            owner = (self.page_owner[op.pfn] if self.rules.mf_by_page
                     else self.owner[self.head[op.pfn]])
            if owner is None:
                return EBUSY
            self._kill(op.mm, *owner)
        if not self.killed:
            return OK
        return OK + " killed=" + ",".join(map(str, sorted(self.killed)))

    def _kill(self, mm: int, ino: int, idx: int) -> None:
        """Signal `mm` (current) if it maps the file page, unmapping the largest size.
        A VMA of the file that covers the page but maps nothing there is no reason to
        signal: the process would not touch the poison through it."""
        size = 0
        mmst = self.mms[mm]
        for vma in mmst.each_vma():
            if vma.ino == ino and vma.covers(idx):
                va = vma.vaddr(idx)
                if va >> self.order in mmst.pmd:
                    size = max(size, self.nr)
                elif va in mmst.pte:
                    size = max(size, 1)
        if size:
            start = idx & ~(size - 1)
            self._unmap_file(ino, start, start + size - 1)
            self.killed.add(mm)

    _dispatch = {t: "op_" + t.name for t in O.OP_TYPES}
