"""mm/memremap.c: what happens when an fs-DAX folio's refcount falls to zero."""

from __future__ import annotations

from kdax.api import KernelAPI
from kdax.mm_types import PGMAP_FSDAX, Page


class Memremap(KernelAPI):
    # mm/memremap.c free_zone_device_folio() (6.15): FS_DAX only wakes waiters;
    # mapping is cleared when ->share reaches zero, and the count is not reset.
    def free_zone_device_folio(self, folio: Page) -> None:
        pgmap = folio.pgmap
        if self.WARN_ON_ONCE(pgmap is None, "!pgmap->ops"):
            return
        if pgmap != PGMAP_FSDAX:
            self.set_field(folio, "mapping", None)
        self.wake_up_var(folio)

    def wake_up_var(self, page: Page) -> None:
        """wake_up_var(&folio->page): waiters are modelled as retried ops; nothing to do."""
