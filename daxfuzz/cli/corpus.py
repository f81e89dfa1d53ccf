"""`daxfuzz corpus`: seed corpora for the byte engines from trace files.

    daxfuzz corpus build [--from corpus/] [--to corpus/atheris/]   traces -> seed bytes
    daxfuzz corpus dict                                             the libFuzzer dictionary
"""

from __future__ import annotations

import argparse
import os
import sys

from daxfuzz.cli import out_dir
from daxfuzz.errors import ConfigError, InputError
from daxfuzz.home import default as default_path
from daxfuzz.vocab.geometry import Geometry
from fuzz.seeds import build, dictionary_text


def run(args: argparse.Namespace) -> int:
    if args.corpus_cmd == "dict":
        sys.stdout.write(dictionary_text())
        return 0
    if not os.path.isdir(args.src):
        raise InputError("--from: " + ("not a directory" if os.path.exists(args.src) else
                                       "no such directory") + " (the trace corpus)",
                         path=args.src)
    try:
        g = Geometry.parse(args.geometry) if args.geometry else None
    except ConfigError as e:
        raise ConfigError(f"--geometry: {e}") from None
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
    b.add_argument("--to", dest="dst", type=out_dir, default=default_path("corpus", "atheris"),
                   help="seed folder (default corpus/atheris, which git ignores)")
    b.add_argument("--geometry", default=None,
                   help="only traces of this geometry (trace-header form)")
    sub.add_parser("dict", help="print the libFuzzer dictionary for the codec")
    p.set_defaults(func=run)
