"""`daxfuzz corpus`: seed corpora for the byte engines from trace files.

    daxfuzz corpus build [--from corpus/] [--to corpus/atheris/]   traces -> seed bytes
    daxfuzz corpus dict                                             the libFuzzer dictionary
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from daxfuzz.errors import InputError
from daxfuzz.home import default as default_path
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
            with open(path, "wb") as f:
                f.write(data)
            out.append(path)
    return out


def run(args: argparse.Namespace) -> int:
    if args.corpus_cmd == "dict":
        sys.stdout.write(dictionary_text())
        return 0
    if not os.path.isdir(args.src):
        raise InputError("no such directory (the trace corpus)", path=args.src)
    g = Geometry.parse(args.geometry) if args.geometry else None
    written = build(args.src, args.dst, g)
    print(f"{len(written)} seed inputs from {args.src} into {args.dst}")
    return 0


def register(subparsers) -> None:
    """Add `daxfuzz corpus`."""
    p = subparsers.add_parser("corpus", help="build seed corpora from traces",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="corpus_cmd", required=True)
    b = sub.add_parser("build", help="encode corpus/*.trace into atheris seed inputs")
    b.add_argument("--from", dest="src", default=default_path("corpus"),
                   help="trace folder (default corpus/ of DAXFUZZ_HOME or the checkout)")
    b.add_argument("--to", dest="dst", default=default_path("corpus", "atheris"),
                   help="seed folder (default corpus/atheris, which git ignores)")
    b.add_argument("--geometry", default=None,
                   help="only traces of this geometry (trace-header form)")
    sub.add_parser("dict", help="print the libFuzzer dictionary for the codec")
    p.set_defaults(func=run)
