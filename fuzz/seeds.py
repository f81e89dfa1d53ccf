"""Seeds for the byte engines: the scenario traces encoded as codec inputs (a
libFuzzer corpus), and the libFuzzer dictionary of whole ops.  `daxfuzz corpus` is
their command line."""

from __future__ import annotations

import hashlib
import os

from daxfuzz.textio import write_bytes_atomic
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.trace import read_trace
from fuzz.codec import Codec, encode

# One whole op per dictionary entry: the shapes the codec's kind table and live
# choice make meaningful on their own.
DICT_OPS: tuple[tuple[str, O.Op], ...] = (
    ("mmap_pte", O.Mmap(0, 0, 0, huge=0)), ("mmap_pmd", O.Mmap(0, 0, 0)),
    ("mmap_private", O.Mmap(0, 1, 0, shared=0)), ("mmap_ino1", O.Mmap(1, 0, 1)),
    ("fault_write", O.Fault(0, 0, 0, write=1)), ("fault_read", O.Fault(0, 0, 0)),
    ("munmap", O.Munmap(0, 0)), ("msync", O.Msync(0, 0)), ("pin", O.Pin(0, 0, 0)),
    ("get", O.Get(0, 0, 0)), ("unpin", O.Unpin(0)), ("put", O.Put(0)),
    ("truncate", O.Truncate(0)), ("punch", O.Punch(0)), ("reflink", O.Reflink(0, 1)),
    ("unmount", O.Unmount()), ("mount", O.Mount()), ("memory_failure", O.MemoryFailure(0)),
)


def dictionary_text(g: Geometry = DEFAULT) -> str:
    """The libFuzzer dictionary (``-dict=``) for the default op mix of geometry `g`."""
    c = Codec(g)
    lines = ["# libFuzzer dictionary for the daxfuzz byte codec (default op mix).",
             "# One whole op per entry; regenerate: daxfuzz corpus dict > fuzz/dict/daxfuzz.dict"]
    # mmaps as the first op (nothing mapped), the rest as they decode once a VMA is mapped
    first = O.Mmap(0, 0, 0)
    prefix = c.encode([first])
    for name, op in DICT_OPS:
        data = c.encode([op]) if isinstance(op, O.Mmap) else c.encode([first, op])[len(prefix):]
        lines.append(f'{name}="' + "".join(f"\\x{b:02x}" for b in data) + '"')
    return "\n".join(lines) + "\n"


def build(src: str, dst: str, g: Geometry | None = None) -> list[str]:
    """Encode every ``src/**/*.trace`` into ``dst/<sha1>``; returns the files written.

    Traces of another geometry than `g` (when given) are skipped: their bytes would
    decode to other ops.  A malformed trace is an InputError naming file and line.
    """
    os.makedirs(dst, exist_ok=True)
    out = []
    for root, _dirs, files in sorted(os.walk(src)):
        for name in sorted(files):
            if not name.endswith(".trace"):
                continue
            t = read_trace(os.path.join(root, name))
            if g is not None and t.geometry != g:
                continue
            data = encode(t.ops, t.geometry)
            path = os.path.join(dst, hashlib.sha1(data).hexdigest())
            write_bytes_atomic(path, data)
            out.append(path)
    return out
