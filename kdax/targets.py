"""The registry of targets: kernel versions, your patch, the bug zoo.

A target is a subclass of a kernel class overriding the kernel functions a patch
changes.  Example -- "my patch changes dax_folio_put":

    from kdax.v7_2 import Kernel72

    class MyPatch(Kernel72):
        name = "my-patch"
        summary = "7.2 + my dax_folio_put rework"

        # fs/dax.c dax_folio_put() (my patch v2)
        def dax_folio_put(self, folio):
            ...

    register(MyPatch)

then either declare it as an entry point of your own package (group
"daxfuzz.targets", see examples/mypatch: `pip install -e .`, no edit here) or import
that module at the bottom of this file (one line), and
`daxfuzz fuzz --target my-patch`, `daxfuzz replay --target my-patch corpus/*.trace`,
`daxfuzz diff --from 7.2 --to my-patch`.
"""

from __future__ import annotations

from typing import TypeVar

from daxfuzz.errors import ConfigError
from kdax.fixes import Kernel72FixCowPmd
from kdax.kernel import Kernel615
from kdax.legacy import KernelLegacy
from kdax.mm import KernelBase
from kdax.v6 import KernelV6, KernelV6Guarded
from kdax.v7_2 import Kernel72

TARGETS: dict[str, type[KernelBase]] = {}
_K = TypeVar("_K", bound="type[KernelBase]")


def register(cls: _K) -> _K:
    """Add a target class under its `name`; usable as a class decorator."""
    TARGETS[cls.name] = cls
    return cls


def get_target(name: str) -> type[KernelBase]:
    """The target class called `name` (a mutant's name too: `kdax.mutant`);
    ConfigError lists the known ones."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        pass
    if isinstance(name, str) and name.startswith("mutant:"):
        from kdax.mutant import mutant_target

        return mutant_target(name)
    import difflib

    from daxfuzz.textio import show

    if name in PLUGIN_ERRORS:
        raise ConfigError(f"target {show(str(name))}: its plugin ({PLUGIN_GROUP} entry point) "
                          f"failed to load: {PLUGIN_ERRORS[name]}")

    near = difflib.get_close_matches(str(name), list(TARGETS), n=3)
    hint = f"did you mean {', '.join(near)}? " if near else ""
    raise ConfigError(f"unknown target {show(str(name))}; {hint}`daxfuzz targets` lists "
                      f"the {len(TARGETS)} targets (kernels: "
                      + ", ".join(t for t in TARGETS if not t.startswith(("zoo-", "test-")))
                      + ")") from None


def target_name(name: str) -> str | None:
    """The canonical name of target `name` (`mainline` -> the version it stands for),
    None if there is no such target."""
    cls = TARGETS.get(name)
    if cls is None and name.startswith("mutant:"):
        try:
            cls = get_target(name)
        except ConfigError:
            return None
    return cls.name if cls is not None else None


register(KernelLegacy)
register(KernelV6)
register(KernelV6Guarded)
register(Kernel615)
register(Kernel72)
register(Kernel72FixCowPmd)
TARGETS["mainline"] = Kernel72  # alias: the newest ported mainline

from kdax.zoo import ZOO  # noqa: E402

for _cls in ZOO:
    register(_cls)

try:  # test-only targets live beside the real ones
    from kdax import broken  # noqa: F401
except ImportError:  # pragma: no cover - while the engines land
    pass

#: the entry-point group a patch author's package registers its targets under, e.g. in
#: its pyproject.toml: [project.entry-points."daxfuzz.targets"] my-patch =
#: "mypatch:MyPatch" (examples/mypatch); `pip install -e .` and the name works everywhere
PLUGIN_GROUP = "daxfuzz.targets"
#: entry points that failed to load: name -> why (`daxfuzz targets` shows them)
PLUGIN_ERRORS: dict[str, str] = {}


def load_plugins() -> list[str]:
    """Register the targets installed packages declare (PLUGIN_GROUP); their names.  A
    plugin that fails to import, or names no target class, is left out and its error
    kept in PLUGIN_ERRORS: one broken package does not take daxfuzz down."""
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            cls = ep.load()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - someone else's code (a
            # sys.exit() at import too, which ended every command with exit 0): report
            PLUGIN_ERRORS[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"
            continue
        name = getattr(cls, "name", None)
        if not (isinstance(cls, type) and isinstance(name, str) and hasattr(cls, "apply")):
            PLUGIN_ERRORS[ep.name] = f"{ep.value}: not a target class (a kernel subclass)"
            continue
        from daxfuzz.vocab.trace import TARGET_NAME

        if not TARGET_NAME.fullmatch(name):
            PLUGIN_ERRORS[ep.name] = (f"{ep.value}: target name {name!r} is not a target name "
                                      "(letters, digits, '.', '_', '-')")
            continue
        if name in TARGETS:  # a built-in (or an earlier plugin) keeps its name
            PLUGIN_ERRORS[ep.name] = (f"{ep.value}: target name {name!r} is taken by "
                                      f"{TARGETS[name].__module__}; left out")
            continue
        register(cls)
        names.append(name)
    return names


PLUGINS = load_plugins()
