"""Raw struct page state from the real kernel, beside the port's, at every step (the 7.2
port for Linux 7.2, the legacy port for 6.1).

Method: /proc/kcore, read by the guest helper (daxpages.c, in daxop only; reproducers
do not carry it).  The host takes the kernel's own type layout from the BTF in the
cached ``vmlinuz`` (:mod:`daxfuzz.guest.btf`: zstd payload -> vmlinux -> ``.BTF``; 1.3 s
once, then cached in ``pagelayout.json``).  In the guest, /proc/kallsyms gives
``page_offset_base``, ``vmemmap_base`` and ``init_top_pgt`` (KASLR stays on; read once
per boot, cached in /tmp); kcore's vmemmap segments cover System RAM only, so the
helper walks the kernel page tables itself through kcore's direct map, which is why
the namespace is made ``--map=mem`` (the struct pages in RAM, not on the device).
Measured under TCG on 2 shared cores (README, "Raw struct pages"): 3.1 ms per step
(FIEMAP + about three 1 ms kcore reads), the kallsyms scan 1-3.4 s once per boot.  Not
chosen: an out-of-tree module (sid has linux-headers-7.2.13+deb14-amd64, but the
kernel is built by gcc-16 and the host has gcc 12; kbuild's tools link against sid's
glibc) and drgn (Python and libdrgn in the initramfs, and it reads /proc/kcore too).

Matching.  Model and guest PFNs differ (XFS allocates other blocks than
daxfuzz/vocab/blockfs.py), so pages are matched by identity: the model pages a step touched
(the port's ``touched`` and the oracle's ``changed``) are named by a file page --
(inode, model page) from the port's block map -- and the guest finds that file page's
pfn by FIEMAP (+ the pmem data start).  A page no file owns any more (truncated,
punched, CoW-replaced) is named by the file page that last owned it, and the guest
answers with the pfn that file page had before (``mode 1``); when XFS has given that
block to another file page already, the page is not comparable (``busy``).

Conventions (the runner's ``actual_page`` fields, translated):

* the model's PMD folio is order ``pmd_order``, the kernel's order 9; model page j of
  a group is real page j of the 2 MiB extent (translate.py), so a tail's distance to
  its head is the same in pages;
* ``index`` is in model pages, the kernel's in 4 KiB pages (``off(index) / 4096``);
  a shared folio has mapping NULL and ``share`` in the same word, compared as is;
* ``mapping`` is the model's inode number; the kernel's ``address_space`` pointer is
  named by its ``host->i_ino``, matched to f0, f1.. by stat();
* a model pin holds a FOLL_PIN; the guest's is a vmsplice()d FOLL_GET (translate.py),
  so a pinned small folio has ``1024 - 1`` less refcount per pin in the kernel, and
  a large folio no ``_pincount``;
* tail pages: compound head, own mapcount and refcount (0), as the runner compares;
* 6.1 (the legacy port): fs-DAX pages are never compound and pfn mappings take no
  reference or mapcount, so an idle page is refcount 1, mapcount 0, order 0; a page
  several files share has ``mapping`` PAGE_MAPPING_DAX_COW (0x1) and its count in
  ``index``: ``dax_cow`` and ``share`` on both sides.  The layout's member names are
  6.1's (btf.py: ``compound_head``, ``index``, ``_folio_order``).

Fields compared: refcount, page mapcount, large/entire mapcount and pincount (large
folios), order, compound head, mapping, index or share, and the extent's
FIEMAP_EXTENT_SHARED flag against the model's block share count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from daxfuzz.guest.translate import PAGE, off
from daxfuzz.vocab.geometry import Geometry
from daxfuzz.vocab.trace import Trace
from daxfuzz.vocab.world import GUP_PIN_COUNTING_BIAS
from kdax.legacy import PAGE_MAPPING_DAX_COW as LEGACY_DAX_COW

#: the kernel's order of a PMD folio (2 MiB / 4 KiB)
REAL_PMD_ORDER = 9
#: daxpages.c limits
MAX_FILES, MAX_PAGES = 8, 64
#: 6.1's page->mapping of a page shared by several files (page-flags.h
#: PAGE_MAPPING_DAX_COW, 0x1; 6.15 replaced it by mapping NULL + folio->share), and
#: both sides' name for it (the legacy port's value is LEGACY_DAX_COW)
PAGE_MAPPING_DAX_COW = 0x1
DAX_COW = "dax_cow"


@dataclass
class Expect:
    """One model page the guest is asked about after a step, and the fields expected."""

    key: tuple[int, int]  # (inode, model page index)
    mode: int  # 0 the file page's block now, 1 the block it had before (freed)
    pfn: int  # the model pfn
    fields: dict[str, object]


@dataclass
class PagePlan:
    g: Geometry
    steps: list[list[Expect]] = field(default_factory=list)  # [step-1] -> asked
    anonymous: int = 0  # touched model pages no file page ever owned (not asked)


def supported(g: Geometry) -> bool:
    return g.inodes <= MAX_FILES and g.max_file_pages <= MAX_PAGES


def port_fields(r, pfn: int, pin_large: dict[int, bool] | None = None,
                offset: dict[int, int] | None = None) -> dict[str, object]:
    """The 7.2 port's raw fields of model page `pfn` (Runner r after a step) in the
    guest's conventions (module docstring).  `pin_large`: handle -> its folio was large
    when pinned (a pin's bias depends on that, not on the folio now: a split keeps it);
    `offset`: pfn -> refcount the port's released pins left beyond the guest's gets
    (pinned large, +1, then unpinned small, -1024: a split between them)."""
    t, g = r.t, r.g
    page = t.pages[pfn]
    folio = t.page_folio(page)
    h = folio.pfn
    large = t.folio_test_large(folio)
    nr = t.folio_nr_pages(folio) if large else 1
    pl, off_ = pin_large or {}, offset or {}
    mine = [(hd, p) for hd, (p, kind) in t.handles.items()
            if kind == "pin" and (h <= p < h + nr if large else p == pfn)]
    pins = sum(1 for hd, _p in mine if pl.get(hd, large))  # +1 and _pincount
    small_pins = len(mine) - pins  # GUP_PIN_COUNTING_BIAS each
    extra = (GUP_PIN_COUNTING_BIAS - 1) * small_pins + sum(
        v for q, v in off_.items() if (h <= q < h + nr if large else q == pfn))
    exp: dict[str, object] = {"head_delta": pfn - h, "page_mapcount": page._mapcount + 1}
    if pfn != h:
        exp["refcount"] = page._refcount
        return exp
    order = t.folio_order(folio)
    exp["order"] = REAL_PMD_ORDER if large and order == g.pmd_order else order
    exp["refcount"] = page._refcount - extra
    if large:
        exp["large_mapcount"] = page._large_mapcount + 1
        exp["entire_mapcount"] = page._entire_mapcount + 1
        exp["pincount"] = page._pincount - pins
    if isinstance(page.mapping, int) and not isinstance(page.mapping, bool):
        exp["mapping"] = f"f{page.mapping}"
        exp["index"] = off(g, page.index) // PAGE
    elif page.mapping == LEGACY_DAX_COW:
        exp["mapping"], exp["share"] = DAX_COW, page.index
    else:
        exp["mapping"] = None
        exp["share"] = page.index
    return exp


def plan(trace: Trace, target: str = "7.2") -> PagePlan:
    """Replay `trace` on the port: per step, the touched model pages with a file
    identity and their expected fields."""
    from daxfuzz.core.runner import Runner
    from daxfuzz.guest.translate import unexpressible

    g = trace.geometry
    r = Runner(target, g)
    pp = PagePlan(g)
    pin_large: dict[int, bool] = {}  # live pin handle -> its folio was large then
    pinned: dict[int, int] = {}  # live pin handle -> pfn
    offset: dict[int, int] = {}  # pfn -> port refcount beyond the guest's (module doc)
    # a step the guest cannot express leaves the two apart for good
    stop = min(unexpressible(trace, target), default=len(trace.ops) + 1) - 1
    cur: dict[tuple[int, int], int] = {}  # file page -> its model pfn now
    last_key: dict[int, tuple[int, int]] = {}  # pfn -> the file page that last had it
    for n, op in enumerate(trace.ops):
        if n >= stop:
            pp.steps.append([])
            continue
        try:
            r.step(op)
        except Exception:  # noqa: BLE001 - the runner reports a crash as a result
            pp.steps.append([])
            continue
        t = r.t
        for hd in set(pin_large) - set(t.handles):  # released: the bias it took back
            p, was_large = pinned.pop(hd), pin_large.pop(hd)
            now_large = t.folio_test_large(t.page_folio(t.pages[p]))
            if was_large != now_large:
                offset[p] = offset.get(p, 0) + (GUP_PIN_COUNTING_BIAS - 1) * (
                    1 if now_large else -1)
        for hd, (p, kind) in t.handles.items():
            if hd not in pin_large and kind == "pin" and 0 <= p < len(t.pages):
                pin_large[hd] = t.folio_test_large(t.page_folio(t.pages[p]))
                pinned[hd] = p
        fs = r.t.fs
        now = {(ino, idx): p for ino, m in enumerate(fs.bmap) for idx, p in m.items()
               if p >= 0 and idx < g.max_file_pages}
        gone_keys = {k: p for k, p in cur.items() if now.get(k) != p}
        cur = now
        for k, p in now.items():
            last_key[p] = k
        owned = set(now.values())
        asked: list[Expect] = []
        for pfn in sorted(set(r.t.touched) | set(r.o.changed)):
            if not 0 <= pfn < len(r.t.pages):
                continue
            owners = [k for k in fs.owners(pfn) if k[1] < g.max_file_pages]
            if owners:
                key, mode = owners[0], 0
            elif pfn not in owned and pfn in last_key and gone_keys.get(last_key[pfn]) == pfn:
                key, mode = last_key[pfn], 1  # freed at this step: its last file page
            elif pfn in last_key and pfn not in owned:
                key, mode = last_key[pfn], 1  # freed earlier
            else:
                pp.anonymous += 1
                continue
            f = port_fields(r, pfn, pin_large, offset)
            if mode == 0:
                f["extent_shared"] = fs.shared(pfn)
            asked.append(Expect(key, mode, pfn, f))
        pp.steps.append(asked)
    return pp


def cfg_line(g: Geometry, layout: dict[str, int]) -> str:
    offs = " ".join(str(off(g, i)) for i in range(g.max_file_pages))
    return (f"pagescfg {layout['page_size']} {layout['compound_info']} {layout['mapping']} "
            f"{layout['as_host']} {layout['inode_ino']} {g.inodes} {g.max_file_pages} {offs}")


def pages_line(asked: Iterable[Expect]) -> str:
    a = list(asked)
    return "pages " + " ".join([str(len(a))] + [f"{e.key[0]} {e.key[1]} {e.mode}" for e in a])


def program_text(text: str, pp: PagePlan, layout: dict[str, int]) -> str:
    """The program with a ``pagescfg`` line after ``init`` and a ``pages`` line after
    every step's commands."""
    out: list[str] = []
    step = 0
    for line in text.splitlines():
        if line.startswith("step "):
            if step:
                out.append(pages_line(pp.steps[step - 1] if step <= len(pp.steps) else []))
            step = int(line.split()[1])
        out.append(line)
        if line.startswith("init "):
            out.append(cfg_line(pp.g, layout))
    if step:
        out.append(pages_line(pp.steps[step - 1] if step <= len(pp.steps) else []))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ the guest side --
def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _word(raw: bytes, o: int, n: int = 8) -> int:
    if o < 0 or o + n > len(raw):
        raise ValueError(f"field at {o}+{n} outside a {len(raw)}-byte struct page")
    return int.from_bytes(raw[o:o + n], "little")


def compound_head(pfn: int, info: int, vmemmap: int, page_size: int) -> int:
    """The head pfn of `pfn` from its compound_info word (page-flags.h
    ``_compound_head``: bit 0 marks a tail; the rest is the head's address, or, with
    HVO layouts, a mask that turns the tail's address into the head's)."""
    if not info & 1:
        return pfn
    m = info & ~1 & 0xFFFFFFFFFFFFFFFF
    inv = ~m & 0xFFFFFFFFFFFFFFFF
    if not ((inv + 1) & inv):  # a mask: ones from bit `shift` up
        head_va = (vmemmap + pfn * page_size) & info
    else:
        head_va = m
    return (head_va - vmemmap) // page_size


@dataclass
class GuestStep:
    keys: dict[tuple[int, int, int], tuple[int, str, int]] = field(default_factory=dict)
    raw: dict[int, bytes] = field(default_factory=dict)  # pfn -> struct page
    spaces: dict[int, int] = field(default_factory=dict)  # address_space -> i_ino
    errors: list[str] = field(default_factory=list)
    reads: int = 0
    us: float = 0.0
    done: bool = False


@dataclass
class GuestPages:
    ok: bool = False
    error: str = ""
    vmemmap: int = 0
    files: dict[int, int] = field(default_factory=dict)  # i_ino -> file index
    cfg_ms: float = 0.0
    steps: dict[int, GuestStep] = field(default_factory=dict)


_KV = re.compile(r"(\w+)=(\S+)")


def parse(lines: Iterable[str]) -> GuestPages:
    """The helper's ``@@G`` lines of one trace (the ``@@G `` prefix removed or not).
    A malformed line is noted as an error of its step, never raised."""
    gp = GuestPages()
    for line in lines:
        line = line.removeprefix("@@G").strip()
        kv = dict(_KV.findall(line))
        try:
            if line.startswith("cfg"):
                gp.ok = kv.get("ok") == "1"
                gp.error = kv.get("error", "")
                gp.vmemmap = int(kv.get("vmemmap", "0"), 16)
                gp.cfg_ms = float(kv.get("ms", "0"))
                for item in filter(None, kv.get("files", "").split(",")):
                    i, ino = item.split(":")
                    gp.files[int(ino)] = int(i)
                continue
            st = gp.steps.setdefault(int(kv["step"]), GuestStep())
            if "key" in kv:
                f, i = (int(x) for x in kv["key"].split(":"))
                mode = 1 if kv["st"] in ("gone", "busy", "none") else 0
                st.keys[(f, i, mode)] = (int(kv["pfn"]), kv["st"], int(kv.get("sh", "0")))
            elif "raw" in kv:
                st.raw[int(kv["pfn"])] = bytes.fromhex(kv["raw"])
            elif "as" in kv:
                if kv["ino"] != "?":
                    st.spaces[int(kv["as"], 16)] = int(kv["ino"])
            elif "done" in line.split():
                st.reads, st.us, st.done = int(kv["reads"]), float(kv["us"]), True
            elif "error" in kv:
                st.errors.append(f"pfn {kv.get('pfn', '?')}: {kv['error']}")
        except (KeyError, ValueError) as e:
            gp.steps.setdefault(-1, GuestStep()).errors.append(f"bad line {line[:80]!r}: {e}")
    return gp


def guest_fields(gp: GuestPages, st: GuestStep, pfn: int, layout: dict[str, int]
                 ) -> dict[str, object] | str:
    """The kernel's fields of `pfn` in the names of :func:`port_fields`, or why not."""
    raw = st.raw.get(pfn)
    if raw is None:
        return f"pfn {pfn} not dumped"
    ps = layout["page_size"]
    head = compound_head(pfn, _word(raw, layout["compound_info"]), gp.vmemmap, ps)
    got: dict[str, object] = {"head_delta": pfn - head,
                              "page_mapcount": _s32(_word(raw, layout["mapcount"], 4)) + 1,
                              "refcount": _s32(_word(raw, layout["refcount"], 4))}
    if head != pfn:
        return got
    large = bool(_word(raw, layout["flags"]) >> layout["pg_head"] & 1)
    got["order"] = 0
    if large:
        p1 = st.raw.get(pfn + 1)
        if p1 is None:
            return f"page[1] of large folio {pfn} not dumped"
        got["order"] = _word(p1, layout.get("folio_order", layout["folio_flags_1"]) - ps,
                             1)
        if layout.get("folio_large_mapcount", -1) >= 0:  # 6.1 has none
            got["large_mapcount"] = _s32(_word(p1, layout["folio_large_mapcount"] - ps,
                                               4)) + 1
        got["entire_mapcount"] = _s32(_word(p1, layout["folio_entire_mapcount"] - ps, 4)) + 1
        got["pincount"] = _s32(_word(p1, layout["folio_pincount"] - ps, 4))
    mapping = _word(raw, layout["mapping"])
    index = _word(raw, layout["index"])
    if mapping == 0:
        got["mapping"], got["share"] = None, index
    elif mapping == PAGE_MAPPING_DAX_COW:
        got["mapping"], got["share"] = DAX_COW, index
    else:
        ino = st.spaces.get(mapping)
        fi = gp.files.get(ino) if ino is not None else None
        got["mapping"] = f"f{fi}" if fi is not None else f"{mapping:#x}"
        got["index"] = index
    return got


@dataclass
class RawStep:
    compared: int = 0  # model pages compared
    skipped: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    # differences on a group the kernel's XFS placed where no PMD can map it (see
    # :func:`misplaced_groups`): the kernel's block placement, not a model gap
    placed: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # the differing fields of `diffs`
    # the (inode, group base) groups misplaced by this step (this one's included)
    misplaced: set[tuple[int, int]] = field(default_factory=set)

    def verdict(self) -> str:
        """'agree', 'DIFFER', 'placement' (only :attr:`placed` differences) or ''
        (nothing compared)."""
        if self.diffs:
            return "DIFFER"
        if self.placed:
            return "placement"
        return "agree" if self.compared else ""

    def describe(self) -> str:
        if self.diffs:
            return "raw DIFFER: " + "; ".join(self.diffs[:3]) + (
                f" (+{len(self.diffs) - 3})" if len(self.diffs) > 3 else "")
        if self.placed:
            return ("raw differ by the kernel's block placement (group not PMD-mappable): "
                    + "; ".join(self.placed[:3])
                    + (f" (+{len(self.placed) - 3})" if len(self.placed) > 3 else ""))
        if self.compared:
            return f"raw agree ({self.compared} page{'s' * (self.compared != 1)})"
        return ""


def misplaced_groups(g: Geometry, asked: list[Expect], st: GuestStep
                     ) -> dict[tuple[int, int], str]:
    """The (inode, group base) of this step's asked pages that the port keeps
    PMD-mappable but the kernel's XFS placed where no PMD fault can map them, with why.

    XFS aligns a new data or CoW fork extent to the stripe unit (``-d su=2m``) only when
    it is allocated past the fork's last extent and is at least one stripe unit long
    (libxfs/xfs_bmap.c xfs_bmap_alloc_userdata() -> xfs_bmap_isaeof(),
    xfs_bmap_btalloc_best_length() -> xfs_bmap_btalloc_at_eof(), which first tries the
    block right after the previous extent); anything else goes next to a neighbouring
    extent (xfs_bmap_adjacent()) or near the inode, at whatever disk offset that gives.
    The model does not know the disk (daxfuzz/blockfs.py puts every whole group on an
    aligned chunk), so a group the kernel placed at a pfn not 2 MiB aligned
    (fs/dax.c dax_iomap_direct_access(): ``*pfnp & (PHYS_PFN(size)-1)`` -> -EINVAL,
    dax_fault_iter() falls back) or not in one run (dax_iomap_pmd_fault():
    ``iomap_length() < PMD_SIZE``) is mapped by PTEs in the kernel where the port maps
    a PMD.  Judged from the pfns the guest reported (FIEMAP) for the group's asked
    pages, each against the group's first page: the group counts when the port's
    pfns are aligned and contiguous and the kernel's are not."""
    nr = 1 << REAL_PMD_ORDER
    groups: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
    for e in asked:
        k = st.keys.get((e.key[0], e.key[1], e.mode))
        if k is None or k[1] in ("busy", "none", "hole"):
            continue
        base = e.key[1] & ~g.pmd_colour
        groups.setdefault((e.key[0], base, e.mode), []).append((e.key[1], e.pfn, k[0]))
    out: dict[tuple[int, int], str] = {}
    for (ino, base, _mode), pages in groups.items():
        head = next((p for p in pages if p[0] == base), None)
        if head is None:
            continue
        _, mhead, khead = head
        port_ok = mhead % g.pmd_nr == 0 and all(m == mhead + i - base for i, m, _ in pages)
        if not port_ok:
            continue
        real = {i: off(g, i) // PAGE - off(g, base) // PAGE for i, _, _ in pages}
        if khead % nr:
            out[(ino, base)] = f"f{ino}:{base} at kernel pfn {khead}, not 2 MiB aligned"
            continue
        apart = [i for i, _, k in pages if k != khead + real[i]]
        if apart:
            i = apart[0]
            out[(ino, base)] = (f"f{ino}:{base} in pieces (f{ino}:{i} at kernel pfn "
                                f"{dict((j, k) for j, _, k in pages)[i]}, not "
                                f"{khead + real[i]})")
    return out


def pending_windows(steps: dict, pending: list[str]) -> dict[int, str]:
    """Steps whose page dump may catch a pending kernel call half done, with why.

    A call the guest left pending at step S (``blocked ... left_pending``: an
    uninterruptible umount waiting in dax_break_layout_final(), or a killed call that
    does not exit) goes on in the kernel while later steps run: an umount finishes as
    soon as the pin it waits for goes, evicting the inodes (their entries and
    ->mapping) while the port's unmount happens only at the later step that retries it.
    The dumps after steps S+1 .. E are of a state between the two, E being the step
    before the one that reports the call's end (``pending_from_step_S`` in its note),
    else the ``after_step`` of its ``@@P`` line, else the last step."""
    out: dict[int, str] = {}
    last = max(steps, default=0)
    for s, r in sorted(steps.items()):
        if r.status != "blocked" or "left_pending" not in r.note:
            continue
        end = last
        for t in sorted(k for k in steps if k > s):
            if f"pending_from_step_{s}_finished" in steps[t].note:
                end = t - 1
                break
        else:
            for line in pending:
                m = re.match(rf"step={s} .*after_step=(\d+)", line)
                if m:
                    end = int(m.group(1))
                    break
        for k in range(s + 1, end + 1):
            out.setdefault(k, f"the kernel's call pending from step {s} may have "
                              "finished in this step")
    return out


def compare(pp: PagePlan, gp: GuestPages, layout: dict[str, int], nsteps: int,
            skip: dict[int, str] | None = None) -> dict[int, RawStep]:
    """Per step (1-based), the port's expected fields beside the kernel's; the steps in
    `skip` (:func:`pending_windows`) are not compared, for the reason given.  A
    difference on a group the kernel placed where no PMD maps it, at this step or an
    earlier one (:func:`misplaced_groups`), is set apart in ``placed``."""
    out: dict[int, RawStep] = {}
    first: dict[tuple[int, int], tuple[int, str]] = {}  # misplaced group -> (step, why)
    for i in range(1, nsteps + 1):
        rs = out.setdefault(i, RawStep())
        rs.misplaced = set(first)
        asked = pp.steps[i - 1] if i <= len(pp.steps) else []
        st = gp.steps.get(i)
        if not asked:
            continue
        if skip and i in skip:
            rs.skipped.append(skip[i])
            continue
        if not gp.ok or st is None or not st.done:
            why = f": {st.errors[0]}" if st is not None and st.errors else ""
            rs.skipped.append(f"no page dump{why}" if gp.ok else
                              f"no page reader: {gp.error}")
            continue
        misplaced = misplaced_groups(pp.g, asked, st)
        for grp, why in misplaced.items():
            first.setdefault(grp, (i, why))
        rs.misplaced = set(first)
        # a group once misplaced stays apart from the port's: PTEs and a PTE table
        # where the port has a PMD, a small folio where it has a large one
        misplaced = {grp: why if grp in misplaced else f"after step {s}: {why}"
                     for grp, (s, why) in first.items()}
        for e in asked:
            who = f"f{e.key[0]}:{e.key[1]}" + ("(freed)" if e.mode else "")
            k = st.keys.get((e.key[0], e.key[1], e.mode))
            if k is None:
                rs.skipped.append(f"{who}: not reported")
                continue
            gpfn, state, sh = k
            if state in ("busy", "none"):
                rs.skipped.append(f"{who}: {state}")
                continue
            if state == "hole":
                rs.compared += 1
                rs.diffs.append(f"{who}: the port has block pfn {e.pfn}, the kernel a hole")
                rs.fields += [] if "hole" in rs.fields else ["hole"]
                continue
            got = guest_fields(gp, st, gpfn, layout)
            if isinstance(got, str):
                rs.skipped.append(f"{who}: {got}")
                continue
            if e.mode == 0:
                got["extent_shared"] = bool(sh)
            rs.compared += 1
            bad = [f"{f} {v} / {got.get(f)}" for f, v in e.fields.items()
                   if got.get(f) != v]
            if bad:
                text = f"{who} (port pfn {e.pfn}, kernel pfn {gpfn}): " + ", ".join(bad)
                why = misplaced.get((e.key[0], e.key[1] & ~pp.g.pmd_colour))
                if why is None:
                    rs.diffs.append(text)
                    rs.fields += [f for f in e.fields if got.get(f) != e.fields[f]
                                  and f not in rs.fields]
                else:
                    rs.placed.append(f"{text} [{why}]")
    return out


def summary(gp: GuestPages) -> str:
    """Reads and time per step of the guest's page reader."""
    done = [s for k, s in gp.steps.items() if k >= 0 and s.done]
    if not gp.ok:
        return f"page reader off: {gp.error or 'no cfg line'}"
    if not done:
        return f"page reader ready ({gp.cfg_ms:.0f} ms), no dumps"
    n = sum(len(s.raw) for s in done)
    us = sum(s.us for s in done)
    return (f"page reader: set-up {gp.cfg_ms:.0f} ms; {len(done)} steps, {n} struct pages, "
            f"{sum(s.reads for s in done)} kcore reads, {us / 1e3:.1f} ms "
            f"({us / max(1, n):.0f} us per struct page)")


class RawCheck:
    """The raw page comparison of a `kernel run` or `kernel fuzz`: the layout (once),
    each program's page lines, and each trace's comparison.  Without a layout (no BTF
    in the image, an unsupported geometry) programs go without page lines and nothing
    is compared; ``why`` says so."""

    def __init__(self, manifest: dict, target: str = "7.2") -> None:
        from pathlib import Path

        from daxfuzz.guest.btf import BtfError, layout_for
        from daxfuzz.guest.build import helper_is_current

        self.layout: dict[str, int] | None = None
        self.target = target  # the port that predicts the pages (plan())
        self.why = ""
        self.plans: dict[str, PagePlan] = {}
        helper = manifest.get("helper")
        if helper and not helper_is_current(Path(helper).parent):
            # an older daxop would take the page lines for unknown commands (a skip)
            self.why = "the guest helper predates daxpages.c: run `daxfuzz kernel setup`"
            return
        try:
            self.layout = layout_for(manifest["vmlinuz"], Path(manifest["vmlinuz"]).parent)
        except (BtfError, OSError, KeyError) as e:
            self.why = f"no struct page layout: {e}"

    def text(self, name: str, trace: Trace, text: str) -> str:
        """The program `text` of `trace` with its page lines (or as it is)."""
        if self.layout is None or not supported(trace.geometry):
            return text
        pp = plan(trace, self.target)
        self.plans[name] = pp
        return program_text(text, pp, self.layout)

    def compare(self, name: str, lines: list[str], nsteps: int,
                skip: dict[int, str] | None = None
                ) -> tuple[dict[int, RawStep], GuestPages | None]:
        pp = self.plans.get(name)
        if pp is None or self.layout is None:
            return {}, None
        gp = parse(lines)
        return compare(pp, gp, self.layout, nsteps, skip), gp


def totals(raw: dict[int, RawStep]) -> tuple[int, int]:
    """(steps whose raw pages were compared, steps where they all agree)."""
    n = sum(1 for r in raw.values() if r.verdict())
    return n, sum(1 for r in raw.values() if r.verdict() == "agree")


def placed_steps(raw: dict[int, RawStep]) -> int:
    """Steps whose only differences are the kernel's block placement
    (:func:`misplaced_groups`): compared, not agreeing, not a model gap."""
    return sum(1 for r in raw.values() if r.verdict() == "placement")


#: a negative counter in a raw difference: an underflow no correct kernel shows
NEGATIVE = re.compile(r"(refcount|mapcount|pincount) -?\d+ / -\d")


def raw_kind(op_name: str, fields: Iterable[str], negative: bool = False) -> str:
    """The kind of a raw struct page disagreement (what `kernel reduce` keeps): the op of
    the differing step and its differing fields, sorted -- ``raw:write_from:index,
    mapping,page_mapcount,refcount`` (no spaces) -- with `` [negative]`` when the
    kernel's counter went below zero."""
    return f"raw:{op_name}:{','.join(sorted(set(fields)))}" + (" [negative]" * negative)


def judge_raw(check: RawCheck, name: str, lines: list[str], nsteps: int,
              notes: list[str], skip: dict[int, str] | None = None,
              ops: Sequence | None = None, kinds: list[str] | None = None,
              misplaced: dict[int, set[tuple[int, int]]] | None = None
              ) -> tuple[int, int, str, int]:
    """`kernel fuzz`'s verdict on one trace's raw pages: (steps compared, steps that
    agree, class of a disagreement or '', steps differing only by the kernel's block
    placement).  A disagreement is a kernel finding when the kernel's counter is
    negative (an underflow no correct kernel shows), else a model gap -- unless it is
    on a group the kernel's XFS placed where no PMD maps it (:func:`misplaced_groups`),
    which is no class; each differing step is added to `notes`, and with the trace's
    `ops` its :func:`raw_kind` to `kinds` (once each, in step order).  `misplaced`, when
    given, gets the groups misplaced by each step (:attr:`RawStep.misplaced`)."""
    raw, _gp = check.compare(name, lines, nsteps, skip)
    if misplaced is not None:
        misplaced.update({i: rs.misplaced for i, rs in raw.items()})
    n, ok = totals(raw)
    cls = ""
    for step, rs in sorted(raw.items()):
        if rs.placed:
            notes.append(f"step {step}: raw pages differ by the kernel's block placement "
                         "(not PMD-mappable): port / kernel: " + "; ".join(rs.placed))
        bad = any(NEGATIVE.search(d) for d in rs.diffs + rs.placed)
        if bad:
            cls = "kernel finding"
        if (rs.diffs or bad) and ops is not None and kinds is not None \
                and 1 <= step <= len(ops):
            fields = rs.fields or [f for d in rs.placed
                                   for f in re.findall(r"(\w+) \S+ / ", d)]
            k = raw_kind(ops[step - 1].name, fields, bad)
            kinds += [] if k in kinds else [k]
        if not rs.diffs:
            continue
        notes.append(f"step {step}: raw pages: port / kernel: " + "; ".join(rs.diffs))
        cls = "kernel finding" if cls == "kernel finding" else "model gap"
    return n, ok, cls, placed_steps(raw)
