"""daxfuzz exhaust / diff: symmetry reduction, state dedup, counterexamples, grouping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from daxfuzz.explore.exhaust import SMALL, TargetDiff, alphabet, exhaust, first_use_ok
from daxfuzz.vocab import ops as O
from daxfuzz.vocab.geometry import Geometry

TINY = Geometry(pages=2, pmd_order=1, inodes=2, mms=1, vmas=1, handles=1, file_pages=2,
                max_file_pages=2)


def test_first_use_canonical_order():
    used = (0, 0, 0, 0)  # mm, vma, ino, h in use so far
    assert first_use_ok(O.Mmap(1, 0, 0), used) is None  # mm 1 before mm 0
    assert first_use_ok(O.Mmap(0, 1, 0), used) is None  # slot 1 before slot 0
    assert first_use_ok(O.Mmap(0, 0, 0), used) == (1, 1, 0, 0)
    # inodes are not symmetric (XFS orders two-inode operations by inode number)
    assert first_use_ok(O.Mmap(0, 0, 1), used) == (1, 1, 0, 0)
    assert first_use_ok(O.Unpin(1), (1, 1, 0, 0)) is None
    assert first_use_ok(O.Unpin(0), (1, 1, 0, 0)) == (1, 1, 0, 1)
    assert first_use_ok(O.Reflink(1, 0), (1, 1, 0, 0)) == (1, 1, 0, 0)
    assert first_use_ok(O.Unmount(), (0, 0, 0, 0)) == (0, 0, 0, 0)


def test_symmetry_and_state_counts_by_hand():
    # alphabet: map file 0, map file 1, unmap -- over one VMA slot
    alpha = [O.Mmap(0, 0, 0, 0, 2), O.Mmap(0, 0, 1, 0, 2), O.Munmap(0, 0)]
    r1 = exhaust("7.2", TINY, 1, alpha=alpha)
    # depth 1: all three ops are canonical (mm 0 and slot 0 are the first ones; inodes
    # are not symmetric), but munmap of an unmapped slot is turned away by the syscall
    # layer (EINVAL, nothing changes): pruned.  mmap ino0 -> "mapped ino0", mmap ino1 ->
    # "mapped ino1": 2 edges, 1 + 2 states.
    assert (r1.edges, r1.states, r1.depth) == (2, 3, 1)
    r2 = exhaust("7.2", TINY, 2, alpha=alpha)
    # depth 2: from each mapped state, mmap over the taken slot is pruned (EEXIST before
    # any kernel code), munmap is tried: it gives the empty world with mm 0 and slot 0
    # named.  In a world of one slot "named" and "not yet named" have the same futures
    # (ids_key): that is the root, already seen.  Edges 2 + 2, no new state.
    assert (r2.edges, r2.states, r2.depth) == (4, 3, 2)
    r3 = exhaust("7.2", TINY, 3, alpha=alpha)
    # depth 3: nothing left to expand
    assert (r3.edges, r3.states, r3.depth) == (4, 3, 3)
    assert not r3.counterexamples
    assert "no divergence in every sequence up to 3 ops" in r3.verdict()


def test_ids_used_past_the_last_value_are_one_state(monkeypatch):
    # two slots, map file 0 into either, unmap either.  Depth 1: mmap slot 0 (slot 1
    # must wait for slot 0: canonical first use) -> S1.  Depth 2 from S1: mmap slot 1
    # -> S2 (both mapped, 2 slots named), munmap slot 0 -> E1 (empty, 1 named).
    # Depth 3 from S2: munmap slot 0 -> S3 (slot 1 mapped), munmap slot 1 -> S1's
    # world with 2 slots named; from E1: mmap slot 0 -> S1, mmap slot 1 -> S3's world.
    # With 2 slots, "2 named" allows what "1 named" does (every slot), so S1's world
    # with 2 named is S1: 5 states.  Counting them apart finds 6, through the same edges.
    from daxfuzz.explore import exhaust as explore  # noqa: PLC0415

    g = replace(TINY, vmas=2)
    alpha = [O.Mmap(0, 0, 0, 0, 2), O.Mmap(0, 1, 0, 0, 2), O.Munmap(0, 0), O.Munmap(0, 1)]
    r = exhaust("7.2", g, 3, alpha=alpha)
    assert (r.edges, r.states) == (7, 5)
    assert explore.ids_key((1, 2, 0, 1), g) == (0, 1, 0, 0)
    monkeypatch.setattr(explore, "ids_key", lambda used, g: used)
    r = exhaust("7.2", g, 3, alpha=alpha)
    assert (r.edges, r.states) == (7, 6)


def test_merging_ids_finds_the_same_counterexamples(monkeypatch):
    # the merge is sound: the same signatures at the same shortest lengths, as
    # counting used ids apart finds them
    from daxfuzz.explore import exhaust as explore  # noqa: PLC0415

    def found(r):
        out: dict[str, int] = {}
        for ops, d in r.counterexamples:
            out[d.signature()] = min(len(ops), out.get(d.signature(), 99))
        return out

    g = replace(MINI, vmas=2, handles=2)
    bugs = "zoo-put-always-decrements"  # wrong counts on many paths: many signatures
    merged = exhaust(bugs, g, 3, stop_at_first=False)
    monkeypatch.setattr(explore, "ids_key", lambda used, g: used)
    apart = exhaust(bugs, g, 3, stop_at_first=False)
    assert merged.states < apart.states and merged.complete and apart.complete
    assert found(merged) == found(apart) and len(found(merged)) >= 8


def _targets_for_pruning() -> list[str]:
    from kdax.targets import TARGETS  # noqa: PLC0415

    return [n for n in TARGETS if not n.startswith("test-")]


@pytest.mark.parametrize("target", _targets_for_pruning())
def test_pruned_ops_are_rejected_without_a_state_change(target):
    # every op world_rejects() prunes, from every state up to depth 2 (depth 1 on the
    # zoo), really is a no-op on every kernel target: same result on both sides, no
    # divergence, the same state key as its parent
    from daxfuzz.core.runner import Runner
    from daxfuzz.explore.exhaust import replay, state_key, world_rejects  # noqa: PLC0415

    r = Runner(target, SMALL)
    alpha = alphabet(SMALL)
    prefixes = [()] + [(a,) for a in alpha]
    if not target.startswith("zoo-"):  # the zoo: depth 1 (each variant costs two kernels)
        prefixes += [(a, b) for a in alpha[::3] for b in alpha]
    pruned = 0
    for path in prefixes:
        r.reset()
        if r.run(path) is not None:
            continue
        rejected = [op for op in alpha if world_rejects(r, op)]
        for op in rejected:
            replay(r, path)
            before = state_key(r)
            assert r.step(op) is None, (path, op)
            assert r.last_result != "ok" and state_key(r) == before, (path, op)
            pruned += 1
    assert pruned > 500


def test_inode_order_matters_so_exhaust_finds_it():
    # zoo-xfs-refcount-is-one only misbehaves when the pinned file is the higher inode
    # (the legacy two-inode break checks the second inode with the 1-based test); with
    # inodes treated as interchangeable exhaust missed it
    r = exhaust("zoo-xfs-refcount-is-one", SMALL, 3, seconds=120)
    assert r.counterexamples and len(r.counterexamples[0][0]) == 3


def test_exhaust_finds_broken_target_shortest_first():
    # without swapext, whose 3-op pinned-PMD warning is 6.15's own (corpus/divergence-
    # swapext-pinned-pmd-folio.trace) and would come first
    kinds = [k for k in O.BY_NAME if k != "swapext"]
    r = exhaust("test-broken-unmap-ref", SMALL, 4, seconds=120, kinds=kinds)
    assert r.counterexamples
    ops, d = r.counterexamples[0]
    # map, write fault (a PTE with a reference), then anything that zaps it: 3 ops
    assert len(ops) == 3
    # (or a GUP, or a write(2) from the mapping, which fault the PTE in)
    assert isinstance(ops[0], O.Mmap) and isinstance(
        ops[1], O.Fault | O.Pin | O.Get | O.PinPages | O.WriteFrom)
    assert all(len(o) >= len(ops) for o, _ in r.counterexamples)
    assert "DIVERGENCE in 3 ops" in r.verdict()


def test_exhaust_real_target_clean_to_depth_2():
    r = exhaust("7.2", SMALL, 2)
    assert r.complete and r.depth == 2 and not r.counterexamples
    assert r.states > 100 and r.edges > r.states


def _expand_one(target, g, path, op):
    # the worker's expansion of one state, as exhaust runs it; the child that `op` makes
    from daxfuzz.explore.exhaust import _expand, _init_worker  # noqa: PLC0415

    alpha = list(path) + [op]
    _init_worker(target, g, alpha, True)
    kids = _expand([(tuple(range(len(path))), (1, 2, 0, 0))])
    (_n, _j, _nu, key, d), = [k for k in kids if k[1] == len(path)]
    return key, d


def test_a_path_the_base_diverges_on_alike_ends_and_is_no_counterexample():
    # 6.15's own stale-index divergence (4 ops): on a variant built on 6.15 that shows
    # it the same way (same step, same signature) it is the base's bug, not the
    # variant's: the path ends (no key: not expanded, no state marked seen)
    stale = (O.Mmap(0, 1, 1, 4, 4, huge=0), O.Fault(0, 1, 5, 1), O.Reflink(1, 0, 0, 0, 8),
             O.Fault(0, 1, 5, 0))
    key, d = _expand_one("zoo-get-no-ref", Geometry(), stale[:3], stale[3])
    assert d is None and key is None
    # ... while on 6.15 itself it is a counterexample
    key, d = _expand_one("6.15", Geometry(), stale[:3], stale[3])
    assert key is None and d.signature() == "fault:mapping"
    # ... and a variant diverging differently at a step where the base diverges too
    # has its own (zoo-put-always-decrements: at the reflink, where 6.15 agrees)
    key, d = _expand_one("zoo-put-always-decrements", Geometry(), stale[:2], stale[2])
    assert d is not None and d.signature() == "reflink:mapping"


def _outcome(r):
    return (r.states, r.edges, r.depth, r.complete,
            [(tuple(ops), d.step, d.signature()) for ops, d in r.counterexamples])


#: 4 pfns, 2 files of 2 pages, 1 VMA slot, 1 handle: depth 3 in seconds
MINI = Geometry(pages=4, pmd_order=1, inodes=2, mms=1, vmas=1, handles=1, file_pages=2,
                max_file_pages=2)


@pytest.mark.parametrize("target", [n for n in _targets_for_pruning()
                                    if not n.startswith("zoo-") and n != "mainline"]
                         + ["zoo-get-no-ref"])
def test_snapshots_explore_exactly_what_replay_does(target):
    # copying a state (daxfuzz.explore.snapshot) instead of replaying its path reaches the same
    # states through the same edges to the same counterexamples, on every kernel target
    # (and a variant, whose base kernel is asked about its divergences)
    deep = target in ("7.2", "zoo-get-no-ref")
    for g, k in ((SMALL, 2), (MINI, 3 if deep else 2)):
        fast = exhaust(target, g, k, stop_at_first=False, seconds=300)
        slow = exhaust(target, g, k, stop_at_first=False, seconds=300, snapshots=False)
        assert _outcome(fast) == _outcome(slow) and fast.complete


def test_jobs_explore_exactly_what_one_job_does():
    one = exhaust("7.2", MINI, 3, stop_at_first=False)
    two = exhaust("7.2", MINI, 3, stop_at_first=False, jobs=2)
    assert _outcome(one) == _outcome(two) and one.states > 100


def test_scope_must_name_real_kinds():
    with pytest.raises(ValueError, match="unknown op kind"):
        exhaust("7.2", SMALL, 1, kinds=["fault", "faults"])


def test_alphabet_covers_every_op_kind():
    kinds = {type(op) for op in alphabet(SMALL)}
    # a fork needs a second process slot to fork into
    assert kinds == set(O.OP_TYPES) - ({O.Fork} if SMALL.mms < 2 else set())
    assert O.Fork in {type(op) for op in alphabet(replace(SMALL, mms=2))}


def test_diff_groups_by_first_differing_op():
    d = TargetDiff("6.15", "7.2")
    stale = [O.Mmap(0, 1, 1, 4, 4, huge=0), O.Fault(0, 1, 5, 1), O.Reflink(1, 0, 0, 0, 8),
             O.Fault(0, 1, 5, 0)]
    same = [O.Mmap(0, 0, 0), O.Fault(0, 0, 0, 1)]
    d.add(Geometry(), stale)
    d.add(Geometry(), stale + [O.Munmap(0, 1)])  # same first difference, longer
    d.add(Geometry(), same)
    assert len(d.groups) == 1
    (key, grp), = d.groups.items()
    assert key[0] == "fault" and key[1] == "agreement"
    assert grp.count == 2 and len(grp.shortest) == 4 and grp.step == 4
    assert grp.a_obs[2] == "mapping" and grp.b_obs[2] is None
    assert "## fault: agreement differs  (2 sequences; shortest 4 ops)" in d.report()


def test_diff_identical_targets_has_no_groups():
    d = TargetDiff("7.2", "mainline")
    d.add_exhaustive(SMALL, 2, 60)
    assert d.groups == {} and d.sequences > 100


def test_digests_dedup_exactly_as_keys_do(monkeypatch):
    # the seen set holds 16-byte digests: equal keys must give equal digests (whatever
    # objects they are built of) so the search finds the states the keys would
    from daxfuzz.explore import exhaust as explore  # noqa: PLC0415

    k = (("pin", 1), (None, True), tuple(range(3)))
    same = (("".join(["p", "in"]), 1), (None, True), (0, 1, 2))
    assert k == same and k[0][0] is not same[0][0]
    assert explore.digest(k) == explore.digest(same) and len(explore.digest(k)) == 16
    assert explore.digest(k) != explore.digest((("get", 1),) + k[1:])
    hashed = exhaust("7.2", MINI, 3, stop_at_first=False)
    monkeypatch.setattr(explore, "digest", lambda key: key)
    assert _outcome(exhaust("7.2", MINI, 3, stop_at_first=False)) == _outcome(hashed)


def test_verdict_names_the_longest_counterexample_searched():
    # --all goes on to the end: the counterexamples are then up to K ops long, not K+1
    r = exhaust("7.2", MINI, 3, stop_at_first=False)
    assert r.complete and r.depth == 3 and r.counterexamples
    assert "within 3 ops" in r.verdict()


def test_world_presets_and_size_flags(capsys, tmp_path):
    # --world deep is the narrow world; a size flag changes one size of the preset
    from daxfuzz.cli import main  # noqa: PLC0415
    from daxfuzz.explore.exhaust import DEEP  # noqa: PLC0415

    assert main(["exhaust", "--world", "deep", "--max-ops", "1",
                 "--findings", str(tmp_path)]) == 0
    assert f"geometry {DEEP.text()}," in capsys.readouterr().out
    assert main(["exhaust", "--world", "deep", "--vmas", "2", "--max-ops", "1",
                 "--findings", str(tmp_path)]) == 0
    assert f"geometry {replace(DEEP, vmas=2).text()}," in capsys.readouterr().out
    assert main(["exhaust", "--max-ops", "1", "--findings", str(tmp_path)]) == 0
    assert f"geometry {SMALL.text()}," in capsys.readouterr().out
