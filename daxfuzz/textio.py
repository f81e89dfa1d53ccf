"""Reading user files and numbers within bounds: one place for the input limits.

Every file daxfuzz reads on a user's behalf (traces, crash inputs, corpus entries)
goes through :func:`read_file`: only a regular file is read (a FIFO, a device such
as ``/dev/zero`` or ``/dev/urandom`` behind a symlink, a directory or a socket is
refused by name, never opened for a blocking read), and never more than
``MAX_FILE_BYTES``.  Numbers in traces and flags are ASCII decimal digits only
(:func:`decimal`): no '+', no ``_``, no fullwidth or Arabic-Indic digits, no
surrounding Unicode space, which ``int()`` would all accept.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile

from daxfuzz.errors import InputError, OutputError

#: largest trace or crash input read (1 MiB: the longest corpus trace is ~3 KiB)
MAX_FILE_BYTES = 1 << 20
#: largest JSON state file read (campaign state, summaries, finding records, build info)
MAX_JSON_BYTES = 64 << 20
#: largest series.jsonl read (a sample line is ~300 bytes: ~800 k samples)
MAX_SERIES_BYTES = 256 << 20
#: longest trace line (an op line is ~60 characters; a description rarely 200)
MAX_LINE_CHARS = 4096
#: most digits a number may have (every geometry limit is below 10**6)
MAX_DIGITS = 9
#: how much of an offending token an error message echoes
ECHO_CHARS = 40


def env_number(name: str, default: float, lo: float, hi: float, integer: bool = True
               ) -> float:
    """$`name` as a number in lo..hi (ASCII; an int unless `integer` is False), `default`
    when unset or empty; a ConfigError naming the variable otherwise."""
    from daxfuzz.errors import ConfigError

    text = os.environ.get(name, "")
    if not text:
        return default
    v: float | None = decimal(text)
    if v is None and not integer and text.isascii():
        try:
            v = float(text)
        except ValueError:
            v = None
    if v is None or v != v or not lo <= v <= hi:
        what = "a whole number" if integer else "a number"
        raise ConfigError(f"${name}={show(text)}: expected {what} in {lo:g}..{hi:g}")
    return v


def show(token: str) -> str:
    """`token` as an error message quotes it: repr, cut to ECHO_CHARS characters."""
    if len(token) <= ECHO_CHARS:
        return repr(token)
    return repr(token[:ECHO_CHARS]) + f"... ({len(token)} characters)"


def decimal(text: str) -> int | None:
    """The value of `text` if it is 1..MAX_DIGITS ASCII decimal digits, with an optional
    '-' (so every op prints and parses back; a range check refuses it), else None."""
    digits = text[1:] if text.startswith("-") else text
    if not 0 < len(digits) <= MAX_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return int(text, 10)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, for the refusal message."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_file(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed), at most `limit`.

    Raises InputError naming `path` for anything else: missing, unreadable, not a
    regular file, or larger than `limit`.  The file is opened non-blocking, so a FIFO
    is refused rather than waited on.
    """
    return _read_regular(path, limit, tail=False)[0]


def read_tail(path: str, limit: int) -> tuple[bytes, int]:
    """The last `limit` bytes of the regular file at `path` and how many bytes before
    them were left unread (an append-only log that outgrew its limit keeps its newest
    part); refused as :func:`read_file` refuses."""
    return _read_regular(path, limit, tail=True)


def _read_regular(path: str, limit: int, tail: bool) -> tuple[bytes, int]:
    """(bytes read, bytes skipped at the start): the whole file within `limit`, or with
    `tail` its last `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    try:
        st = os.fstat(fd)
        kind = _kind(st.st_mode)
        if kind is not None:
            raise InputError(f"{kind}, not a regular file: refused", path=path)
        skip = max(0, st.st_size - limit) if tail else 0
        if skip:
            os.lseek(fd, skip, os.SEEK_SET)
        elif st.st_size > limit:
            raise InputError(f"{st.st_size} bytes: larger than the {limit}-byte limit for "
                             "an input file", path=path)
        chunks = []
        total = 0
        while True:  # the size can change under us: read to EOF, within the limit
            b = os.read(fd, min(1 << 16, limit + 1 - total))
            if not b:
                break
            chunks.append(b)
            total += len(b)
            if total > limit:
                if tail:  # grew while read: keep the first `limit` bytes of the tail
                    return b"".join(chunks)[:limit], skip
                raise InputError(f"larger than the {limit}-byte limit for an input file",
                                 path=path)
        return b"".join(chunks), skip
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    finally:
        os.close(fd)


def read_text(path: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file at `path` (see :func:`read_file`)."""
    data = read_file(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path,
                         line=line) from None


def read_json(path: str, limit: int = MAX_JSON_BYTES) -> object:
    """The JSON value in the regular file at `path` (read as :func:`read_file` does: no
    FIFO waited on, no device read to exhaustion); InputError naming the file and line
    otherwise.  The caller checks the value's shape."""
    text = read_text(path, limit)
    try:
        return json.loads(text)
    except ValueError as e:
        raise InputError(f"not JSON ({getattr(e, 'msg', e)})", path=path,
                         line=getattr(e, "lineno", None)) from None


def lines(text: str) -> list[str]:
    """`text` split into lines on ``\\n`` only (a ``\\r`` before it is dropped).

    str.splitlines() also splits on vertical tab, form feed, U+0085, U+2028 and
    U+2029, so one such character in a description shifted every later line number.
    A leading UTF-8 byte-order mark is dropped.
    """
    text = text.removeprefix("\ufeff")
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in out]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


#: the process's umask, read once (os.umask can only be read by setting it)
_UMASK = _umask()


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: see :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, mode: int | None = None
                       ) -> None:
    """Write `data` to `path` atomically: a temp file in the same folder, fsync, rename;
    the temp file is removed if anything fails (nothing half-written is ever seen).
    The one atomic write of daxfuzz: findings, traces, campaign state, the example
    database, seeds and the guest's cached files all go through it.

    Only a regular file (or nothing) is replaced: a directory, device, FIFO or socket
    at `path` (or behind a symlink there) is refused, since the rename would put a file
    in its place -- ``-o /dev/null`` as root replaced the device; a symlink is
    followed, and the file it names replaced (``-o /dev/stdout`` is refused).  Any failure is an
    OutputError naming `path` (exit code 2, and an OSError)."""
    given = os.fspath(path)
    name = os.path.realpath(given)  # through a symlink: replace its file, not the link
    shown = given if name == os.path.abspath(given) else f"{given} (-> {name})"
    try:
        kind = _kind(os.stat(name).st_mode)
    except FileNotFoundError:
        kind = None
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror}", path=shown) from None
    if kind is not None:
        raise OutputError(f"{kind} is there: refusing to replace it with a file", path=shown)
    d = os.path.dirname(name)
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror}", path=shown) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600: a shared findings folder was unreadable to the others
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_UMASK)
        os.replace(tmp, name)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputError(f"cannot write: {e.strerror}", path=shown) from None
        raise
