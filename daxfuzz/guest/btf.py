"""The guest kernel's struct page layout, from the BTF in its image (no debug package).

The kernel describes its own types in BTF (the ``.BTF`` ELF section of vmlinux, also
``/sys/kernel/btf/vmlinux``; include/uapi/linux/btf.h).  The host reads it from the
cached ``vmlinuz``: the bzImage's compressed payload (zstd for Debian's 7.2, xz or gzip
elsewhere) is the vmlinux ELF file, whose ``.BTF`` section is parsed here -- a header,
then types (``struct btf_type`` + kind-specific records), then a string table.  Only
what the guest page reader needs is extracted (:func:`page_layout`): the byte offsets
of struct page's and struct folio's fields (through their anonymous unions), the size
of struct page, ``address_space.host``, ``inode.i_ino`` and ``PG_head``.

Nothing read here is executed; a malformed image or section is a :class:`BtfError`.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from daxfuzz.errors import DaxfuzzError
from daxfuzz.textio import write_text_atomic

BTF_MAGIC = 0xEB9F
# kinds (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)


class BtfError(DaxfuzzError):
    """The kernel image or its BTF cannot be read."""

    exit_code = 2


@dataclass
class BtfType:
    name: str
    kind: int
    vlen: int
    kind_flag: bool
    size_or_type: int  # size for INT/STRUCT/UNION/ENUM/DATASEC/FLOAT, else a type id
    members: list[tuple[str, int, int]]  # STRUCT/UNION: (name, type id, bit offset)
    enums: list[tuple[str, int]]  # ENUM/ENUM64: (name, value)


class Btf:
    """Parsed BTF: types by id (1-based; id 0 is void) and lookups by name."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BtfError("BTF section too short")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"not BTF (magic {magic:#x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        t0, s0 = hdr_len + type_off, hdr_len + str_off
        if t0 + type_len > len(data) or s0 + str_len > len(data):
            raise BtfError("BTF header points past the section")
        self.strings = data[s0:s0 + str_len]
        self.types: list[BtfType | None] = [None]
        self._parse(data, t0, t0 + type_len)
        self._by_name: dict[tuple[str, int], int] = {}
        for i, t in enumerate(self.types):
            if t is not None and t.name:
                self._by_name.setdefault((t.name, t.kind), i)

    def _str(self, off: int) -> str:
        if off >= len(self.strings):
            raise BtfError(f"string offset {off} past the string table")
        end = self.strings.find(b"\0", off)
        return self.strings[off:end if end >= 0 else len(self.strings)].decode(errors="replace")

    def _parse(self, d: bytes, pos: int, end: int) -> None:
        extra = {INT: lambda v: 4, ARRAY: lambda v: 12, STRUCT: lambda v: 12 * v,
                 UNION: lambda v: 12 * v, ENUM: lambda v: 8 * v, FUNC_PROTO: lambda v: 8 * v,
                 VAR: lambda v: 4, DATASEC: lambda v: 12 * v, DECL_TAG: lambda v: 4,
                 ENUM64: lambda v: 12 * v}
        while pos < end:
            if pos + 12 > end:
                raise BtfError("truncated btf_type")
            name_off, info, st = struct.unpack_from("<III", d, pos)
            pos += 12
            vlen, kind, kflag = info & 0xFFFF, (info >> 24) & 0x1F, bool(info >> 31)
            if not 1 <= kind <= ENUM64:
                raise BtfError(f"unknown BTF kind {kind} at type {len(self.types)}")
            n = extra.get(kind, lambda v: 0)(vlen)
            if pos + n > end:
                raise BtfError("truncated BTF type record")
            members: list[tuple[str, int, int]] = []
            enums: list[tuple[str, int]] = []
            if kind in (STRUCT, UNION):
                for k in range(vlen):
                    mn, mt, mo = struct.unpack_from("<III", d, pos + 12 * k)
                    members.append((self._str(mn), mt, mo & 0xFFFFFF if kflag else mo))
            elif kind == ENUM:
                for k in range(vlen):
                    en, ev = struct.unpack_from("<Ii", d, pos + 8 * k)
                    enums.append((self._str(en), ev))
            elif kind == ENUM64:
                for k in range(vlen):
                    en, lo, hi = struct.unpack_from("<III", d, pos + 12 * k)
                    enums.append((self._str(en), lo | hi << 32))
            pos += n
            self.types.append(BtfType(self._str(name_off), kind, vlen, kflag, st, members,
                                      enums))

    def find(self, name: str, kind: int) -> int:
        i = self._by_name.get((name, kind))
        if i is None:
            raise BtfError(f"BTF has no {('struct', 'union')[kind == UNION]} {name}"
                           if kind in (STRUCT, UNION) else f"BTF has no type {name}")
        return i

    def resolve(self, tid: int) -> BtfType:
        """The type behind typedefs and qualifiers."""
        for _ in range(64):
            t = self.types[tid] if 0 < tid < len(self.types) else None
            if t is None:
                raise BtfError(f"bad BTF type id {tid}")
            if t.kind not in _MODIFIERS:
                return t
            tid = t.size_or_type
        raise BtfError("BTF typedef loop")

    def sizeof(self, struct_name: str) -> int:
        return self.types[self.find(struct_name, STRUCT)].size_or_type  # type: ignore[union-attr]

    def offset(self, struct_name: str, member: str) -> int:
        """Byte offset of `member` in struct `struct_name`, looking through anonymous
        struct/union members (as C does); a dotted path goes into named members."""
        tid = self.find(struct_name, STRUCT)
        bits = 0
        for part in member.split("."):
            got = self._member(self.resolve(tid), part)
            if got is None:
                raise BtfError(f"BTF: struct {struct_name} has no member {member}")
            tid, b = got
            bits += b
        if bits % 8:
            raise BtfError(f"BTF: {struct_name}.{member} is a bitfield")
        return bits // 8

    def _member(self, t: BtfType, name: str, depth: int = 0) -> tuple[int, int] | None:
        if t.kind not in (STRUCT, UNION) or depth > 8:
            return None
        for mname, mtid, mbits in t.members:
            if mname == name:
                return mtid, mbits
        for mname, mtid, mbits in t.members:
            if not mname:
                got = self._member(self.resolve(mtid), name, depth + 1)
                if got is not None:
                    return got[0], mbits + got[1]
        return None

    def enum_value(self, name: str) -> int:
        for t in self.types:
            if t is not None and t.kind in (ENUM, ENUM64):
                for en, ev in t.enums:
                    if en == name:
                        return ev
        raise BtfError(f"BTF has no enumerator {name}")


#: the fields the host decodes (struct page offsets) and the guest reads: our name ->
#: the kernel's member names, newest first (6.1 has ``compound_head`` and ``index``;
#: 7.2 ``compound_info`` and ``__folio_index``)
PAGE_FIELDS = {"flags": ("flags",), "compound_info": ("compound_info", "compound_head"),
               "mapping": ("mapping",), "index": ("__folio_index", "index"),
               "mapcount": ("_mapcount",), "refcount": ("_refcount",)}
#: struct folio's (relative to the head, so past ``page_size`` is page[1]): the order is
#: the low byte of ``_flags_1`` since 6.6, ``_folio_order`` before; 6.1's entire
#: mapcount is ``_total_mapcount`` and it has no large mapcount (-1: absent)
FOLIO_FIELDS = {"flags_1": ("_flags_1",), "order": ("_folio_order", "_flags_1"),
                "large_mapcount": ("_large_mapcount", None),
                "entire_mapcount": ("_entire_mapcount", "_total_mapcount"),
                "pincount": ("_pincount",), "nr_pages": ("_nr_pages", "_folio_nr_pages")}
#: changes when page_layout()'s output does (cached layouts of an older one are redone)
LAYOUT_VERSION = 2


def _first_offset(btf: Btf, struct_name: str, names: tuple[str | None, ...]) -> int:
    """The offset of the first of `names` struct `struct_name` has (None: -1, absent)."""
    for name in names:
        if name is None:
            return -1
        try:
            return btf.offset(struct_name, name)
        except BtfError:
            if name == names[-1]:
                raise
    raise BtfError(f"BTF: struct {struct_name} has none of {names}")


def page_layout(btf: Btf) -> dict[str, int]:
    """Offsets (bytes) the page reader needs; folio_* are relative to the folio's head,
    so those past ``page_size`` are in page[1]; -1 for a field this kernel lacks."""
    out = {"page_size": btf.sizeof("page")}
    for k, names in PAGE_FIELDS.items():
        out[k] = _first_offset(btf, "page", names)
    for k, names in FOLIO_FIELDS.items():
        out["folio_" + k] = _first_offset(btf, "folio", names)
    out["as_host"] = btf.offset("address_space", "host")
    out["inode_ino"] = btf.offset("inode", "i_ino")
    out["pg_head"] = btf.enum_value("PG_head")
    return out


# ------------------------------------------------------------------ the image -----
def elf_section(elf: bytes, name: str) -> bytes:
    """One section of a 64-bit little-endian ELF file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise BtfError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    if shentsize < 64 or shoff + shnum * shentsize > len(elf) or shstrndx >= shnum:
        raise BtfError("bad ELF section header table")

    def sh(i: int) -> tuple[int, int, int]:
        b = shoff + i * shentsize
        nm, = struct.unpack_from("<I", elf, b)
        off, size = struct.unpack_from("<QQ", elf, b + 0x18)
        return nm, off, size

    _n, stro, strsz = sh(shstrndx)
    for i in range(shnum):
        nm, off, size = sh(i)
        end = elf.find(b"\0", stro + nm)
        if elf[stro + nm:end] == name.encode():
            if off + size > len(elf):
                raise BtfError(f"ELF section {name} past the end of the file")
            return elf[off:off + size]
    raise BtfError(f"the kernel image has no {name} section")


def vmlinux_of(bzimage: bytes) -> bytes:
    """The vmlinux ELF inside a bzImage: the first compressed payload that inflates to one
    (zstd through the zstd program, as build.py does for modules; xz, gzip)."""
    cands = []
    for magic, kind in ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
                        (b"\x1f\x8b\x08", "gzip")):
        i = bzimage.find(magic)
        if i >= 0:
            cands.append((i, kind))
    for i, kind in sorted(cands):
        data = bzimage[i:]
        out = b""
        if kind == "zstd":
            if shutil.which("zstd") is None:
                raise BtfError("the kernel is zstd-compressed and zstd is not installed")
            # the payload is followed by other data: zstd complains, but inflates it
            out = subprocess.run(["zstd", "-dc"], input=data, capture_output=True).stdout
        elif kind == "xz":
            try:
                out = lzma.LZMADecompressor().decompress(data)
            except lzma.LZMAError:
                out = b""
        else:
            try:
                out = gzip.GzipFile(fileobj=__import__("io").BytesIO(data)).read()
            except (OSError, EOFError):
                out = b""
        if out[:4] == b"\x7fELF":
            return out
    raise BtfError("no vmlinux ELF found in the kernel image")


def layout_for(vmlinuz: str, cache: Path) -> dict[str, int]:
    """:func:`page_layout` of a kernel image, cached in ``cache/pagelayout.json`` (keyed
    by the image's size and mtime)."""
    st = os.stat(vmlinuz)
    key = f"v{LAYOUT_VERSION}:{st.st_size}:{int(st.st_mtime)}"
    p = cache / "pagelayout.json"
    try:
        d = json.loads(p.read_text())
        if d.get("key") == key and isinstance(d.get("layout"), dict):
            return {k: int(v) for k, v in d["layout"].items()}
    except (OSError, ValueError, TypeError):
        pass
    lay = page_layout(Btf(elf_section(vmlinux_of(Path(vmlinuz).read_bytes()), ".BTF")))
    try:
        write_text_atomic(str(p), json.dumps({"key": key, "layout": lay}, indent=1) + "\n")
    except OSError:
        pass
    return lay
