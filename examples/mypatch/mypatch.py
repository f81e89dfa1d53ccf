"""Example daxfuzz target: Linux 7.2 with a reworked dax_folio_put().

The rework folds the shared and unshared cases into one early return.  Declared in
pyproject.toml under the "daxfuzz.targets" entry-point group, so after
`pip install -e examples/mypatch` every daxfuzz command takes `--target my-patch`.
"""

from __future__ import annotations

from kdax.mm_types import Page
from kdax.v7_2 import Kernel72


class MyPatch(Kernel72):
    name = "my-patch"
    base = "7.2"  # what 7.2 itself shows on the same ops is 7.2's, not this patch's
    summary = "7.2 + a reworked dax_folio_put (examples/mypatch)"

    # fs/dax.c dax_folio_put() (7.2 + the example rework)
    def dax_folio_put(self, folio: Page) -> int:
        if self.dax_folio_is_shared(folio):
            ref = (folio.share - 1) & 0xFFFFFFFFFFFFFFFF
            self.set_field(folio, "index", ref)
            if ref:
                return ref  # other files still share it
        order = self.dax_folio_reset_order(folio)
        for i in range(1 << order):  # every sub-page must be free by now
            self.WARN_ON_ONCE(self.pages[folio.pfn + i]._refcount, "folio_ref_count(page)")
        return 0
