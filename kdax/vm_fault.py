"""struct vm_fault and the vm_fault_t codes (include/linux/mm_types.h, mm.h)."""

from __future__ import annotations

from daxfuzz.vocab.world import Vma

VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_FALLBACK = 0x000800
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_NEEDDSYNC = 0x002000
VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV


class Vmf:
    """One fault: the VMA, the (page) address, the file offset and the write flag."""

    __slots__ = ("mm", "vma", "address", "pgoff", "write", "cow_page", "mkwrite", "sync_pfn")

    def __init__(self, mm: int, vma: Vma, address: int, write: bool) -> None:
        self.mm = mm
        self.vma = vma
        self.address = address
        self.pgoff = vma.index(address)
        self.write = write
        self.cow_page = False  # do_cow_fault() supplies a page to copy into
        self.mkwrite = False  # FAULT_FLAG_MKWRITE (pfn_mkwrite)
        self.sync_pfn = -1  # the pfn dax_iomap_fault() hands back with VM_FAULT_NEEDDSYNC


class Iomap:
    """What the filesystem's iomap_begin returned for a DAX fault."""

    __slots__ = ("type", "addr", "length", "shared", "new", "dirty")

    HOLE, MAPPED = 0, 1

    def __init__(self, type_: int, addr: int, length: int, shared: bool, new: bool,
                 dirty: bool = False) -> None:
        self.type = type_
        self.addr = addr  # first pfn, when MAPPED
        self.length = length  # pages
        self.shared = shared  # IOMAP_F_SHARED
        self.new = new  # IOMAP_F_NEW
        self.dirty = dirty  # IOMAP_F_DIRTY: inode metadata not yet stable
