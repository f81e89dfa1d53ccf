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

import re
from dataclasses import dataclass, field

from daxfuzz.errors import ConfigError, InputError
from daxfuzz.textio import MAX_LINE_CHARS, lines, read_text, show, write_text_atomic
from daxfuzz.vocab.geometry import DEFAULT, Geometry
from daxfuzz.vocab.ops import Op, parse_op

HEADER_KEYS = ("target", "geometry", "expect", "description")
#: most ops in one trace (the engines' inputs are 32-64 ops; a reduced finding a few)
MAX_OPS = 10000
#: what a target name looks like (`daxfuzz targets`): no path, no punctuation
TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: what a divergence signature looks like (`op:field`, `op:warning@function`)
SIGNATURE = re.compile(r"[A-Za-z0-9_]+:[!-~]{1,200}")
#: an op's result as the targets give it: a word (ok, EFAULT, SIGBUS, blocked, hang)
#: and key=value details ("blocked pfn=0", "ok killed=0,1")
RESULT = re.compile(r"[A-Za-z][A-Za-z0-9_]*( [a-z_]+=-?[0-9]+(,-?[0-9]+)*)*")


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
    # where it came from, for errors found after parsing (an unknown target): the line of
    # the `target:` header and of each op; not part of the value
    target_line: int | None = field(default=None, compare=False, repr=False)
    op_lines: tuple[int, ...] = field(default=(), compare=False, repr=False)

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
    op_lines: list[int] = []
    target_line = None
    for lineno, raw in enumerate(lines(text), 1):
        if len(raw) > MAX_LINE_CHARS:
            raise InputError(f"line of {len(raw)} characters: the limit is {MAX_LINE_CHARS}",
                             path=path, line=lineno)
        if "\x00" in raw:
            raise InputError("NUL byte in a trace line (a binary file? `daxfuzz reduce` "
                             "takes libFuzzer crash inputs)", path=path, line=lineno)
        line = raw.split("#", 1)[0].strip(" \t")
        if not line:
            continue
        key, colon, rest = line.partition(":")
        kw0 = key.split()
        if colon and kw0 and kw0[0] == "expect" and len(kw0) == 2 and "=" not in key:
            rest = rest.strip()
            if ops:
                raise InputError("header line 'expect' after the first op; move it to the top",
                                 path=path, line=lineno)
            _check_expect(rest, f"expect {kw0[1]}", path, lineno)
            if not TARGET_NAME.fullmatch(kw0[1]):
                raise InputError(f"expect {show(kw0[1])}: not a target name",
                                 path=path, line=lineno)
            if any(t == kw0[1] for t, _e in expect_for):
                raise InputError(f"expect {kw0[1]}: given twice", path=path, line=lineno)
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
            elif key == "expect":
                _check_expect(rest, "expect", path, lineno)
            elif key == "target":
                if not rest:
                    raise InputError("target: empty target name", path=path, line=lineno)
                if not TARGET_NAME.fullmatch(rest):
                    raise InputError(f"target: {show(rest)} is not a target name (letters, "
                                     "digits, '.', '_', '-'; `daxfuzz targets` lists them)",
                                     path=path, line=lineno)
                target_line = lineno
            continue
        if colon:
            known = ", ".join(HEADER_KEYS)
            raise InputError(f"unknown header {show(key.strip())}; headers are {known}",
                             path=path, line=lineno)
        if len(ops) >= MAX_OPS:
            raise InputError(f"more than {MAX_OPS} ops: the limit for one trace",
                             path=path, line=lineno)
        body, arrow, res = line.partition("=>")
        op = parse_op(body, path=path, line=lineno)
        try:
            op.check(geometry)
        except ValueError as e:
            raise InputError(f"{e} (geometry: {geometry.text()})", path=path, line=lineno) from None
        ops.append(op)
        op_lines.append(lineno)
        res = " ".join(res.split())
        if arrow and not res:
            raise InputError("'=>' with no result after it", path=path, line=lineno)
        if arrow and not RESULT.fullmatch(res):
            raise InputError(f"=> {show(res)}: not a result (a word such as ok, EFAULT or "
                             "SIGBUS, then key=number details: blocked pfn=0)",
                             path=path, line=lineno)
        results.append(res if arrow else None)
    if not ops:
        raise InputError("no ops: a trace needs at least one op line (an empty, truncated "
                         "or comment-only file is not a trace)", path=path)
    return Trace(ops=tuple(ops), target=hdr.get("target"), geometry=geometry,
                 expect=hdr.get("expect", "agree"), description=tuple(desc),
                 results=tuple(results), expect_for=tuple(expect_for),
                 target_line=target_line, op_lines=tuple(op_lines))


def _check_expect(rest: str, key: str, path: str, lineno: int) -> None:
    words = rest.split()
    if words[:1] not in (["agree"], ["divergence"]) or len(words) > 2 or (
            words[0] == "agree" and len(words) > 1):
        raise InputError(f"{key}: {show(rest)}; write 'agree' or 'divergence [signature]'",
                         path=path, line=lineno)
    if len(words) == 2 and not SIGNATURE.fullmatch(words[1]):
        raise InputError(f"{key}: {show(words[1])} is not a divergence signature (op:field, "
                         "as `daxfuzz replay` prints it)", path=path, line=lineno)


def read_trace(path: str) -> Trace:
    """Read and parse a trace file; unreadable, non-regular, oversized or non-UTF-8
    files are InputErrors naming `path`."""
    return parse_trace(read_text(path), path=path)


def write_trace_atomic(path: str, trace: Trace) -> None:
    """Write `trace` to `path` atomically (temp file, fsync, rename)."""
    write_text_atomic(path, str(trace))
