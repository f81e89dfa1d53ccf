"""The target: a kernel version assembled from the per-file ports, with the system
calls and user accesses that the operation vocabulary drives.

`Kernel615` is Linux 6.15 (the merged "Properly refcount fs dax pages" series).
"""

from __future__ import annotations

from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.world import (
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOENT,
    ENOMEM,
    OK,
    SIGBUS,
    SIGSEGV,
    ZERO_PFN,
    blocked,
    buffer_readable,
    make_vma,
    write_from_calls,
)
from kdax.api import KernelAPI
from kdax.dax import FsDax
from kdax.fork import Fork
from kdax.gup import FOLL_GET, FOLL_PIN, FOLL_WRITE, Gup
from kdax.huge_memory import HugeMemory
from kdax.madvise import Madvise
from kdax.memory import Memory
from kdax.memory_failure import MemoryFailure
from kdax.memremap import Memremap
from kdax.mm import PFN0, Blocked, KernelBase, TargetView
from kdax.mprotect import Mprotect
from kdax.mremap import Mremap
from kdax.rmap import Rmap
from kdax.vm_fault import VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV
from kdax.vma import Vmas
from kdax.xfs import Xfs


class Syscalls(KernelAPI):
    """User-visible entry points; each returns the op's result string."""

    def apply(self, op: O.Op) -> str:
        """Run one op; WARN events, touched PFNs and freed blocks are reset first.

        The struct pages outside the device (the zero page, pfn 0's page) are not
        compared: writes to them are BUG events already, and they leave `touched` here."""
        self.events.clear()
        touched = self.touched
        touched.clear()
        self.freed.clear()
        self.killed.clear()
        try:
            res = getattr(self, self._dispatch[type(op)])(op)
        except Blocked as b:
            res = blocked(b.pfn)
        if touched:
            touched.discard(ZERO_PFN)
            touched.discard(PFN0)
        return res

    def sys_mmap(self, op: O.Mmap) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        mmst = self.mms[op.mm]
        if op.vma in mmst.vmas:
            return EEXIST  # MAP_FIXED_NOREPLACE
        if op.pgoff + op.pages > self.g.max_file_pages:
            return EINVAL
        # MAP_SYNC is validated only with MAP_SHARED_VALIDATE; MAP_PRIVATE ignores it
        mmst.vmas[op.vma] = (make_vma(self.g, op.mm, op.vma, op.ino, op.pgoff, op.pages,
                                      bool(op.shared), bool(op.write), bool(op.huge),
                                      bool(op.aligned), bool(op.sync and op.shared)),)
        return OK

    def _range(self, op: O.Munmap | O.Mprotect | O.Mremap) -> tuple[int, int] | None:
        """Virtual pages [lo, hi) of file pages [pgoff, pgoff+pages) as the slot places
        them; None past the model's bound or for a slot that maps nothing (EINVAL)."""
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas or op.pgoff + op.pages > self.g.max_file_pages:
            return None
        lo = vmas[0].vaddr(op.pgoff)
        return lo, lo + op.pages

    # mm/mmap.c munmap() -> do_vmi_munmap(); pages=0: every VMA of the slot
    def sys_munmap(self, op: O.Munmap) -> str:
        vmas = self.mms[op.mm].vmas.get(op.vma)
        r = self._range(op) if op.pages else vmas and (vmas[0].start, vmas[-1].end)
        if not r:
            return EINVAL
        self.do_vmi_munmap(op.mm, op.vma, *r)
        return OK

    # mm/mprotect.c mprotect() -> do_mprotect_pkey()
    def sys_mprotect(self, op: O.Mprotect) -> str:
        r = self._range(op)
        if r is None:
            return EINVAL
        return self.do_mprotect_pkey(op.mm, op.vma, *r, bool(op.write))

    # mm/mremap.c mremap(MREMAP_MAYMOVE|MREMAP_FIXED) into slot `to`, unmapped whole
    # first (a munmap of its window); `to` == `vma` is the model's bound
    def sys_mremap(self, op: O.Mremap) -> str:
        r = self._range(op)
        if r is None or op.to == op.vma:
            return EINVAL
        mmst = self.mms[op.mm]
        if op.to in mmst.vmas:
            tv = mmst.vmas[op.to]
            self.do_vmi_munmap(op.mm, op.to, tv[0].start, tv[-1].end)
        new = make_vma(self.g, op.mm, op.to, 0, op.pgoff, op.pages, True, True, True,
                       bool(op.aligned)).start
        return self.do_mremap(op.mm, op.vma, *r, op.to, new, bool(op.aligned))

    def sys_fault(self, op: O.Fault) -> str:
        for vma in self.mms[op.mm].vmas.get(op.vma, ()):  # find_vma(), inline: hot
            if vma.pgoff <= op.pgoff < vma.pgoff + vma.pages:
                break
        else:
            return SIGSEGV
        va = vma.vaddr(op.pgoff)
        write = bool(op.write)
        for _ in range(3):  # the CPU retries the access until it is satisfied
            ret = self.handle_mm_fault(op.mm, vma, va, write)
            if ret & VM_FAULT_SIGSEGV:
                return SIGSEGV
            if ret & VM_FAULT_SIGBUS:
                return SIGBUS
            if self.access_ok(op.mm, va, write):
                return OK
        self.WARN_ON_ONCE(True, "the access still faults after three retries")
        return OK

    def access_ok(self, mm: int, va: int, write: bool) -> bool:
        """Would the MMU let this access through now?"""
        mmst = self.mms[mm]
        e = mmst.pmd.get(va >> self.PMD_ORDER) or mmst.pte.get(va)
        return e is not None and (e[1] or not write)

    # mm/msync.c msync(MS_SYNC) over the slot's VMAs: each MAP_SHARED one is
    # vfs_fsync_range()d over its file range; a hole between them is -ENOMEM at the end
    def sys_msync(self, op: O.Msync) -> str:
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas:
            return EINVAL  # -ENOMEM in the kernel: "not mapped"
        ret, end = OK, vmas[0].start
        for vma in vmas:
            if vma.start != end:
                ret = ENOMEM
            if vma.shared:
                self.vfs_fsync_range(vma.ino, vma.pgoff, vma.pgoff + vma.pages - 1)
            end = vma.end
        return ret

    def _gup(self, op, flags: int) -> str:
        if op.h in self.handles:
            return EEXIST
        return self.get_user_page(op.mm, op.vma, op.pgoff, flags, op.h)

    def sys_pin(self, op: O.Pin) -> str:
        if op.longterm:
            # io_uring_register(IORING_REGISTER_BUFFERS) -> io_pin_pages():
            # pin_user_pages_fast(FOLL_WRITE | FOLL_LONGTERM) of one page, released by
            # the unregister that follows: a result, no handle
            return self.pin_user_pages_fast_longterm(op.mm, op.vma, op.pgoff)
        return self._gup(op, FOLL_PIN | (FOLL_WRITE if op.write else 0))

    def sys_get(self, op: O.Get) -> str:
        return self._gup(op, FOLL_GET | (FOLL_WRITE if op.write else 0))

    def _release(self, h: int, pin: bool) -> str:
        held = self.handles.get(h)
        if held is None or (held[1] == "pin") != pin:
            return EINVAL
        self.put_user_page(h, pin)
        return OK

    def sys_pin_pages(self, op: O.PinPages) -> str:
        hs = range(op.h, op.h + op.pages)
        if op.h + op.pages > self.g.handles:
            return EINVAL
        if any(h in self.handles for h in hs):
            return EEXIST
        flags = FOLL_PIN | (FOLL_WRITE if op.write else 0)
        return self.pin_user_pages_fast(op.mm, op.vma, op.pgoff, op.pages, flags, op.h)

    def sys_unpin_pages(self, op: O.UnpinPages) -> str:
        hs = range(op.h, op.h + op.pages)
        if op.h + op.pages > self.g.handles or any(
                self.handles.get(h, (0, ""))[1] != "pin" for h in hs):
            return EINVAL
        self.unpin_user_pages(hs)
        return OK

    def sys_unpin(self, op: O.Unpin) -> str:
        return self._release(op.h, True)

    def sys_put(self, op: O.Put) -> str:
        return self._release(op.h, False)

    def sys_truncate(self, op: O.Truncate) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        return self.xfs_setattr_size(op.ino, op.pages)

    def sys_punch(self, op: O.Punch) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        return self.xfs_free_file_space(op.ino, op.pgoff, op.pages)

    def sys_reflink(self, op: O.Reflink) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        return self.xfs_file_remap_range(op.src, op.dst, op.src_pgoff, op.dst_pgoff, op.pages)

    # fs/read_write.c ksys_pwrite64() -> xfs_file_write_iter() -> xfs_file_dax_write()
    def sys_write(self, op: O.Write) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        if op.pgoff + op.pages > self.g.max_file_pages:
            return EINVAL  # the model's bound on a file, as for mmap
        return self.xfs_file_dax_write(op.ino, op.pgoff, op.pages)

    # the same, from a buffer in a DAX mapping; the model refuses a source it cannot read
    # whole (EFAULT) before anything happens.  One pwrite(2), or one per page when the
    # runs' real shapes differ (write_from_calls), the first error ending it
    def sys_write_from(self, op: O.WriteFrom) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        if op.pgoff + op.pages > self.g.max_file_pages:
            return EINVAL
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas or not buffer_readable(vmas, op.src_pgoff, op.pages,
                                           self.fs.size[vmas[0].ino]):
            return EFAULT
        for src, pgoff, pages in write_from_calls(self.g, op.src_pgoff, op.pgoff, op.pages):
            ret = self.xfs_file_dax_write(op.ino, pgoff, pages, (op.mm, op.vma, src))
            if ret != OK:
                return ret
        return OK

    # arch copy_from_user() of one page of a DAX mapping: a load that faults is handled by
    # handle_mm_fault() (a read), as any user access
    def copy_from_user(self, mm: int, slot: int, idx: int) -> bool:
        vma = self.mms[mm].find_vma(slot, idx)
        if vma is None:
            return False
        va = vma.vaddr(idx)
        for _ in range(3):
            if self.access_ok(mm, va, False):
                return True
            ret = self.handle_mm_fault(mm, vma, va, False)
            if ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV):
                return False
        return False

    # mm/madvise.c do_madvise(MADV_DONTNEED) -> madvise_walk_vmas() over the part of
    # the range inside the slot's VMAs: each VMA's part zapped; a hole is -ENOMEM at the end
    def sys_dontneed(self, op: O.Dontneed) -> str:
        vmas = self.mms[op.mm].vmas.get(op.vma)
        if not vmas:
            return EINVAL  # -ENOMEM in the kernel: "not mapped"
        first = max(op.pgoff, vmas[0].pgoff)
        last = min(op.pgoff + op.pages, vmas[-1].pgoff + vmas[-1].pages) - 1
        ret, nxt = OK, first
        for vma in vmas:
            lo, hi = max(first, vma.pgoff), min(last, vma.pgoff + vma.pages - 1)
            if lo > hi:
                continue
            if lo != nxt:
                ret = ENOMEM
            self.madvise_dontneed_single_vma(op.mm, vma, lo, hi)
            nxt = hi + 1
        return ENOMEM if nxt <= last else ret  # the range ends in a hole

    # fs/xfs/xfs_ioctl.c XFS_IOC_EXCHANGE_RANGE -> xfs_exchange_range()
    def sys_exchange(self, op: O.Exchange) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        return self.xfs_exchange_range(op.ino1, op.ino2, op.pgoff1, op.pgoff2, op.pages)

    # fs/xfs/xfs_ioctl.c XFS_IOC_SWAPEXT -> xfs_ioc_swapext() -> xfs_swap_extents()
    def sys_swapext(self, op: O.Swapext) -> str:
        if not self.mounted or self.detached:
            return ENOENT
        if op.ino == op.tmp:
            return EINVAL  # "I_INO(ip) == I_INO(tip)"
        return self.xfs_swap_extents(op.ino, op.tmp)

    # kernel/fork.c kernel_clone() -> copy_process() -> copy_mm() -> dup_mmap(); the model
    # forks into a process slot that maps nothing
    def sys_fork(self, op: O.Fork) -> str:
        if op.child == op.mm:
            return EINVAL
        if self.mms[op.child].vmas:
            return EBUSY
        self.dup_mmap(op.mm, op.child)
        return OK

    # fs/super.c generic_shutdown_super() -> evict_inodes(): busy while mapped.
    # fs/namespace.c do_umount() (7.2): umount_tree() takes the mount out of the
    # namespace first; the final mntput()'s cleanup_mnt() -> deactivate_super() then
    # runs the teardown, which may wait (dax_break_layout_final()) with the files
    # already unreachable by path (ENOENT); a later unmount is that wait's end
    def sys_unmount(self, op: O.Unmount) -> str:
        if not self.mounted:
            return EINVAL
        if any(mmst.vmas for mmst in self.mms):
            return EBUSY
        self.detached = True
        for ino in range(self.g.inodes):
            self.xfs_fs_evict_inode(ino)
            # xfs_fs_destroy_inode() -> inodegc -> xfs_inactive(): the CoW fork is freed
            self.fs.cancel_cow_range(ino, 0, 1 << 40)
        self.mounted = False
        self.detached = False
        self.holder_registered = False
        return OK

    def sys_mount(self, op: O.Mount) -> str:
        if self.mounted:
            return EBUSY
        self.mounted = True
        self.holder_registered = True
        return OK

    def sys_memory_failure(self, op: O.MemoryFailure) -> str:
        return self.memory_failure(op.pfn, op.mm, bool(op.holder))

    # by name, so that a target subclass overriding sys_* is honoured
    _dispatch = {t: "sys_" + t.name for t in O.OP_TYPES}


class Kernel615(Syscalls, FsDax, Xfs, Memory, HugeMemory, Madvise, Fork, Vmas, Mprotect,
                Mremap, Gup, Rmap, Memremap, MemoryFailure, TargetView, KernelBase):
    """Linux 6.15: 0-based fs-DAX refcounts, one reference per mapping, folio sharing."""

    name = "6.15"
    summary = "Linux 6.15, the merged 0-based folio refcount series (fs/dax.c 00c010e130e5)"
    idle_refcount = 0

    def __init__(self, g: Geometry) -> None:
        super().__init__(g)

