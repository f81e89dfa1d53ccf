"""struct vm_fault and the vm_fault_t codes (include/linux/mm_types.h, mm.h)."""

from __future__ import annotations

from daxfuzz.world import Vma

VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_FALLBACK = 0x000800
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV


class Vmf:
    """One fault: the VMA, the (page) address, the file offset and the write flag."""

    __slots__ = ("mm", "vma", "address", "pgoff", "write", "cow_page", "mkwrite")

    def __init__(self, mm: int, vma: Vma, address: int, write: bool) -> None:
        self.mm = mm
        self.vma = vma
        self.address = address
        self.pgoff = vma.index(address)
        self.write = write
        self.cow_page = False  # do_cow_fault() supplies a page to copy into
        self.mkwrite = False  # FAULT_FLAG_MKWRITE (pfn_mkwrite)


class Iomap:
    """What the filesystem's iomap_begin returned for a DAX fault."""

    __slots__ = ("type", "addr", "length", "shared", "new")

    HOLE, MAPPED = 0, 1

    def __init__(self, type_: int, addr: int, length: int, shared: bool, new: bool) -> None:
        self.type = type_
        self.addr = addr  # first pfn, when MAPPED
        self.length = length  # pages
        self.shared = shared  # IOMAP_F_SHARED
        self.new = new  # IOMAP_F_NEW
