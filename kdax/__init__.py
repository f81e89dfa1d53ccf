"""kdax: the implementation under test -- a path-by-path Python port of the kernel's
fs-DAX folio logic (fs/dax.c, mm/gup.c, mm/memory.c, mm/huge_memory.c, mm/memremap.c,
mm/rmap.c, fs/xfs), one module per kernel source file.

Each kernel version is a class; a later version overrides only the functions that
changed upstream (see :mod:`kdax.v7_2`).  A new target -- your patch -- is a subclass
overriding the functions your patch touches; see :mod:`kdax.targets`.
"""
