"""daxfuzz: stateful differential fuzzing of Linux fs-DAX page and folio refcounting."""

__version__ = "0.1.0"
