"""The total byte codec: every byte string is an op list, every op list is bytes.

``decode`` is what the atheris harness runs on every input, so every mutation of a
crash or corpus file is still a meaningful sequence; ``encode`` turns traces into
bytes so reproducers seed the corpus.  ``decode(encode(ops, g), g) == ops`` holds
for every op list valid under `g`.

Layout, one op after another until the bytes run out::

    kind byte        picks the op kind through a 256-slot weight table (while the
                     shadow has nothing mapped, one where mmap takes half the slots:
                     faults, GUP, munmap and msync would only fail)
    one field each   fixed width (1 byte for the default geometry), big-endian

A field is either *raw* (value = low + x mod size) or *chosen*: the codec keeps a
cheap shadow of what the sequence made live (mapped VMA slots, held GUP handles,
file pages already written), and an ``x`` in the lower 7/8 of the field's range
picks among the live values (``live[x mod len(live)]``), the top 1/8 any value of the
domain (a fault names three chosen fields: with a half each, 7 faults in 8 missed
every mapping).  So random bytes mostly map PMD-aligned windows, fault on mapped pages
(the first half of the live zone: on pages a shared write, a write GUP or a reflink
made real, where the share and CoW paths are), unpin held handles, reflink whole, aligned
extents of a mapped file into another file and fail the first-allocated PFNs, and
every value stays reachable.  The shadow is a guess (it does not run the kernel);
it only biases.

A kind byte with no bytes after it decodes its fields as zero bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields

from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry

# How a field's value is picked (see the module docstring).
RAW, FREE_SLOT, LIVE_MM, LIVE_SLOT, LIVE_PGOFF, FREE_H, PIN_H, GET_H = range(8)
# reflink: a mapped file's inode, another inode, a PMD-aligned offset, a whole extent;
# memory failure: a PFN of the first two PMD-sized chunks (where blocks are allocated
# first: see daxfuzz.vocab.blockfs)
LIVE_INO, OTHER_INO, ALIGNED_PGOFF, EXTENT_LEN, LOW_PFN = range(8, 13)
# a flag that is usually set (MAP_SHARED, PROT_WRITE, aligned): 1 three times in four of
# the live zone, as the Hypothesis engine draws them
LIKELY = 13
# write(2): a file page already written (where blocks are real: overwrite, or copy on
# write once reflinked), else any page of a mapped window; one page or a whole extent
WRITTEN_PGOFF, WRITE_LEN = 14, 15
# fork: a process that maps nothing, to be the child
FREE_MM = 16
# write_from: the source mapping's own file and page (a write of a mapping back over
# itself), else a mapped file / a written page of the file
SRC_INO, SRC_PGOFF_TO = 17, 18
# munmap: the whole slot (pages=0) half the time, else one page or a PMD's worth;
# mremap: another VMA slot of the process
UNMAP_LEN, OTHER_SLOT = 19, 20

DEFAULT_WEIGHTS: dict[str, int] = {
    "mmap": 12, "munmap": 6, "fault": 24, "msync": 4, "reflink": 8, "pin": 12, "get": 8,
    "unpin": 8, "put": 8, "truncate": 8, "punch": 8, "unmount": 2, "mount": 2,
    "memory_failure": 4, "write": 8, "dontneed": 6,
    "fork": 4, "exchange": 4, "swapext": 2,
    "pin_pages": 4, "unpin_pages": 4, "write_from": 4, "mprotect": 4, "mremap": 4,
}

# Field name -> chooser, per op kind; unnamed fields are RAW.
_CHOOSERS: dict[type[O.Op], dict[str, int]] = {
    O.Mmap: {"vma": FREE_SLOT, "pgoff": ALIGNED_PGOFF, "pages": EXTENT_LEN,
             "shared": LIKELY, "write": LIKELY, "aligned": LIKELY},
    O.Munmap: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "pages": UNMAP_LEN},
    O.Fault: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF},
    O.Msync: {"mm": LIVE_MM, "vma": LIVE_SLOT},
    O.Pin: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "h": FREE_H},
    O.Get: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "h": FREE_H},
    O.Unpin: {"h": PIN_H},
    O.Put: {"h": GET_H},
    O.Reflink: {"src": LIVE_INO, "dst": OTHER_INO, "src_pgoff": ALIGNED_PGOFF,
                "dst_pgoff": ALIGNED_PGOFF, "pages": EXTENT_LEN},
    O.MemoryFailure: {"pfn": LOW_PFN},
    O.Write: {"ino": LIVE_INO, "pgoff": WRITTEN_PGOFF, "pages": WRITE_LEN},
    O.Dontneed: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "pages": WRITE_LEN},
    O.Fork: {"mm": LIVE_MM, "child": FREE_MM},
    O.Exchange: {"ino1": LIVE_INO, "ino2": OTHER_INO, "pgoff1": ALIGNED_PGOFF,
                 "pgoff2": ALIGNED_PGOFF, "pages": EXTENT_LEN},
    O.Swapext: {"ino": LIVE_INO, "tmp": OTHER_INO},
    O.PinPages: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "pages": WRITE_LEN,
                 "h": FREE_H, "write": LIKELY},
    O.UnpinPages: {"h": PIN_H, "pages": WRITE_LEN},
    O.WriteFrom: {"mm": LIVE_MM, "vma": LIVE_SLOT, "src_pgoff": LIVE_PGOFF, "ino": SRC_INO,
                  "pgoff": SRC_PGOFF_TO, "pages": WRITE_LEN},
    O.Mprotect: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "pages": WRITE_LEN},
    O.Mremap: {"mm": LIVE_MM, "vma": LIVE_SLOT, "pgoff": LIVE_PGOFF, "pages": WRITE_LEN,
               "to": OTHER_SLOT, "aligned": LIKELY},
}


#: largest --weights value (the default weights are 1-40)
MAX_WEIGHT = 10000


def parse_weights(text: str) -> dict[str, int]:
    """Parse ``op=w,op=w`` (the ``--weights`` flag) over DEFAULT_WEIGHTS."""
    from daxfuzz.textio import decimal

    w = dict(DEFAULT_WEIGHTS)
    given: set[str] = set()
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, val = item.partition("=")
        if not sep or name not in w:
            raise ValueError(f"--weights: {item!r}: write op=weight with op one of "
                             f"{', '.join(w)}")
        if name in given:
            raise ValueError(f"--weights: {name} given twice")
        given.add(name)
        v = decimal(val)  # int() would take '+3', ' 3', '1_0' and Arabic-Indic digits
        if v is None or not 0 <= v <= MAX_WEIGHT:
            raise ValueError(f"--weights: {item!r}: a weight is a whole number 0.."
                             f"{MAX_WEIGHT} in ASCII digits")
        w[name] = v
    if not any(w.values()):
        raise ValueError("--weights: every weight is 0; enable at least one op kind")
    return w


class _Shadow:
    """What the sequence so far has probably made live; updated from ops alone."""

    __slots__ = ("g", "handles", "mounted", "touched", "vmas")

    def __init__(self, g: Geometry) -> None:
        self.g = g
        self.vmas: list[dict[int, O.Mmap]] = [{} for _ in range(g.mms)]
        self.handles: dict[int, bool] = {}  # h -> is a pin
        self.mounted = True
        self.touched: list[set[int]] = [set() for _ in range(g.inodes)]  # ino -> pgoffs

    def touched_in(self, mm: int, vma: int) -> list[int]:
        """File pages of VMA (mm, vma) that an earlier allocating write (fault or GUP
        through a shared writable VMA) or a reflink of such pages made real."""
        m = self.vmas[mm].get(vma)
        if m is None:
            return []
        t = self.touched[m.ino]
        return [i for i in range(m.pgoff, m.pgoff + m.pages) if i in t]

    def live(self, chooser: int, vals: list[int]) -> list[int]:
        """Live values for `chooser`, given the fields decoded so far (`vals`)."""
        if chooser == LIVE_MM:
            return [mm for mm, v in enumerate(self.vmas) if v]
        if chooser == LIVE_SLOT:
            return sorted(self.vmas[vals[0]])
        if chooser == LIVE_PGOFF:
            m = self.vmas[vals[0]].get(vals[1])
            return list(range(m.pgoff, m.pgoff + m.pages)) if m is not None else []
        if chooser == FREE_SLOT:
            used = self.vmas[vals[0]]
            return [s for s in range(self.g.vmas) if s not in used]
        if chooser == FREE_H:
            return [h for h in range(self.g.handles) if h not in self.handles]
        if chooser == PIN_H:
            return sorted(h for h, pin in self.handles.items() if pin)
        if chooser == GET_H:
            return sorted(h for h, pin in self.handles.items() if not pin)
        g = self.g
        if chooser == LIVE_INO:
            return sorted({m.ino for v in self.vmas for m in v.values()})
        if chooser == OTHER_INO:
            return [i for i in range(g.inodes) if i != vals[0]]
        if chooser == ALIGNED_PGOFF:
            return list(range(0, g.file_pages, g.pmd_nr))
        if chooser == EXTENT_LEN:
            return sorted(n for n in {g.pmd_nr, g.file_pages} if n <= g.max_file_pages)
        if chooser == LIKELY:
            return [1, 1, 1, 0]
        if chooser == LOW_PFN:
            return list(range(min(g.pages, 2 * g.pmd_nr)))
        if chooser == WRITTEN_PGOFF:
            hot = sorted(self.touched[vals[0]])
            if hot:
                return hot
            return sorted({i for v in self.vmas for m in v.values() if m.ino == vals[0]
                           for i in range(m.pgoff, min(m.pgoff + m.pages,
                                                       self.g.max_file_pages))})
        if chooser == SRC_INO:
            m = self.vmas[vals[0]].get(vals[1])
            inos = sorted({v.ino for mv in self.vmas for v in mv.values()})
            return ([m.ino, m.ino] if m is not None else []) + inos
        if chooser == SRC_PGOFF_TO:
            return [vals[2], vals[2]] + sorted(self.touched[vals[3]])
        if chooser == FREE_MM:
            return [mm for mm, v in enumerate(self.vmas) if not v and mm != vals[0]]
        if chooser == WRITE_LEN:
            return [n for n in (1, 1, g.pmd_nr) if n <= g.max_file_pages]
        if chooser == UNMAP_LEN:
            return [n for n in (0, 0, 1, g.pmd_nr) if n <= g.max_file_pages]
        if chooser == OTHER_SLOT:
            return [s for s in range(g.vmas) if s != vals[1]]
        return []

    def update(self, op: O.Op) -> None:
        t = type(op)
        if t is O.Mmap:
            if (self.mounted and op.vma not in self.vmas[op.mm]
                    and op.pgoff + op.pages <= self.g.max_file_pages):
                self.vmas[op.mm][op.vma] = op
        elif t is O.Munmap:
            m = self.vmas[op.mm].get(op.vma)
            if m is not None and (not op.pages or (
                    op.pgoff <= m.pgoff and m.pgoff + m.pages <= op.pgoff + op.pages)):
                del self.vmas[op.mm][op.vma]
        elif t is O.Mremap:
            m = self.vmas[op.mm].get(op.vma)
            if (m is not None and op.to != op.vma
                    and op.pgoff + op.pages <= self.g.max_file_pages):
                self.vmas[op.mm][op.to] = O.Mmap(
                    op.mm, op.to, m.ino, op.pgoff, op.pages, m.shared, m.write, m.huge,
                    op.aligned, m.sync)
                if op.pgoff <= m.pgoff and m.pgoff + m.pages <= op.pgoff + op.pages:
                    del self.vmas[op.mm][op.vma]
        elif t is O.Fault or t is O.Pin or t is O.Get:
            m = self.vmas[op.mm].get(op.vma)
            if m is not None and op.write and m.shared and m.write:
                self.touched[m.ino].add(op.pgoff)
            if (t is not O.Fault and op.h not in self.handles and m is not None
                    and m.pgoff <= op.pgoff < m.pgoff + m.pages
                    and (m.write or not op.write) and not getattr(op, "longterm", 0)):
                self.handles[op.h] = t is O.Pin
        elif t is O.Reflink:
            src, dst = self.touched[op.src], self.touched[op.dst]
            # only file pages the world has: a range past the last page put values like
            # write_from pgoff=18 (of 0..15) into traces that could not be read back
            for i in range(min(op.pages, self.g.max_file_pages - op.dst_pgoff)):
                if op.src_pgoff + i in src:
                    dst.add(op.dst_pgoff + i)
        elif t is O.Exchange or t is O.Swapext:
            # written pages move with their blocks: either side may be real now
            a, b = (op.ino1, op.ino2) if t is O.Exchange else (op.ino, op.tmp)
            both = self.touched[a] | self.touched[b]
            self.touched[a] = set(both)
            self.touched[b] = set(both)
        elif t is O.PinPages:
            m = self.vmas[op.mm].get(op.vma)
            hs = range(op.h, op.h + op.pages)
            if (m is not None and op.h + op.pages <= self.g.handles
                    and not any(h in self.handles for h in hs)
                    and m.pgoff <= op.pgoff and op.pgoff + op.pages <= m.pgoff + m.pages
                    and (m.write or not op.write)):
                for h in hs:
                    self.handles[h] = True
                if op.write and m.shared and m.write:
                    self.touched[m.ino].update(range(op.pgoff, op.pgoff + op.pages))
        elif t is O.UnpinPages:
            hs = range(op.h, op.h + op.pages)
            if all(self.handles.get(h) is True for h in hs):
                for h in hs:
                    del self.handles[h]
        elif t is O.Unpin or t is O.Put:
            if self.handles.get(op.h) is (t is O.Unpin):
                del self.handles[op.h]
        elif t is O.Fork:
            if op.child != op.mm and not self.vmas[op.child]:
                self.vmas[op.child] = dict(self.vmas[op.mm])
        elif t is O.Write or t is O.WriteFrom:
            if self.mounted and op.pgoff + op.pages <= self.g.max_file_pages:
                self.touched[op.ino].update(range(op.pgoff, op.pgoff + op.pages))
        elif t is O.Unmount:
            if not any(self.vmas):
                self.mounted = False
        elif t is O.Mount:
            self.mounted = True


def _width(n: int, room: int = 2) -> int:
    """Bytes for a field of `n` values: raw fields 2n <= 256**w; chosen fields keep the
    top 1/8 of the range for raw values (room=8: 8n <= 256**w)."""
    w = 1
    while 256 ** w < room * n:
        w += 1
    return w


class Codec:
    """The codec for one geometry and one op mix (weights per op kind)."""

    def __init__(self, g: Geometry, weights: Mapping[str, int] | None = None) -> None:
        self.g = g
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.table = self._kind_table(self.weights)
        w0 = dict(self.weights)
        if w0.get("mmap", 0) > 0:
            w0["mmap"] = max(w0["mmap"], sum(v for k, v in w0.items() if k != "mmap"))
        self.table0 = self._kind_table(w0)  # nothing mapped
        self.kind_byte: dict[type[O.Op], int] = {}
        self.kind_byte0: dict[type[O.Op], int] = {}
        for b, cls in enumerate(self.table):
            self.kind_byte.setdefault(cls, b)
        for b, cls in enumerate(self.table0):
            self.kind_byte0.setdefault(cls, b)
        # Per kind: (field name, low, size, width, split, chooser) for each field.
        self.plan: dict[type[O.Op], tuple[tuple[str, int, int, int, int, int], ...]] = {}
        for cls in O.OP_TYPES:
            ch = _CHOOSERS.get(cls, {})
            plan = []
            for f, dom in zip(fields(cls), cls.domains, strict=True):
                lo, hi = O.domain_size(dom, g)
                n = hi - lo + 1
                chooser = ch.get(f.name, RAW)
                w = _width(n, 2 if chooser == RAW else 8)
                # `split`: x below it chooses a live value, x - split above it is raw
                plan.append((f.name, lo, n, w, 256 ** w * 7 // 8, chooser))
            self.plan[cls] = tuple(plan)
        #: bytes one op of each kind takes (its kind byte and its fields)
        self.op_len: dict[type[O.Op], int] = {
            cls: 1 + sum(p[3] for p in plan) for cls, plan in self.plan.items()}
        self.max_len = max(self.op_len.values())

    @staticmethod
    def _kind_table(weights: Mapping[str, int]) -> tuple[type[O.Op], ...]:
        kinds = [c for c in O.OP_TYPES if weights.get(c.name, 0) > 0]
        if not kinds:
            raise ValueError("codec: every op kind has weight 0")
        total = sum(weights[c.name] for c in kinds)
        slots = {c: max(1, 256 * weights[c.name] // total) for c in kinds}
        # Hand the rounding remainder to (or take the excess from) the heaviest kind.
        heavy = max(kinds, key=lambda c: slots[c])
        slots[heavy] += 256 - sum(slots.values())
        table: list[type[O.Op]] = []
        for c in kinds:
            table += [c] * slots[c]
        return tuple(table)

    def decode(self, data: bytes, max_ops: int | None = None,
               starts: list[tuple[int, bool]] | None = None,
               kinds: Sequence[type[O.Op]] | None = None) -> list[O.Op]:
        """Every byte string to a valid op list (at most `max_ops` ops).

        With `starts`, append to it each op's first byte offset and whether anything was
        mapped before it (which kind table reads its kind byte), then the same for the
        offset where decoding stopped: the op boundaries a mutator cuts at.  With
        `kinds` (`data` a bytearray), first rewrite the kind byte of op k, for k <
        len(kinds), to one that reads as kinds[k] where it is: an op moved to where the
        other kind table applies keeps its kind (`fuzz.mutator`)."""
        sh = _Shadow(self.g)
        ops: list[O.Op] = []
        i, end = 0, len(data)
        table, table0 = self.table, self.table0
        vmas = sh.vmas
        while i < end and (max_ops is None or len(ops) < max_ops):
            mapped = any(vmas)
            if starts is not None:
                starts.append((i, mapped))
            if kinds is not None and len(ops) < len(kinds):
                b = (self.kind_byte if mapped else self.kind_byte0).get(kinds[len(ops)])
                if b is not None:
                    data[i] = b  # type: ignore[index]
            cls = (table if mapped else table0)[data[i]]
            vals, i = self._fields(cls, data, i + 1, sh)
            op = cls(*vals)
            sh.update(op)
            ops.append(op)
        if starts is not None:
            starts.append((i, any(vmas)))
        return ops

    def _fields(self, cls: type[O.Op], data: bytes, i: int, sh: _Shadow
                ) -> tuple[list[int], int]:
        """The field values of a `cls` op whose fields start at data[i] (zero bytes past
        the end), and the offset after them."""
        end = len(data)
        vals: list[int] = []
        for _name, lo, n, w, split, chooser in self.plan[cls]:
            if w == 1:
                x = data[i] if i < end else 0
            else:
                x = int.from_bytes(data[i:i + w].ljust(w, b"\0"), "big")
            i += w
            if chooser != RAW and x < split:
                k = x
                if chooser == LIVE_PGOFF:  # first half of the live zone: a written page, if any
                    if x < split >> 1:
                        hot = sh.touched_in(vals[0], vals[1])
                        if hot:
                            vals.append(hot[x % len(hot)])
                            continue
                    else:
                        k = x - (split >> 1)
                live = sh.live(chooser, vals)
                if live:
                    vals.append(live[k % len(live)])
                    continue
            elif chooser != RAW:
                x -= split
            vals.append(lo + x % n)
        return vals, i

    def shadow(self) -> _Shadow:
        """A fresh shadow, for `decode_op` (what an empty sequence made live)."""
        return _Shadow(self.g)

    def decode_op(self, data: bytes, sh: _Shadow) -> O.Op:
        """The one op `data` starts with, after the ops `sh` has seen (`sh` is updated):
        op by op, as `decode` reads a whole string.  ``len(data) >= 1``; a byte string
        of `max_len` bytes holds any op."""
        cls = (self.table if any(sh.vmas) else self.table0)[data[0]]
        op = cls(*self._fields(cls, data, 1, sh)[0])
        sh.update(op)
        return op

    def encode(self, ops: Iterable[O.Op]) -> bytes:
        """The canonical bytes of `ops`; ValueError if an op is invalid or disabled."""
        sh = _Shadow(self.g)
        out = bytearray()
        for op in ops:
            cls = type(op)
            kind_byte = self.kind_byte if any(sh.vmas) else self.kind_byte0
            if cls not in kind_byte:
                raise ValueError(f"codec: op kind {op.name!r} has weight 0 in this op mix")
            op.check(self.g)
            out.append(kind_byte[cls])
            vals: list[int] = []
            for name, lo, _n, w, split, chooser in self.plan[cls]:
                v = getattr(op, name)
                if chooser == RAW:
                    x = v - lo
                elif chooser == LIVE_PGOFF:
                    # written pages, then the VMA's pages, each in half the live zone
                    # (a page past it in a very long VMA is written as a raw value)
                    q = split >> 1
                    hot = sh.touched_in(vals[0], vals[1])
                    live = sh.live(chooser, vals)
                    if v in hot and hot.index(v) < q:
                        x = hot.index(v)
                    elif v in live and live.index(v) < q:
                        x = q + live.index(v)
                    else:
                        x = split + v - lo if live else v - lo
                else:
                    live = sh.live(chooser, vals)
                    x = live.index(v) if v in live else (split + v - lo if live else v - lo)
                out += x.to_bytes(w, "big")
                vals.append(v)
            sh.update(op)
        return bytes(out)


_CODECS: dict[Geometry, Codec] = {}


def codec_for(g: Geometry) -> Codec:
    """The default-weight codec of geometry `g` (cached)."""
    c = _CODECS.get(g)
    if c is None:
        c = _CODECS[g] = Codec(g)
    return c


def decode(data: bytes, g: Geometry) -> list[O.Op]:
    """Decode `data` with the default op mix."""
    return codec_for(g).decode(data)


def encode(ops: Iterable[O.Op], g: Geometry) -> bytes:
    """Encode `ops` with the default op mix."""
    return codec_for(g).encode(ops)
