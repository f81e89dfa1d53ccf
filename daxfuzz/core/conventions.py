"""Refcount conventions: the raw `struct page` fields a target must hold, derived from
the oracle's facts.  A target names its convention (its class's ``convention``); the
runner compares the target's raw fields with what that convention expects.

- ``folio`` (6.15 and later, "fs/dax: Properly refcount fs dax pages"): 0-based;
  a folio's refcount = its PTE and PMD mappings + GUP gets + pins (x
  GUP_PIN_COUNTING_BIAS on an order-0 page, x 1 plus ``pincount`` on a large folio);
  mapcount and entire_mapcount as mm/rmap.c keeps them; the owner (mapping/index) or,
  when shared by reflink, the share count.
- ``legacy`` (6.14 and earlier): order-0 pages only, idle at 1, mappings take no
  reference nor mapcount, per-page association (PAGE_MAPPING_DAX_COW when shared).
"""

from __future__ import annotations

from collections.abc import Callable

from daxfuzz.vocab.world import GUP_PIN_COUNTING_BIAS
from oracle import Oracle


def folio_expected(o: Oracle, pfn: int, idle: int) -> dict[str, object]:
    """The raw fields of `pfn` under the 0-based folio convention."""
    h = o.head[pfn]
    order = o.forder[h]
    exp: dict[str, object] = {"compound_head": h, "page_mapcount": o.pte_maps[pfn]}
    if pfn == h:
        fp = o.folio_pfns(h)
        ptes = sum(o.pte_maps[p] for p in fp)
        gets = sum(o.gets[p] for p in fp)
        pins = sum(o.pins[p] for p in fp)
        exp["order"] = order
        exp["refcount"] = (ptes + o.pmd_maps[h] + gets
                           + pins * (1 if order else GUP_PIN_COUNTING_BIAS))
        exp["mapcount"] = ptes + o.pmd_maps[h] if order else o.pte_maps[pfn]
        if order:
            exp["entire_mapcount"] = o.pmd_maps[h]
            exp["pincount"] = pins
        _owner(o, exp, h)
    else:
        exp["refcount"] = 0  # tail pages carry no count of their own
    exp["flags_1"] = order if order and pfn == h + 1 else 0
    return exp


def _owner(o: Oracle, exp: dict[str, object], h: int) -> None:
    if o.assoc[h] == 0:
        exp["mapping"] = None
    elif h in o.shared:
        exp["mapping"] = None
        exp["share"] = o.assoc[h]
    else:
        # referenced by entries, not shared: the oracle keeps its one owner (not None)
        ino, index = o.owner[h]  # type: ignore[misc]
        exp["mapping"] = ino
        exp["index"] = index


def legacy_expected(o: Oracle, pfn: int, idle: int) -> dict[str, object]:
    """The raw fields of `pfn` under the pre-series convention (idle at `idle`)."""
    exp: dict[str, object] = {
        "compound_head": pfn, "page_mapcount": 0, "order": 0,
        "refcount": idle + o.gets[pfn] + o.pins[pfn] * GUP_PIN_COUNTING_BIAS}
    if not o.page_assoc[pfn]:
        exp["mapping"] = None
    elif pfn in o.page_cow:
        exp["mapping"] = "PAGE_MAPPING_DAX_COW"
        exp["index"] = o.page_assoc[pfn]
    else:
        # associated, not shared: the oracle keeps its one owner (not None)
        exp["mapping"], exp["index"] = o.page_owner[pfn]  # type: ignore[misc]
    exp["flags_1"] = 0
    return exp


Convention = Callable[[Oracle, int, int], dict[str, object]]
CONVENTIONS: dict[str, Convention] = {"folio": folio_expected, "legacy": legacy_expected}
