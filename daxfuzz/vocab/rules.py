"""What happens differently across kernel versions: the per-version `Rules`.

Part of the vocabulary: a target (kdax) declares its kernel's rules (`oracle_rules`)
and the oracle follows them, so neither imports the other.  Each field says what a
kernel *does* (its documented behaviour), never how it counts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    """Where kernel versions differ in *what happens* (not in how they count), the
    oracle follows the target's documented rules.  Defaults: Linux 6.15 and later."""

    #: dax_break_layout() deletes every entry of the file once no page is busy (6.15);
    #: before, only truncate/punch/reflink deleted the entries of their range
    break_deletes_entries: bool = True
    #: eviction waits for pinned pages (dax_break_layout_final, 6.15); before, unmount
    #: deleted the entries of pinned pages without waiting
    unmount_waits: bool = True
    #: a layout break waits on the busy folio's head page (6.15) or on the first busy
    #: page of the entry (legacy per-page refcounts)
    busy_reports_head: bool = True
    #: MADV_DONTNEED frees a PTE table that it empties whole (6.14+)
    dontneed_frees_tables: bool = True
    #: XFS_IOC_EXCHANGE_RANGE exists (6.10+)
    exchange_range: bool = True
    #: mremap(MREMAP_FIXED) of an unchanged length moves several VMAs, gaps kept
    #: (6.17+); before, the range must lie in one VMA
    mremap_moves_many: bool = False
    #: memory failure's generic path kills by the failed page's own mapping/index (6.1:
    #: dax_lock_page, collect_procs(page)); since folios, by the folio's (head's) index
    mf_by_page: bool = False
    #: a PTE entry replacing a real PMD entry (shared extent, PTE fault) is stored into
    #: the PMD's multi-index slot, which it then fills whole (every kernel so far);
    #: False for a fixed kernel that undoes the PMD join first (kdax/fixes.py)
    pte_entry_keeps_pmd_slot: bool = True
    #: a long-term pin (io_uring) of a writable anonymous copy in a private fs-DAX
    #: mapping succeeds through GUP-fast (6.15, 7.2); 6.1's io_uring pins with
    #: pin_user_pages(), whose check_vma_flags() refuses any fs-DAX VMA first
    longterm_pins_anon_copy: bool = True
    #: a read fault of a shared (reflinked) extent is a shared association like a write
    #: fault's: the page is unmapped everywhere and the entry replaced (6.2+: XFS
    #: reports IOMAP_F_SHARED to DAX reads).  False (6.1): only a write fault of a shared
    #: extent is copy-on-write; a read fault sees the plain, untrimmed data extent
    read_faults_share: bool = True


LEGACY_RULES = Rules(break_deletes_entries=False, unmount_waits=False,
                     busy_reports_head=False, dontneed_frees_tables=False,
                     exchange_range=False, mf_by_page=True,
                     longterm_pins_anon_copy=False, read_faults_share=False)
