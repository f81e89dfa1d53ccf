"""The Hypothesis example database of a campaign: a directory (default) or a Redis server.

    open_database(None, default_dir)             CORPUS/hypothesis-db on this machine
    open_database("/shared/nfs/db")              a directory (one machine, or a shared FS)
    open_database("redis://host:6379/0")         every worker of a fleet, one database

A fleet shares failures through the database: a failing example one worker saves
is replayed (Hypothesis's *reuse* phase) by every worker that starts after it, so
each machine reduces and saves the finding in its own findings folder.

Entries are checked before Hypothesis sees them.  Hypothesis deletes an entry it
cannot deserialize; here a corrupt or truncated entry is reported by name (file,
or Redis key and value hash) and skipped, never deleted, so a person can look at
it.  When Hypothesis later saves, deletes or moves the example whose name a
corrupt file has (a truncated entry keeps its name), the file is moved to
``DB/.quarantine/`` instead, and that is reported too.  Directory entries are
written atomically (temp file in the same folder, fsync, rename): a killed worker
leaves a whole entry or none; a stale ``.tmp-*`` left by a kill is removed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from hashlib import sha384

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    choices_from_bytes,
)

from daxfuzz.errors import InputError
from daxfuzz.textio import read_file, write_bytes_atomic

Report = Callable[[str], None]


def _say(msg: str) -> None:
    print(f"daxfuzz: {msg}", file=sys.stderr, flush=True)


def _hash(b: bytes) -> str:
    """The file name Hypothesis gives a key or value (database.py `_hash`)."""
    return sha384(b).hexdigest()[:16]


def corrupt_reason(value: bytes, name: str | None = None) -> str | None:
    """Why `value` (stored under file `name`) is not a usable example, or None."""
    if name is not None and name != _hash(value):
        return "content does not match its name (truncated or edited)"
    if choices_from_bytes(value) is None:
        return "not a Hypothesis choice sequence"
    return None


class SafeDirectoryDatabase(DirectoryBasedExampleDatabase):
    """`DirectoryBasedExampleDatabase` that reports and keeps corrupt entries."""

    def __init__(self, path: os.PathLike | str, report: Report = _say) -> None:
        super().__init__(path)
        self.report = report
        self.reported: set[str] = set()

    def fetch(self, key: bytes) -> Iterable[bytes]:
        kp = self._key_path(key)
        try:
            names = sorted(os.listdir(kp))
        except OSError:
            return
        for name in names:
            p = kp / name
            if name.startswith(".tmp-"):
                continue  # a write cut short by a kill: never renamed into place
            try:
                value = read_file(str(p))  # a FIFO is refused, not waited on for ever
            except InputError as e:
                self._bad(str(p), e.reason)
                continue
            meta = kp.name == self._metakeys_hash  # holds keys, not choice sequences
            why = corrupt_reason(value, name) if not meta else (
                None if name == _hash(value) else "content does not match its name")
            if why:
                self._bad(str(p), why)
                continue
            yield value

    def _bad(self, path: str, why: str) -> None:
        if path not in self.reported:
            self.reported.add(path)
            self.report(f"{path}: corrupt Hypothesis example ({why}); skipped, left in place")

    def _holds(self, path, value: bytes) -> bool:
        """Does the entry at `path` hold `value`?  (False for a corrupt one.)"""
        try:
            return read_file(str(path)) == value
        except InputError:
            return False

    def _quarantine(self, path) -> bool:
        """Move a corrupt entry Hypothesis is about to overwrite, delete or move out of
        its way, into DB/.quarantine/; False if there was nothing to move."""
        if not path.exists():
            return False
        dest = quarantine_path(str(self.path), str(path))
        try:
            os.renames(path, dest)
        except OSError as e:
            self.report(f"{path}: corrupt Hypothesis example could not be quarantined "
                        f"({e.strerror}); left in place")
            return True
        self.report(f"{path}: corrupt Hypothesis example moved to {dest} (Hypothesis "
                    "replaced or dropped the example of that name; the file is kept)")
        return True

    def delete(self, key: bytes, value: bytes) -> None:
        path = self._value_path(key, value)
        if path.exists() and not self._holds(path, value) and self._quarantine(path):
            return
        super().delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        path = self._value_path(src, value)
        if src != dest and path.exists() and not self._holds(path, value):
            self._quarantine(path)
            self.save(dest, value)
            return
        super().move(src, dest, value)

    def save(self, key: bytes, value: bytes) -> None:
        kp = self._key_path(key)
        if kp.name != self._metakeys_hash:
            self.save(self._metakeys_name, key)
        path = self._value_path(key, value)
        if path.exists():
            if self._holds(path, value) or not self._quarantine(path):
                return
        try:
            write_bytes_atomic(path, value)
        except OSError:
            pass  # as Hypothesis: a database that cannot be written is not fatal


class CheckedDatabase(ExampleDatabase):
    """Any example database with corrupt values reported (key, value hash) and skipped."""

    def __init__(self, inner: ExampleDatabase, name: str, report: Report = _say) -> None:
        super().__init__()
        self.inner = inner
        self.name = name
        self.report = report
        self.reported: set[tuple[bytes, str]] = set()

    def __repr__(self) -> str:
        return f"CheckedDatabase({self.inner!r})"

    def fetch(self, key: bytes) -> Iterable[bytes]:
        for value in self.inner.fetch(key):
            why = corrupt_reason(value)
            if why is None:
                yield value
            elif (key, _hash(value)) not in self.reported:
                self.reported.add((key, _hash(value)))
                self.report(f"{self.name}: key {key.hex()[:16]}... value {_hash(value)}: "
                            f"corrupt Hypothesis example ({why}); skipped, left in place")

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        self.inner.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.move(src, dest, value)


def open_database(spec: str | None, default_dir: str | None = None,
                  report: Report = _say) -> ExampleDatabase | None:
    """The database named by `spec` (``--db``): None -> `default_dir`, ``none`` -> no database,
    ``redis://host:port/N`` -> a Redis server, anything else -> a directory."""
    if spec is None:
        return SafeDirectoryDatabase(default_dir, report) if default_dir else None
    if spec == "none":
        return None
    if spec.startswith(("redis://", "rediss://", "unix://")):
        try:
            from hypothesis.extra.redis import RedisExampleDatabase
            from redis import Redis
        except ImportError:
            from daxfuzz.errors import ConfigError

            raise ConfigError(f"--db {spec}: a Redis database needs the redis client: "
                              "pip install 'daxfuzz[fleet]'") from None

        try:
            client = Redis.from_url(spec, socket_connect_timeout=2)
        except ValueError as e:  # a malformed URL (port not a number, bad db index...)
            from daxfuzz.errors import ConfigError

            raise ConfigError(f"--db {spec}: {e}") from None
        return CheckedDatabase(RedisExampleDatabase(client), spec, report)
    return SafeDirectoryDatabase(spec, report)


QUARANTINE = ".quarantine"
#: a temp file older than this was left by a killed writer (a write takes milliseconds)
STALE_TMP_SECONDS = 60


def quarantine_path(db: str, entry: str) -> str:
    """Where the corrupt `entry` of database folder `db` is kept: DB/.quarantine/<its
    path in the database>, with a number added if that is taken (nothing overwritten)."""
    rel = os.path.relpath(entry, db)
    dest = os.path.join(db, QUARANTINE, rel)
    n = 1
    while os.path.lexists(dest):
        dest = os.path.join(db, QUARANTINE, f"{rel}.{n}")
        n += 1
    return dest


def remove_stale_temp(path: str, report: Report = _say) -> None:
    """Remove the `.tmp-*` files a killed writer left in database folder `path` (only
    those older than STALE_TMP_SECONDS: a live writer's is renamed within milliseconds)."""
    import time

    if not os.path.isdir(path):
        return
    now = time.time()
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != QUARANTINE]
        for name in files:
            p = os.path.join(root, name)
            try:
                if name.startswith(".tmp-") and now - os.path.getmtime(p) > STALE_TMP_SECONDS:
                    os.unlink(p)
                    report(f"{p}: removed a temp file left by a killed run")
            except OSError:
                pass


def check_directory(path: str) -> list[str]:
    """Problems of a directory database, one line per corrupt entry (nothing is changed;
    DB/.quarantine/ holds entries already set aside and is not checked)."""
    out: list[str] = []
    if not os.path.isdir(path):
        return out
    for root, dirs, files in os.walk(path):  # in order: dirs sorted in place
        dirs[:] = sorted(d for d in dirs if d != QUARANTINE)
        for name in sorted(files):
            p = os.path.join(root, name)
            if name.startswith(".tmp-"):
                continue
            try:
                value = read_file(p)  # regular files only, at most MAX_FILE_BYTES
            except InputError as e:
                out.append(f"{p}: unreadable ({e.reason})")
                continue
            # the meta-key entries hold keys, not choice sequences: check the name only
            why = corrupt_reason(value, name)
            if why and not (os.path.basename(root) == _hash(b".hypothesis-keys")
                            and name == _hash(value)):
                out.append(f"{p}: corrupt Hypothesis example ({why})")
    return out
