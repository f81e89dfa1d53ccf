"""The bug zoo: small, realistic deviations from the 6.15 / 7.2 ports.

Each variant is a subclass overriding one kernel function with one plausible mistake
(or a known upstream defect); `summary` says what, `minimal` is the length of the
shortest trace known to expose it (found by reduction and checked by
tests/test_zoo.py), and `base` is the kernel it deviates from.  The zoo measures the
engines (`daxfuzz zoo`): a clean campaign means something only if these are found.
"""

from __future__ import annotations

import sys
from typing import Any

from kdax.dax import LLONG_MAX
from kdax.gup import FOLL_GET, FOLL_PIN
from kdax.kernel import Kernel615
from kdax.mm import GUP_PIN_COUNTING_BIAS, Blocked
from kdax.mm_types import TAIL_MAPPING, Page
from kdax.v7_2 import Kernel72
from kdax.vm_fault import VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, Iomap, Vmf
from kdax.xarray import DAX_PMD, dax_is_empty_entry, dax_is_pmd_entry, dax_is_zero_entry

ZOO: list[type] = []


def zoo(minimal: int, upstream: str = "", scope: str = ""):
    """Register a variant with the length of its known-minimal reproducer.  `scope`
    narrows `daxfuzz exhaust`'s small world for variants whose reproducer is too long for
    the whole alphabet in minutes (``ops=K1,K2 processes=N``): the op kinds and processes
    the bug needs, so the zoo's exhaust engine reaches the known minimal length."""
    # Any: the zoo's own attributes (minimal, upstream, ...) are set here, on kernel
    # classes that do not declare them; daxfuzz.campaign.zoo reads them
    def deco(cls: Any) -> Any:
        cls.minimal = minimal
        cls.upstream = upstream
        cls.exhaust_scope = scope
        cls.base = next(b.name for b in cls.__mro__[1:] if b in (Kernel615, Kernel72))
        ZOO.append(cls)
        return cls
    return deco


def called_from(*callers: str) -> bool:
    """True when the overridden kernel function was called by one of `callers`: how a
    zoo bug is planted on one call path only (the caller's caller's frame)."""
    return sys._getframe(2).f_code.co_name in callers


# ---------------------------------------------------------------- fault paths ------
@zoo(2)
class ForgotFaultPut(Kernel615):
    name = "zoo-fault-forgot-put"
    summary = "dax_fault_iter() takes the temporary folio reference and never puts it"

    def folio_put(self, folio: Page) -> None:
        if called_from("dax_fault_iter"):
            return
        super().folio_put(folio)


@zoo(2)
class NoTemporaryRef(Kernel72):
    name = "zoo-fault-no-temp-ref"
    summary = ("dax_fault_iter() inserts without the temporary folio_ref_inc: "
               "validate_page_before_insert() refuses the unreferenced folio, SIGBUS")

    def folio_ref_inc(self, folio: Page) -> None:
        if called_from("dax_fault_iter", "dax_insert_pfn_mkwrite"):
            return
        super().folio_ref_inc(folio)

    def folio_put(self, folio: Page) -> None:
        if called_from("dax_fault_iter", "dax_insert_pfn_mkwrite"):
            return
        super().folio_put(folio)


@zoo(2)
class PmdNoRef(Kernel615):
    name = "zoo-pmd-insert-no-ref"
    summary = "vmf_insert_folio_pmd() maps the PMD without folio_get()"

    def folio_get(self, folio: Page) -> None:
        if called_from("vmf_insert_folio_pmd"):
            return
        super().folio_get(folio)


@zoo(4)
class PmdRefWhenPresent(Kernel72):
    name = "zoo-pmd-ref-when-present"
    summary = "vmf_insert_folio_pmd() takes a reference and PMD mapcount even if mapped"

    def vmf_insert_folio_pmd(self, vmf: Vmf, folio: Page, write: bool) -> int:
        slot = vmf.address >> self.PMD_ORDER
        if slot in self.mms[vmf.mm].pmd:
            self.folio_get(folio)
            self.folio_add_file_rmap_pmd(folio, folio)
        return super().vmf_insert_folio_pmd(vmf, folio, write)


@zoo(4)
class PteRefOnMkwrite(Kernel615):
    name = "zoo-pte-ref-on-mkwrite"
    summary = "insert_page_into_pte_locked() takes a reference when upgrading a present PTE"

    def insert_page_into_pte_locked(self, vmf: Vmf, pfn: int, mkwrite: bool) -> int:
        old = self.mms[vmf.mm].pte.get(vmf.address)
        if old is not None and mkwrite and old[0] == pfn and pfn >= 0:
            self.folio_get(self.pfn_folio(pfn))
        return super().insert_page_into_pte_locked(vmf, pfn, mkwrite)


@zoo(5, scope="ops=mmap,fault,reflink")
class CowNoUnmap(Kernel72):
    name = "zoo-cow-no-unmap"
    summary = "dax_insert_entry() does not unmap the old pfn before a shared (CoW) replace"

    def dax_insert_entry(self, vmf, iomap: Iomap, entry: int, pfn: int, flags: int) -> int:
        real = self.unmap_mapping_pages
        if iomap.shared:
            # the zoo bug: this instance's method swapped for the one call (restored below)
            self.unmap_mapping_pages = lambda *a: None  # type: ignore[method-assign]
        try:
            return super().dax_insert_entry(vmf, iomap, entry, pfn, flags)
        finally:
            if iomap.shared:
                del self.unmap_mapping_pages
        _ = real


@zoo(4)
class DowngradeNoUnmap(Kernel615):
    name = "zoo-downgrade-no-unmap"
    summary = "grab_mapping_entry() downgrades a zero PMD entry without unmapping the zero PMD"

    def grab_mapping_entry(self, ino: int, index: int, order: int):
        if order == 0:
            # the zoo bug: this instance's method swapped for the one call (restored below)
            self.unmap_mapping_pages = lambda *a: None  # type: ignore[method-assign]
            try:
                return super().grab_mapping_entry(ino, index, order)
            finally:
                del self.unmap_mapping_pages
        return super().grab_mapping_entry(ino, index, order)


@zoo(5, scope="ops=mmap,fault,reflink")
class WpCopyNoPut(Kernel72):
    name = "zoo-wp-copy-no-put"
    summary = "wp_page_copy() drops the mapcount of the old DAX page but not its reference"

    def wp_page_copy(self, vmf: Vmf, old_pfn: int) -> int:
        from daxfuzz.vocab.world import ANON
        if old_pfn >= 0:
            page = self.pages[old_pfn]
            folio = self.page_folio(page)
            self.folio_remove_rmap_pte(folio, page)
        self.mms[vmf.mm].pte[vmf.address] = (ANON, True)
        return 0


@zoo(5, scope="ops=mmap,fault,get,truncate")
class ZapPutsPage(Kernel615):
    name = "zoo-zap-puts-page-not-folio"
    summary = "zap_pte() puts the subpage instead of its folio (tail refcount moves)"

    def zap_pte(self, mm: int, vaddr: int, even_cows: bool) -> None:
        pfn = self.mms[mm].pte[vaddr][0]
        if pfn >= 0:
            page = self.pages[pfn]
            del self.mms[mm].pte[vaddr]
            self.folio_remove_rmap_pte(self.page_folio(page), page)
            self.folio_put_refs(page, 1)
            return
        super().zap_pte(mm, vaddr, even_cows)


@zoo(3)
class MkwriteNoDirty(Kernel72):
    name = "zoo-mkwrite-no-dirty"
    summary = "dax_insert_pfn_mkwrite() (MAP_SYNC) forgets to set PAGECACHE_TAG_DIRTY"

    def dax_insert_pfn_mkwrite(self, vmf: Vmf, pfn: int, order: int) -> int:
        xa = self.i_pages[vmf.vma.ino]
        index = vmf.pgoff & ~((1 << order) - 1)
        entry = self.get_next_unlocked_entry(xa, index, order)
        if entry is None or entry == "conflict" or (order == 0 and dax_is_pmd_entry(entry)):
            return VM_FAULT_NOPAGE
        folio = self.pfn_folio(pfn)
        self.folio_ref_inc(folio)
        if order == 0:
            ret = self.vmf_insert_page_mkwrite(vmf, pfn, True)
        else:
            ret = self.vmf_insert_folio_pmd(vmf, folio, True)
        self.folio_put(folio)
        return ret


# ---------------------------------------------------------------- GUP --------------
@zoo(2)
class PinBiasOnLarge(Kernel615):
    name = "zoo-pin-bias-on-large"
    summary = "try_grab_folio() applies GUP_PIN_COUNTING_BIAS to a large folio too"

    def folio_has_pincount(self, folio: Page) -> bool:
        return False


@zoo(3)
class UnpinForgetsPincount(Kernel72):
    name = "zoo-unpin-keeps-pincount"
    summary = "gup_put_folio() forgets atomic_sub(refs, &folio->_pincount)"

    def gup_put_folio(self, folio: Page, refs: int, flags: int) -> None:
        if flags & FOLL_PIN and not self.folio_has_pincount(folio):
            refs *= GUP_PIN_COUNTING_BIAS
        self.folio_put_refs(folio, refs)


@zoo(2)
class GetNoRef(Kernel615):
    name = "zoo-get-no-ref"
    summary = "try_grab_folio() FOLL_GET path forgets folio_ref_add()"

    def try_grab_folio(self, folio: Page, refs: int, flags: int) -> int:
        if flags & FOLL_GET:
            return 0
        return super().try_grab_folio(folio, refs, flags)


# ---------------------------------------------------------------- association ------
@zoo(3)
class NoSplitOnLastPut(Kernel615):
    name = "zoo-no-split-on-last-put"
    summary = "dax_folio_put() clears mapping but skips the split when the count ends"

    def dax_folio_put(self, folio: Page) -> int:
        if self.dax_folio_is_shared(folio):
            ref = (folio.share - 1) & 0xFFFFFFFFFFFFFFFF
            self.set_field(folio, "index", ref)
            if ref:
                return ref
        self.set_field(folio, "mapping", None)
        return 0


@zoo(3, "fs/dax: fix folio splitting issue by resetting old folio order + _nr_pages")
class NoOrderReset(Kernel615):
    name = "zoo-split-no-order-reset"
    summary = "dax_folio_put() splits without folio_reset_order(): stale order in page[1]"

    def folio_reset_order(self, folio: Page) -> None:
        pass


@zoo(3)
class SplitKeepsTailMapping(Kernel72):
    name = "zoo-split-keeps-tail-mapping"
    summary = "dax_folio_reset_order() leaves TAIL_MAPPING in the former tail pages"

    def set_field(self, page: Page, fld: str, value: object) -> None:
        if (fld == "mapping" and value is None and page.mapping == TAIL_MAPPING
                and called_from("dax_folio_reset_order")):
            return
        super().set_field(page, fld, value)


@zoo(5, scope="ops=mmap,fault,reflink")
class ShareNotReset(Kernel72):
    name = "zoo-make-shared-no-reset"
    summary = "dax_folio_make_shared() clears mapping but does not set share = 1"

    def dax_folio_make_shared(self, folio: Page) -> None:
        self.set_field(folio, "mapping", None)


@zoo(3)
class PutAlwaysDecrements(Kernel615):
    name = "zoo-put-always-decrements"
    summary = "dax_folio_put() decrements ->share even when the folio is not shared"

    def dax_folio_is_shared(self, folio: Page) -> bool:
        if called_from("dax_folio_put"):
            return True
        return super().dax_folio_is_shared(folio)


@zoo(4)
class SharedOnFirstAssoc(Kernel72):
    name = "zoo-shared-on-first-association"
    summary = "dax_associate_entry() treats the first association of a shared extent as shared"

    def dax_associate_entry(self, entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return
        folio = self.dax_to_folio(entry)
        if shared:
            if folio.mapping is not None or not self.dax_folio_is_shared(folio):
                self.dax_folio_make_shared(folio)
                self.set_field(folio, "index", 0)
            self.set_field(folio, "index", folio.share + 1)
            return
        super().dax_associate_entry(entry, mapping, vmf, shared)


@zoo(2, "fs/dax: check zero or empty entry before converting xarray entry")
class DisassociateNoGuard(Kernel615):
    name = "zoo-disassociate-no-guard"
    summary = "dax_disassociate_entry() without the zero/empty guard writes pfn 0's page"

    def dax_disassociate_entry(self, entry: int, mapping: int, trunc: bool) -> None:
        self.dax_folio_put(self.dax_to_folio(entry))


@zoo(2)
class AssociateZero(Kernel72):
    name = "zoo-associate-zero-entry"
    summary = "dax_associate_entry() without the zero/empty guard associates the zero page"

    def dax_associate_entry(self, entry: int, mapping: int, vmf: Vmf, shared: bool) -> None:
        if dax_is_zero_entry(entry):
            folio = self.dax_to_folio(entry)
            self.set_field(folio, "mapping", mapping)
            self.set_field(folio, "index", vmf.pgoff)
            return
        super().dax_associate_entry(entry, mapping, vmf, shared)


# ---------------------------------------------------------------- layout breaking --
@zoo(3, "known: XFS still testing page_ref_count(page) != 1 after the 0-based switch")
class XfsRefcountOne(Kernel615):
    name = "zoo-xfs-refcount-is-one"
    summary = "XFS two-inode break tests page_ref_count(page) != 1 (a 1-based leftover)"

    def xfs_mmaplock_two_inodes_and_break_dax_layout(self, ip1: int, ip2: int) -> int:
        if ip1 > ip2:
            ip1, ip2 = ip2, ip1
        self.xfs_break_dax_layouts(ip1)
        if ip1 == ip2:
            return 0
        page = self.dax_layout_busy_page_range(ip2, 0, LLONG_MAX)
        if page is not None and self.page_ref_count(page) != 1:
            raise Blocked(page.pfn)
        self.dax_delete_mapping_range(ip2, 0, LLONG_MAX)
        return 0


@zoo(1, "known: an intermediate XFS form retried while !dax_page_is_idle(page)")
class XfsRetryNotIdle(Kernel72):
    name = "zoo-xfs-retry-not-idle"
    summary = "XFS two-inode break retries while !dax_page_is_idle(page), even for no page"

    def xfs_mmaplock_two_inodes_and_break_dax_layout(self, ip1: int, ip2: int) -> int:
        if ip1 > ip2:
            ip1, ip2 = ip2, ip1
        self.xfs_break_dax_layouts(ip1)
        if ip1 == ip2:
            return 0
        for _ in range(64):
            page = self.dax_layout_busy_page_range(ip2, 0, LLONG_MAX)
            if self.dax_page_is_idle(page):
                break
            if page is not None:
                raise Blocked(page.pfn)
        else:
            self.livelock(None)
        self.dax_delete_mapping_range(ip2, 0, LLONG_MAX)
        return 0


@zoo(3, "known defect 2: page_ref_count(page) > 1 busy test after the 0-based switch")
class BusyAboveOne(Kernel615):
    name = "zoo-busy-above-one"
    summary = "dax_busy_page() keeps the 1-based test page_ref_count > 1"

    def dax_busy_page(self, entry: int) -> Page | None:
        if dax_is_zero_entry(entry) or dax_is_empty_entry(entry):
            return None
        folio = self.dax_to_folio(entry)
        return folio if folio._refcount > 1 else None


@zoo(3)
class WaitForOne(Kernel72):
    name = "zoo-wait-for-one"
    summary = "dax_page_is_idle() waits for refcount 1 instead of 0"

    def dax_page_is_idle(self, page: Page | None) -> bool:
        return page is not None and self.page_ref_count(page) == 1


@zoo(3)
class BusySkipsPmd(Kernel615):
    name = "zoo-busy-skips-pmd"
    summary = "dax_busy_page() only looks at PTE entries"

    def dax_busy_page(self, entry: int) -> Page | None:
        if entry & DAX_PMD:
            return None
        return super().dax_busy_page(entry)


@zoo(3)
class BusyNoUnmap(Kernel72):
    name = "zoo-busy-no-unmap"
    summary = "dax_layout_busy_page_range() scans without unmap_mapping_pages() first"

    def dax_layout_busy_page_range(self, ino: int, start: int, end: int) -> Page | None:
        end_idx = self._end_idx(end)
        for _index, entry in self.i_pages[ino].for_each(start, end_idx):
            page = self.dax_busy_page(entry)
            if page is not None:
                return page
        return None


@zoo(4, "known defect 7: filesystems that forgot dax_break_layout_final at eviction")
class NoFinalBreak(Kernel72):
    name = "zoo-evict-no-final-break"
    summary = "eviction deletes entries without dax_break_layout_final() (the fuse bug)"

    def xfs_fs_evict_inode(self, ino: int) -> None:
        self.truncate_inode_pages_range(ino, 0, LLONG_MAX)


@zoo(4)
class FinalNoDelete(Kernel615):
    name = "zoo-final-no-delete"
    summary = "dax_break_layout_final() waits but never deletes the entries"

    def dax_break_layout_final(self, ino: int) -> None:
        while True:
            page = self.dax_layout_busy_page_range(ino, 0, LLONG_MAX)
            if page is None:
                return
            self.wait_page_idle_uninterruptible(page, ino)

    def xfs_fs_evict_inode(self, ino: int) -> None:
        self.dax_break_layout_final(ino)


# ---------------------------------------------------------------- zap / free -------
@zoo(3)
class PmdZapPutFirst(Kernel615):
    name = "zoo-pmd-zap-put-before-rmap"
    summary = "zap_huge_pmd() drops the reference before the PMD mapcount (free while mapped)"

    def zap_huge_pmd(self, mm: int, vma, slot: int) -> None:
        from daxfuzz.vocab.world import HUGE_ZERO
        pfn, _w = self.mms[mm].pmd.pop(slot)
        if pfn == HUGE_ZERO:
            return
        folio = self.pfn_folio(pfn)
        self.tlb_remove_folio(folio)
        self.folio_remove_rmap_pmd(folio, folio)

    def free_zone_device_folio(self, folio: Page) -> None:
        # mm/memremap.c (debug): a folio freed while still mapped
        self.VM_BUG_ON(self.folio_mapcount(folio) > 0, "folio_mapped(folio)")
        super().free_zone_device_folio(folio)


@zoo(3, "mm/memremap: fix spurious large folio warning for FS-DAX (Dec 2025)")
class SpuriousLargeWarn(Kernel72):
    name = "zoo-free-warns-large"
    summary = "free_zone_device_folio() warns on large non-anonymous folios (FS-DAX PMDs)"

    def free_zone_device_folio(self, folio: Page) -> None:
        self.WARN_ON_ONCE(self.folio_test_large(folio), "folio_test_large(folio)")
        super().free_zone_device_folio(folio)


@zoo(5, scope="ops=mmap,fault,get,memory_failure processes=2")
class MfGenericStaleIndex(Kernel72):
    name = "zoo-mf-uses-page-index"
    summary = "mf_generic_kill_procs() unmaps at the failing page's own index, ignoring folio"

    def mf_generic_kill_procs(self, pfn: int, mm: int) -> str:
        from daxfuzz.vocab.world import EBUSY
        folio = self.pfn_folio(pfn)
        if not self.dax_lock_folio(folio):
            return EBUSY
        # locked (dax_lock_folio): a DAX folio's mapping is its inode number
        ino: int = folio.mapping  # type: ignore[assignment]
        index = folio.index + (pfn - folio.pfn)
        to_kill = self.collect_procs_fsdax(ino, index, mm)
        self.unmap_and_kill(to_kill, ino, index)
        return self._killed_result()


_ = (VM_FAULT_SIGBUS,)
