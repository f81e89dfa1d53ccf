"""Structure-aware mutation for the atheris engine: whole ops, not just bytes.

libFuzzer's own mutators flip, insert and erase bytes.  Through the codec most of those
still decode to ops, but they rarely make the edits a kernel developer would: add one
more fault after the mmap, drop the unpin, do that GUP twice, fault before the reflink
instead of after.  `mutate` does those on op boundaries (the offsets `Codec.decode`
reports) half of the time, starts afresh from a random input a quarter of the time
(coverage feedback keeps what those reach; the plain random engine, with no feedback,
was finding the zoo faster than libFuzzer's mutations of a small corpus), and hands the
rest to libFuzzer's byte mutators (with the dictionary); `crossover` splices a prefix
of one input's ops onto a suffix of another's.  Both are pure functions of their
arguments and the seed libFuzzer passes, so a run replays (`-seed=N`).

A new op is a random kind byte and random field bytes: the codec's live choosers turn
them, 7 times in 8 per field, into a mapped slot, a mapped page, a held handle.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from daxfuzz.textio import env_number
from fuzz.codec import Codec

#: share of mutations done on whole ops, and of fresh random inputs (FRESH_OPS ops, as
#: the random engine draws them); the rest go to libFuzzer's byte mutators.  Measured on
#: the five zoo variants atheris found least often (60 s, seeds 1-3, 15 runs): byte
#: mutators alone 7/15 (with -len_control=0: 9/15); ops 0.5 and no fresh inputs 10/15;
#: ops 0.5, fresh 0.1: 12/15; ops 0.5, fresh 0.25: 15/15.  DAXFUZZ_OP_SHARE and
#: DAXFUZZ_FRESH_SHARE override them, for such measurements.
OP_SHARE = env_number("DAXFUZZ_OP_SHARE", 0.5, 0.0, 1.0, integer=False)
FRESH_SHARE = env_number("DAXFUZZ_FRESH_SHARE", 0.25, 0.0, 1.0, integer=False)
FRESH_OPS = 16
#: op-level edits and their weights
EDITS: tuple[tuple[str, int], ...] = (
    ("insert", 3), ("append", 2), ("delete", 2), ("duplicate", 2), ("swap", 1),
    ("reroll", 2),
)
_EDIT_NAMES = tuple(e for e, _ in EDITS)
_EDIT_WEIGHTS = tuple(w for _, w in EDITS)


Span = tuple[int, int, bool, type]  # start, end, mapped before it, op kind


def spans(codec: Codec, data: bytes, max_ops: int | None = None
          ) -> tuple[list[Span], bool]:
    """(start, end, mapped, kind) of each op `data` decodes to, and whether anything is
    mapped after the last.  `mapped`: the state the op's kind byte is read in.  The
    last op's end may be past the data (its missing field bytes decode as zeros)."""
    starts: list[tuple[int, bool]] = []
    ops = codec.decode(data, max_ops=max_ops, starts=starts)
    op_len = codec.op_len
    return ([(s, s + op_len[type(op)], m, type(op))
             for (s, m), op in zip(starts, ops, strict=False)], starts[-1][1])


def random_op(codec: Codec, rng: random.Random, mapped: bool) -> tuple[bytes, type]:
    """One op's bytes and kind: a random kind byte (drawn in the table that applies where
    it goes, `mapped`: something is mapped there) and random bytes for its fields."""
    b = rng.randrange(256)
    cls = (codec.table if mapped else codec.table0)[b]
    return bytes([b]) + rng.randbytes(codec.op_len[cls] - 1), cls


def assemble(codec: Codec, pieces: list[tuple[bytes, type]], tail: bytes = b"") -> bytes:
    """Whole ops (bytes, kind) end to end, then `tail`: each kind byte rewritten to read
    as its op's kind where the op now is (`Codec.decode(kinds=)`), so a moved, copied or
    spliced op stays the op it was and the ops after an edit keep their kinds."""
    out = bytearray(b"".join(p for p, _k in pieces) + tail)
    codec.decode(out, max_ops=len(pieces), kinds=[k for _p, k in pieces])
    return bytes(out)


def mutate_ops(codec: Codec, data: bytes, max_size: int, rng: random.Random,
               max_ops: int | None = None, edit: str | None = None) -> bytes:
    """One op-level edit of `data` (`edit`, one of EDITS, or drawn by weight); at most
    `max_size` bytes out.  Every op keeps its kind; its fields may still choose other
    live values (an inserted munmap unmaps what a later fault used): the codec decodes
    every result to valid ops."""
    sp, mapped_at_end = spans(codec, data, max_ops)
    end = sp[-1][1] if sp else 0
    data = data.ljust(end, b"\0")  # a short last op: its zeros, written out
    ops = [(data[s:e], k) for s, e, _m, k in sp]
    tail = data[end:]  # past max_ops: kept, not decoded
    if edit is None:
        edit = rng.choices(_EDIT_NAMES, _EDIT_WEIGHTS)[0]
    if not ops:
        edit = "append"
    n = len(ops)
    if edit == "append":
        ops.append(random_op(codec, rng, mapped_at_end))
    elif edit == "insert":
        k = rng.randrange(n)
        ops.insert(k, random_op(codec, rng, sp[k][2]))
    elif edit == "delete":
        del ops[rng.randrange(n)]
    elif edit == "duplicate":
        k = rng.randrange(n)
        at = rng.randrange(n) if rng.random() < 0.5 else k + 1  # anywhere, or right after
        ops.insert(at, ops[k])
    elif edit == "swap" and n > 1:
        k = rng.randrange(n - 1)
        ops[k], ops[k + 1] = ops[k + 1], ops[k]
    else:  # reroll: same kind, new fields
        k = rng.randrange(n)
        b, kind = ops[k]
        ops[k] = (b[:1] + rng.randbytes(len(b) - 1), kind)
    return assemble(codec, ops, tail)[:max_size]


def mutate(codec: Codec, data: bytes, max_size: int, seed: int,
           byte_mutate: Callable[[bytes, int], bytes],
           max_ops: int | None = None) -> bytes:
    """libFuzzer's custom mutator: an op-level edit or `byte_mutate` (atheris.Mutate)."""
    rng = random.Random(seed)
    r = rng.random()
    if r < OP_SHARE:
        return mutate_ops(codec, data, max_size, rng, max_ops)
    if r < OP_SHARE + FRESH_SHARE:
        return rng.randbytes(min(max_size, FRESH_OPS * 6))
    return byte_mutate(data, max_size)


def crossover(codec: Codec, data1: bytes, data2: bytes, max_size: int, seed: int,
              max_ops: int | None = None) -> bytes:
    """libFuzzer's custom crossover: the ops of `data1` up to a boundary, then the ops of
    `data2` from a boundary, each keeping its kind."""
    rng = random.Random(seed)
    sp1, _m1 = spans(codec, data1, max_ops)
    sp2, _m2 = spans(codec, data2, max_ops)
    d1 = data1.ljust(sp1[-1][1] if sp1 else 0, b"\0")
    d2 = data2.ljust(sp2[-1][1] if sp2 else 0, b"\0")
    i = rng.randrange(len(sp1) + 1)
    j = rng.randrange(len(sp2) + 1)
    pieces = ([(d1[s:e], k) for s, e, _m, k in sp1[:i]]
              + [(d2[s:e], k) for s, e, _m, k in sp2[j:]])
    return assemble(codec, pieces)[:max_size]
