"""Raw struct pages from the guest: BTF layout, page matching and decoding (no guest)."""

from __future__ import annotations

import struct

import pytest

from daxfuzz.guest import btf, pages
from daxfuzz.vocab.trace import parse_trace

# ------------------------------------------------------------------ BTF ---------


class _Blob:
    """A hand-built BTF section (include/uapi/linux/btf.h layout)."""

    def __init__(self) -> None:
        self.strs = b"\0"
        self.types = b""
        self.n = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strs)
        self.strs += name.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, vlen: int, st: int, extra: bytes = b"",
            kflag: int = 0) -> int:
        self.types += struct.pack("<III", self.s(name), vlen | kind << 24 | kflag << 31, st)
        self.types += extra
        self.n += 1
        return self.n

    def struct(self, name: str, size: int, members, kind: int = btf.STRUCT) -> int:
        extra = b"".join(struct.pack("<III", self.s(m), t, bits) for m, t, bits in members)
        return self.add(name, kind, len(members), size, extra)

    def bytes(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, len(self.types),
                          len(self.types), len(self.strs))
        return hdr + self.types + self.strs


def _page_btf() -> bytes:
    b = _Blob()
    ul = b.add("unsigned long", btf.INT, 0, 8, struct.pack("<I", 64))
    i32 = b.add("int", btf.INT, 0, 4, struct.pack("<I", 32))
    atomic = b.struct("atomic_t", 4, [("counter", i32, 0)])
    pgoff = b.add("pgoff_t", btf.TYPEDEF, 0, ul)
    flags = b.struct("memdesc_flags_t", 8, [("f", ul, 0)])
    # struct page { flags; union { struct { lru(16); mapping; union { __folio_index;
    #   share; }; private; }; struct { compound_info; }; }; union { _mapcount; };
    #   _refcount; }  -- offsets 0, 8.., 24, 32, 48, 52
    idx_u = b.struct("", 8, [("__folio_index", pgoff, 0), ("share", ul, 0)], btf.UNION)
    cache = b.struct("", 40, [("lru", ul, 0), ("mapping", ul, 128), ("", idx_u, 192),
                              ("private", ul, 256)])
    tail = b.struct("", 8, [("compound_info", ul, 0)])
    u1 = b.struct("", 40, [("", cache, 0), ("", tail, 0)], btf.UNION)
    u2 = b.struct("", 4, [("page_type", i32, 0), ("_mapcount", atomic, 0)], btf.UNION)
    b.struct("page", 64, [("flags", flags, 0), ("", u1, 64), ("", u2, 384),
                          ("_refcount", atomic, 416)])
    # struct folio: page[1] from 64: _flags_1, _head_1, _large_mapcount (80),
    # _nr_pages_mapped, _entire_mapcount (88), _pincount (92), ..., _nr_pages (120)
    f1 = b.struct("", 64, [("_flags_1", ul, 0), ("_head_1", ul, 64),
                           ("_large_mapcount", atomic, 128), ("_entire_mapcount", atomic, 192),
                           ("_pincount", atomic, 224), ("_nr_pages", i32, 448)])
    b.struct("folio", 256, [("flags", flags, 0), ("", f1, 512)])
    b.struct("address_space", 200, [("host", ul, 0)])
    b.struct("inode", 600, [("i_mode", i32, 0), ("i_ino", ul, 512)])
    b.add("pageflags", btf.ENUM, 2, 4, struct.pack("<IiIi", b.s("PG_locked"), 0,
                                                   b.s("PG_head"), 6))
    return b.bytes()


def test_btf_offsets_through_anonymous_unions():
    t = btf.Btf(_page_btf())
    assert t.sizeof("page") == 64
    assert t.offset("page", "mapping") == 24
    assert t.offset("page", "__folio_index") == 32
    assert t.offset("page", "share") == 32
    assert t.offset("page", "compound_info") == 8
    assert t.offset("page", "_mapcount") == 48
    assert t.offset("page", "_refcount") == 52
    assert t.offset("page", "flags.f") == 0
    assert t.enum_value("PG_head") == 6


def test_page_layout_of_the_hand_built_kernel():
    lay = btf.page_layout(btf.Btf(_page_btf()))
    assert lay == {"page_size": 64, "flags": 0, "compound_info": 8, "mapping": 24,
                   "index": 32, "mapcount": 48, "refcount": 52, "folio_flags_1": 64,
                   "folio_order": 64, "folio_large_mapcount": 80, "folio_entire_mapcount": 88,
                   "folio_pincount": 92, "folio_nr_pages": 120, "as_host": 0,
                   "inode_ino": 64, "pg_head": 6}


def _page_btf_61() -> bytes:
    """Linux 6.1's shape (offsets read from Debian 12's 6.1.0-57 BTF): struct page has
    compound_head and index; struct folio _folio_order (81), _total_mapcount (84),
    _pincount (88), _folio_nr_pages (92) and no _large_mapcount."""
    b = _Blob()
    ul = b.add("unsigned long", btf.INT, 0, 8, struct.pack("<I", 64))
    i32 = b.add("int", btf.INT, 0, 4, struct.pack("<I", 32))
    u8 = b.add("unsigned char", btf.INT, 0, 1, struct.pack("<I", 8))
    atomic = b.struct("atomic_t", 4, [("counter", i32, 0)])
    cache = b.struct("", 40, [("lru", ul, 0), ("mapping", ul, 128), ("index", ul, 192),
                              ("private", ul, 256)])
    tail = b.struct("", 8, [("compound_head", ul, 0)])
    u1 = b.struct("", 40, [("", cache, 0), ("", tail, 0)], btf.UNION)
    u2 = b.struct("", 4, [("page_type", i32, 0), ("_mapcount", atomic, 0)], btf.UNION)
    b.struct("page", 64, [("flags", ul, 0), ("", u1, 64), ("", u2, 384),
                          ("_refcount", atomic, 416)])
    f1 = b.struct("", 64, [("_flags_1", ul, 0), ("_head_1", ul, 64),
                           ("_folio_dtor", u8, 128), ("_folio_order", u8, 136),
                           ("_total_mapcount", atomic, 160), ("_pincount", atomic, 192),
                           ("_folio_nr_pages", i32, 224)])
    b.struct("folio", 128, [("flags", ul, 0), ("", f1, 512)])
    b.struct("address_space", 200, [("host", ul, 0)])
    b.struct("inode", 600, [("i_mode", i32, 0), ("i_ino", ul, 512)])
    b.add("pageflags", btf.ENUM, 2, 4, struct.pack("<IiIi", b.s("PG_locked"), 0,
                                                   b.s("PG_head"), 16))
    return b.bytes()


def test_page_layout_of_a_6_1_shaped_kernel():
    # the older member names, the order in its own byte, no large mapcount (-1)
    lay = btf.page_layout(btf.Btf(_page_btf_61()))
    assert lay == {"page_size": 64, "flags": 0, "compound_info": 8, "mapping": 24,
                   "index": 32, "mapcount": 48, "refcount": 52, "folio_flags_1": 64,
                   "folio_order": 81, "folio_large_mapcount": -1,
                   "folio_entire_mapcount": 84, "folio_pincount": 88,
                   "folio_nr_pages": 92, "as_host": 0, "inode_ino": 64, "pg_head": 16}


def test_btf_errors_are_clear():
    with pytest.raises(btf.BtfError, match="magic"):
        btf.Btf(b"\0" * 40)
    with pytest.raises(btf.BtfError, match="no member"):
        btf.Btf(_page_btf()).offset("page", "nonesuch")
    data = bytearray(_page_btf())
    struct.pack_into("<I", data, 12, 10_000)  # type_len past the end
    with pytest.raises(btf.BtfError, match="past the section"):
        btf.Btf(bytes(data))


def test_elf_section_finds_btf():
    # a minimal ELF64: header, one .BTF section, the section name table
    body = b"BTFDATA!"
    names = b"\0.BTF\0.shstrtab\0"
    shoff = 64 + len(body) + len(names)
    eh = bytearray(64)
    eh[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", eh, 0x28, shoff)
    struct.pack_into("<HHH", eh, 0x3A, 64, 3, 2)

    def sh(name: int, off: int, size: int) -> bytes:
        s = bytearray(64)
        struct.pack_into("<I", s, 0, name)
        struct.pack_into("<QQ", s, 0x18, off, size)
        return bytes(s)

    elf = bytes(eh) + body + names + sh(0, 0, 0) + sh(1, 64, len(body)) \
        + sh(6, 64 + len(body), len(names))
    assert btf.elf_section(elf, ".BTF") == body
    with pytest.raises(btf.BtfError, match="no .debug"):
        btf.elf_section(elf, ".debug")
    with pytest.raises(btf.BtfError, match="ELF"):
        btf.elf_section(b"MZ" + elf[2:], ".BTF")


# ------------------------------------------------------------------ decoding ----
LAYOUT = btf.page_layout(btf.Btf(_page_btf()))
VMEMMAP = 0xFFEEF25880000000


def test_compound_head_pointer_and_mask_forms():
    # pointer form: head's struct page address | 1
    head_va = VMEMMAP + 0x40400 * 64
    assert pages.compound_head(0x40403, head_va | 1, VMEMMAP, 64) == 0x40400
    # mask form (HVO): GENMASK(63, order + 6) | 1, order 9 -> shift 15
    mask = (0xFFFFFFFFFFFFFFFF << 15) & 0xFFFFFFFFFFFFFFFF
    assert pages.compound_head(0x40403, mask | 1, VMEMMAP, 64) == 0x40400
    assert pages.compound_head(0x40403, 0, VMEMMAP, 64) == 0x40403  # not a tail


def _raw(flags=0, info=0, mapping=0, index=0, mapcount=-1, refcount=0) -> bytes:
    b = bytearray(64)
    struct.pack_into("<QQ", b, 0, flags, info)
    struct.pack_into("<QQ", b, 24, mapping, index)
    struct.pack_into("<ii", b, 48, mapcount, refcount)
    return bytes(b)


def _raw1(info, order=0, large=-1, entire=-1, pins=0) -> bytes:  # page[1] of a folio
    b = bytearray(_raw(info=info))
    struct.pack_into("<Q", b, 0, order)
    struct.pack_into("<i", b, 16, large)
    struct.pack_into("<ii", b, 24, entire, pins)
    return bytes(b)


PMD_FAULT = """\
mmap mm=0 vma=0 ino=0 pages=4
fault mm=0 vma=0 pgoff=0 write=1
truncate ino=0
"""


def test_plan_names_touched_pages_by_file_page_with_port_fields():
    tr = parse_trace(PMD_FAULT)
    pp = pages.plan(tr)
    assert pp.steps[0] == []  # mmap touches no page
    asked = pp.steps[1]
    # the PMD write fault allocates model pfns 0..3 for ino0 pages 0..3: one order-2 folio
    assert [(e.key, e.mode) for e in asked] == [((0, i), 0) for i in range(4)]
    head = asked[0].fields
    assert head == {"head_delta": 0, "page_mapcount": 0, "order": 9, "refcount": 1,
                    "large_mapcount": 1, "entire_mapcount": 1, "pincount": 0,
                    "mapping": "f0", "index": 0, "extent_shared": False}
    assert asked[2].fields == {"head_delta": 2, "page_mapcount": 0, "refcount": 0,
                               "extent_shared": False}
    # the truncate frees the blocks (the PMD was zapped first): asked by the file page
    # that last had them, mode 1 (the block it had before)
    assert {(e.key, e.mode) for e in pp.steps[2]} == {((0, i), 1) for i in range(4)}
    assert pp.steps[2][0].fields["mapping"] is None
    assert "extent_shared" not in pp.steps[2][0].fields


def test_program_text_adds_cfg_and_a_pages_line_per_step():
    from daxfuzz.guest.translate import translate

    tr = parse_trace(PMD_FAULT)
    pp = pages.plan(tr)
    text = pages.program_text(translate(tr).text, pp, LAYOUT)
    lines = text.splitlines()
    cfg = next(x for x in lines if x.startswith("pagescfg"))
    # geometry defaults: 2 files, 16 model pages, pmd_order 2: page 4 is at 2 MiB
    assert cfg.startswith("pagescfg 64 8 24 0 64 2 16 0 4096 8192 12288 2097152 ")
    assert lines.index(cfg) == 2  # right after init
    assert [x for x in lines if x.startswith("pages ")] == [
        "pages 0", "pages 4 0 0 0 0 1 0 0 2 0 0 3 0", "pages 4 0 0 1 0 1 1 0 2 1 0 3 1"]


def _guest_lines(head_ref=1, head_pfn=0x40400, ino=4099):
    hva = VMEMMAP + head_pfn * 64
    lines = [f"cfg ok=1 levels=5 vmemmap={VMEMMAP:#x} pmem=0x40000000 files=0:4099,1:4100"]
    for i in range(4):
        lines.append(f"step=2 key=0:{i} pfn={head_pfn + i} st=cur sh=0")
    lines.append(f"step=2 pfn={head_pfn} raw="
                 + _raw(flags=1 << 6, mapping=0xFF4A6880414C3E88, index=0,
                        refcount=head_ref).hex())
    lines.append(f"step=2 as=0xff4a6880414c3e88 ino={ino}")
    lines.append(f"step=2 pfn={head_pfn + 1} raw="
                 + _raw1(hva | 1, order=9, large=0, entire=0).hex())
    for i in (2, 3):
        lines.append(f"step=2 pfn={head_pfn + i} raw=" + _raw(info=hva | 1).hex())
    lines.append("step=2 done reads=12 us=3051")
    return lines


def test_compare_agrees_on_the_kernel_shape_and_differs_on_a_counter():
    tr = parse_trace(PMD_FAULT)
    pp = pages.plan(tr)
    lines = _guest_lines()
    got = pages.compare(pp, pages.parse(lines), LAYOUT, 3)
    assert got[2].verdict() == "agree", got[2].diffs
    assert got[2].compared == 4
    assert got[1].verdict() == ""  # nothing asked
    assert got[3].skipped and got[3].verdict() == ""  # no dump for step 3
    bad = pages.compare(pp, pages.parse(_guest_lines(head_ref=2)), LAYOUT, 3)
    assert bad[2].verdict() == "DIFFER"
    assert "refcount 1 / 2" in bad[2].diffs[0]
    other = pages.compare(pp, pages.parse(_guest_lines(ino=4100)), LAYOUT, 3)
    assert "mapping f0 / f1" in other[2].diffs[0]


def test_a_pinned_small_page_counts_a_get_in_the_guest():
    tr = parse_trace("mmap mm=0 vma=0 ino=0 pgoff=0 pages=1\n"
                     "fault mm=0 vma=0 pgoff=0 write=1\npin mm=0 vma=0 pgoff=0 h=0\n")
    pp = pages.plan(tr)
    (e,) = pp.steps[2]
    # the port: PTE 1 + FOLL_PIN 1024; the guest's vmsplice takes a FOLL_GET: 1 + 1
    assert e.fields["refcount"] == 2 and e.fields["order"] == 0


def test_legacy_cow_page_is_dax_cow_with_its_count_on_both_sides():
    # 6.1: a write fault over a reflinked page associates the CoW copy with
    # PAGE_MAPPING_DAX_COW (0x1) and counts in ->index; the truncate's index-- keeps the
    # flag at count 0 (the documented off-by-one) -- confirmed on Debian 12's 6.1
    tr = parse_trace("mmap mm=0 vma=0 ino=0 huge=0\nfault mm=0 vma=0 pgoff=0 write=1\n"
                     "reflink src=0 dst=1 pages=1\nfault mm=0 vma=0 pgoff=0 write=1\n"
                     "truncate ino=0\n")
    pp = pages.plan(tr, "legacy")
    copy = next(e for e in pp.steps[3] if e.key == (0, 0))
    assert copy.fields == {"head_delta": 0, "page_mapcount": 0, "order": 0, "refcount": 1,
                           "mapping": "dax_cow", "share": 1, "extent_shared": False}
    (freed,) = pp.steps[4]
    assert freed.mode == 1 and freed.fields["mapping"] == "dax_cow"
    assert freed.fields["share"] == 0
    lay61 = btf.page_layout(btf.Btf(_page_btf_61()))
    gp = pages.parse(["cfg ok=1 levels=4 vmemmap=0x0 files=0:4099,1:4100",
                      "step=4 pfn=7 raw=" + _raw(mapping=1, index=1, refcount=1).hex(),
                      "step=4 done reads=1 us=5"])
    assert pages.guest_fields(gp, gp.steps[4], 7, lay61) == {
        "head_delta": 0, "page_mapcount": 0, "refcount": 1, "order": 0,
        "mapping": "dax_cow", "share": 1}


def test_bad_guest_lines_never_raise():
    gp = pages.parse(["cfg ok=1 vmemmap=zz", "step=x key=1", "step=2 pfn=5 raw=zz",
                      "garbage", "step=2 key=0:0 pfn=1 st=cur"])
    assert gp.steps[-1].errors
    assert not pages.parse(["cfg ok=0 error=no_/proc/kcore"]).ok
    short = pages.parse(["cfg ok=1 levels=4 vmemmap=0x0 files=0:1",
                         "step=1 pfn=3 raw=00ff", "step=1 done reads=1 us=5"])
    with pytest.raises(ValueError):
        pages.guest_fields(short, short.steps[1], 3, LAYOUT)


def test_pins_taken_large_and_released_after_a_split_count_as_gets():
    # pin_pages of the PMD folio: +1 each on the head (port _pincount 4; the guest's
    # vmsplice: 4 gets).  The CoW write splits the folio under the pins; the unpin of
    # the now order-0 pages takes back 1024 each in the port, 1 each in the guest.
    tr = parse_trace("""\
mmap mm=0 vma=0 ino=0 pages=4
fault mm=0 vma=0 pgoff=0 write=1
reflink src=0 dst=1 pages=4
fault mm=0 vma=0 pgoff=0
pin_pages mm=0 vma=0 pgoff=0 pages=4 h=0 write=0
write ino=0 pgoff=1 pages=1
unpin_pages h=0 pages=4
""")
    pp = pages.plan(tr)
    assert pp.steps[4][0].fields["refcount"] == 5  # PMD map + 4 pins (FOLL_GET: +1)
    assert pp.steps[4][0].fields["pincount"] == 0  # no FOLL_PIN in the guest
    # after the unpin: 4 - 1 = 3 on the old head, -1 on the old tails (the underflow
    # the kernel shows too), not the port's -1020 / -1024
    assert [e.fields["refcount"] for e in pp.steps[6]] == [3, -1, -1, -1]


def test_pending_windows_span_a_pending_calls_run():
    from daxfuzz.guest.results import StepResult

    def st(i, status="ok", note=""):
        return StepResult(i, status, 1.0, "0", note)

    # corpus/unmount-with-live-pin.trace: the umount of step 5 is left pending (it
    # waits for the pin), the unpin of step 6 lets it finish, the umount of step 7
    # reports it: only step 6's dump is of a state between the port's steps
    steps = {1: st(1), 5: st(5, "blocked", "state=D,wchan=x_left_pending"), 6: st(6),
             7: st(7, note="pending_from_step_5_finished_after_step_7"), 8: st(8)}
    w = pages.pending_windows(steps, [])
    assert list(w) == [6] and "step 5" in w[6]
    # reaped at the start of step 9 (@@P after_step=8): steps 4..8
    steps = {3: st(3, "blocked", "state=R,wchan=0_left_pending"), 9: st(9)}
    assert list(pages.pending_windows(
        steps, ["step=3 done_ms=12.0 code=-9 after_step=8"])) == [4, 5, 6, 7, 8]
    # never reaped: to the last step; a killed call that exited has no window
    assert list(pages.pending_windows(steps, [])) == [4, 5, 6, 7, 8, 9]
    steps = {2: st(2, "blocked", "state=S,wchan=w_interrupted_by_SIGKILL"), 3: st(3)}
    assert pages.pending_windows(steps, []) == {}


def test_compare_skips_the_steps_it_is_told_to():
    tr = parse_trace(PMD_FAULT)
    pp = pages.plan(tr)
    got = pages.compare(pp, pages.parse(_guest_lines(head_ref=2)), LAYOUT, 3,
                        {2: "pending"})
    assert got[2].verdict() == "" and got[2].skipped == ["pending"]


def test_a_step_the_guest_did_not_dump_says_why():
    # the helper skips the dump while a killed call still runs (6.1's spinning reflink)
    tr = parse_trace(PMD_FAULT)
    pp = pages.plan(tr)
    lines = ["cfg ok=1 levels=4 vmemmap=0x0 files=0:4099,1:4100",
             "step=2 error=a_call_from_step_2_is_still_running"]
    got = pages.compare(pp, pages.parse(lines), LAYOUT, 3)
    assert got[2].verdict() == ""
    assert got[2].skipped == ["no page dump: pfn ?: a_call_from_step_2_is_still_running"]
