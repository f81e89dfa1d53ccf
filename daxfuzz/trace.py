"""Trace files: the one currency of daxfuzz.

A trace is plain text, parsed and never executed::

    # free comments anywhere
    target: 6.15
    geometry: pages=32 pmd_order=2 inodes=2 mms=2 vmas=2 handles=4 file_pages=8 max_file_pages=16
    expect: agree
    description: PMD fault, then truncate: the folio is split back to order-0 pages.

    mmap mm=0 vma=0 ino=0 pages=4
    fault mm=0 vma=0 pgoff=0 write=1     => ok
    truncate ino=0                       => ok

Header lines (``key: value``) come before the first op; ``description`` may repeat.
An op line may end with ``=> result``: the result the trace's author expects; replay
checks it.  ``expect`` is ``agree`` or ``divergence`` optionally followed by the
divergence signature (``divergence fault:refcount``); ``expect 6.15: ...`` overrides it
for one target.
``str(parse_trace(text)) == text`` holds for canonical text (what ``str`` prints).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daxfuzz.errors import ConfigError, InputError
from daxfuzz.geometry import DEFAULT, Geometry
from daxfuzz.ops import Op, parse_op

HEADER_KEYS = ("target", "geometry", "expect", "description")


@dataclass(frozen=True)
class Trace:
    """A parsed trace: header plus ops, each with an optional expected result."""

    ops: tuple[Op, ...]
    target: str | None = None
    geometry: Geometry = DEFAULT
    expect: str = "agree"
    description: tuple[str, ...] = ()
    results: tuple[str | None, ...] = field(default=())
    expect_for: tuple[tuple[str, str], ...] = ()  # per-target overrides of `expect`

    def expectation(self, target: str) -> str:
        """The expected outcome on `target`: 'agree' or 'divergence [signature]'."""
        for t, e in self.expect_for:
            if t == target:
                return e
        return self.expect

    def __post_init__(self) -> None:
        if not self.results:
            object.__setattr__(self, "results", (None,) * len(self.ops))
        if len(self.results) != len(self.ops):
            raise ValueError("results must match ops one to one")

    def __str__(self) -> str:
        lines = []
        if self.target is not None:
            lines.append(f"target: {self.target}")
        lines.append(f"geometry: {self.geometry.text()}")
        lines.append(f"expect: {self.expect}")
        for t, e in self.expect_for:
            lines.append(f"expect {t}: {e}")
        for d in self.description:
            lines.append(f"description: {d}" if d else "description:")
        lines.append("")
        for op, res in zip(self.ops, self.results, strict=False):
            lines.append(f"{op}  => {res}" if res is not None else str(op))
        return "\n".join(lines) + "\n"

    def with_ops(self, ops: tuple[Op, ...], results: tuple[str | None, ...] | None = None) -> Trace:
        """The same header over other ops (results dropped unless given)."""
        return Trace(ops=tuple(ops), target=self.target, geometry=self.geometry,
                     expect=self.expect, description=self.description,
                     results=tuple(results) if results is not None else (),
                     expect_for=self.expect_for)


def parse_trace(text: str, *, path: str = "<trace>") -> Trace:
    """Parse trace text.  Every error is an InputError naming `path` and the line."""
    hdr: dict[str, str] = {}
    desc: list[str] = []
    ops: list[Op] = []
    results: list[str | None] = []
    expect_for: list[tuple[str, str]] = []
    geometry = DEFAULT
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, colon, rest = line.partition(":")
        kw0 = key.split()
        if colon and kw0 and kw0[0] == "expect" and len(kw0) == 2 and "=" not in key:
            rest = rest.strip()
            if ops:
                raise InputError("header line 'expect' after the first op; move it to the top",
                                 path=path, line=lineno)
            if rest.split()[:1] not in (["agree"], ["divergence"]):
                raise InputError(f"expect {kw0[1]}: {rest!r}; write 'agree' or "
                                 "'divergence [signature]'", path=path, line=lineno)
            expect_for.append((kw0[1], " ".join(rest.split())))
            continue
        if colon and key.strip() in HEADER_KEYS and "=" not in key:
            key = key.strip()
            rest = rest.strip()
            if ops:
                raise InputError(f"header line {key!r} after the first op; move it to the top",
                                 path=path, line=lineno)
            if key == "description":
                desc.append(rest)
                continue
            if key in hdr:
                raise InputError(f"header {key!r} given twice", path=path, line=lineno)
            hdr[key] = " ".join(rest.split())
            if key == "geometry":
                try:
                    geometry = Geometry.parse(rest)
                except ConfigError as e:
                    raise InputError(str(e), path=path, line=lineno) from None
            elif key == "expect" and rest.split()[:1] not in (["agree"], ["divergence"]):
                raise InputError(f"expect: {rest!r}; write 'agree' or 'divergence [signature]'",
                                 path=path, line=lineno)
            elif key == "target" and not rest:
                raise InputError("target: empty target name", path=path, line=lineno)
            continue
        if colon:
            known = ", ".join(HEADER_KEYS)
            raise InputError(f"unknown header {key.strip()!r}; headers are {known}",
                             path=path, line=lineno)
        body, arrow, res = line.partition("=>")
        op = parse_op(body, path=path, line=lineno)
        try:
            op.check(geometry)
        except ValueError as e:
            raise InputError(f"{e} (geometry: {geometry.text()})", path=path, line=lineno) from None
        ops.append(op)
        res = " ".join(res.split())
        if arrow and not res:
            raise InputError("'=>' with no result after it", path=path, line=lineno)
        results.append(res if arrow else None)
    return Trace(ops=tuple(ops), target=hdr.get("target"), geometry=geometry,
                 expect=hdr.get("expect", "agree"), description=tuple(desc),
                 results=tuple(results), expect_for=tuple(expect_for))


def read_trace(path: str) -> Trace:
    """Read and parse a trace file; unreadable or non-UTF-8 files are InputErrors."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    return parse_trace(text, path=path)


def write_trace_atomic(path: str, trace: Trace) -> None:
    """Write `trace` to `path` atomically (temp file, fsync, rename)."""
    import os
    import tempfile

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(str(trace))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
