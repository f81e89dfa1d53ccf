"""`daxfuzz targets`: list the targets, one line each."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list targets (kernel versions, test targets, zoo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from kdax.targets import PLUGIN_ERRORS, PLUGIN_GROUP, PLUGINS, TARGETS

    width = max(len(n) for n in TARGETS)
    for name, cls in TARGETS.items():
        alias = f" (alias of {cls.name})" if name != cls.name else ""
        plugin = f" [plugin: {cls.__module__}]" if name in PLUGINS else ""
        print(f"{name:<{width}}  {cls.summary}{alias}{plugin}")
    for name, why in sorted(PLUGIN_ERRORS.items()):
        print(f"daxfuzz: the {PLUGIN_GROUP} entry point {name!r} failed to load: {why}",
              file=sys.stderr)
    return 0
