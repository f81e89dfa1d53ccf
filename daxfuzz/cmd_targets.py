"""`daxfuzz targets`: list the targets, one line each."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list targets (kernel versions, test targets, zoo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdax.targets import TARGETS

    width = max(len(n) for n in TARGETS)
    for name, cls in TARGETS.items():
        alias = f" (alias of {cls.name})" if name != cls.name else ""
        print(f"{name:<{width}}  {cls.summary}{alias}")
    return 0
