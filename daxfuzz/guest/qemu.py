"""Boot the guest once per batch of programs and collect its console.

The programs go in a second cpio archive appended to the cached initramfs (the kernel
unpacks concatenated archives), as /progs/NAME.prog (or NAME.bin, a static executable).
A guest that stops printing is killed: at boot (``boot_timeout``) or inside one program
(``trace_timeout``); the programs not yet begun run in a fresh guest.  So do the
programs after one that made the kernel print a WARNING, BUG or Oops (see
:class:`ConsoleWatch`): the console is cut after that program's ``@@T end``.
"""

from __future__ import annotations

import gzip
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from daxfuzz.guest.build import FS_RMAPBT_LINE, GUEST_MEM_RUN, MEMMAP, Cpio
from daxfuzz.guest.results import ConsoleMender, GuestTrace, parse_console


@dataclass
class BatchResult:
    console: str = ""
    boot: list[str] = field(default_factory=list)
    traces: dict[str, GuestTrace] = field(default_factory=dict)
    boots: int = 0
    hung: list[str] = field(default_factory=list)  # names killed for hanging
    failed_boots: int = 0  # boots that ended before their first program began
    seconds: float = 0.0


def qemu_command(manifest: dict, initrd: str, step_timeout_ms: int, accel: str,
                 reuse: bool = False, vcpus: int = 2) -> list[str]:
    cpu = "host" if accel == "kvm" else "max"
    return [manifest["qemu"], "-M", "pc", "-m", GUEST_MEM_RUN, "-smp", str(vcpus), "-cpu", cpu,
            "-accel", accel if accel == "kvm" else "tcg,thread=multi",
            "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio",
            "-display", "none", "-nic", "none",
            "-kernel", manifest["vmlinuz"], "-initrd", initrd,
            "-append", f"console=ttyS0 loglevel=4 {MEMMAP} panic=-1 "
                       f"daxfuzz.timeout={step_timeout_ms}"
                       + (" daxfuzz.reuse=1" if reuse else "")]


#: kernel log lines after which the guest is not trusted with another program: an oops
#: leaves locks and mounts behind, and a WARN_ON_ONCE site that fired stays silent for
#: the rest of the boot (a later trace hitting it would look clean)
_TAINT = re.compile(r"kernel BUG at|Oops:|BUG: |Kernel panic|WARNING: |general protection fault"
                    r"|KASAN: |refcount_t: ")


def taint_line(line: str) -> str | None:
    """The kernel report in one console line that taints the guest, or None.

    At loglevel=4 a BUG or an oops reaches the console straight from printk, but a
    WARNING (KERN_WARNING) does not: only the helper's copy of it from /dev/kmsg does,
    as ``@@K step=N WARNING: ...``.  So the text before any ``@@`` is the kernel's, and
    of the helper's lines only ``@@K`` carries kernel text (``@@R``/``@@T`` never taint).
    """
    line = line.replace("\r", "")
    at = line.find("@@")
    raw = line if at < 0 else line[:at]
    if _TAINT.search(raw):
        return raw.strip()
    if at >= 0:
        m = re.match(r"@@K step=\d+ (.*)", line[at:].strip())
        if m and _TAINT.search(m.group(1)):
            return m.group(1)
    return None


class ConsoleWatch:
    """Follows the console line by line: which program runs, and whether the guest may
    take the next one.  A program that tainted the kernel ends the boot at its
    ``@@T end``; a taint between programs ends it at once (the next program, if it began,
    gets a fresh guest).  Kernel reports before the first program (boot noise) do not
    count: a fresh guest would print them again."""

    def __init__(self, last: Collection[str] = ()) -> None:
        self.current: str | None = None
        self.begun = False  # a program began in this boot
        self.taint: str = ""  # the first tainting line after a program began
        self.stop = False
        self.last = last  # programs that end the boot (run_programs' `last_in_boot`)
        self.why = ""  # why the boot stopped

    def feed(self, line: str) -> str | None:
        """One console line; returns 'begin', 'end', 'ready', 'stop' or None.  After
        'stop' the guest must run nothing more: the caller kills it."""
        if self.stop:
            return "stop"
        t = taint_line(line)
        if t is not None and self.begun and not self.taint:
            self.taint = t
        if self.taint and self.current is None:
            self.stop = True  # between programs: whatever comes next is not trusted
            self.why = f"kernel said {self.taint[:100]!r}"
            return "stop"
        at = line.find("@@")
        tag = line[at:].strip() if at >= 0 else ""
        if tag.startswith("@@P ") and "still_blocked_at_end" in tag and not self.taint:
            self.taint = tag  # a call stuck for good: the mount is not trusted any more
        if tag.startswith("@@T begin "):
            self.current = tag.split()[2]
            self.begun = True
            return "begin"
        if tag.startswith("@@T end"):
            name, self.current = self.current, None
            if self.taint:
                self.stop = True
                self.why = f"kernel said {self.taint[:100]!r}"
                return "stop"
            if name in self.last:
                self.stop = True
                self.why = f"{name} leaves struct pages behind (the port)"
                return "stop"
            return "end"
        if tag.startswith("@@B ready"):
            return "ready"
        return None


def _one_boot(manifest: dict, progs: list[tuple[str, str | bytes]], *, boot_timeout: float,
              trace_timeout: float, step_timeout_ms: int, accel: str,
              log, reuse: bool = False, vcpus: int = 2,
              last: Collection[str] = ()) -> tuple[str, str | None, float]:
    """Boot once; (console text, name of a program that hung or None, seconds)."""
    c = Cpio()
    c.mkdir("progs")
    for name, text in progs:
        if isinstance(text, bytes):  # a static executable (a `kernel repro`), run instead
            c.file(f"progs/{name}.bin", text, 0o755)  # of daxop, with the same arguments
            # the reproducer's program lines are in it: one asking for the reverse map
            # asks /init for that filesystem (build.FS_RMAPBT_LINE)
            fs = FS_RMAPBT_LINE.encode() + b"\n" if FS_RMAPBT_LINE.encode() in text else b""
            c.file(f"progs/{name}.prog", b"# runs progs/NAME.bin\n" + fs)
        else:
            c.file(f"progs/{name}.prog", text.encode())
    base = Path(manifest["initramfs"]).read_bytes()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="daxfuzz-guest-") as tmp:
        initrd = os.path.join(tmp, "initrd")
        with open(initrd, "wb") as f:
            f.write(base)
            f.write(gzip.compress(c.finish(), compresslevel=1))
        cmd = dies_with_us(qemu_command(manifest, initrd, step_timeout_ms, accel, reuse,
                                        vcpus))
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out = bytearray()
        buf = b""
        watch = ConsoleWatch(last)
        mender = ConsoleMender()  # a printk line inside one of the helper's, cut out
        deadline = time.monotonic() + boot_timeout
        hung: str | None = None
        try:
            while not watch.stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    hung = watch.current or "<boot>"
                    break
                r, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
                if not r:
                    if proc.poll() is not None:
                        break
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    # keep the console only up to the line that stopped the boot: the
                    # next program may have begun in the same read, and it reruns
                    out += raw + b"\n"
                    for line in mender.feed(raw.decode(errors="replace")):
                        ev = watch.feed(line)
                        if ev == "begin":
                            log(f"  guest: {watch.current}")
                        if ev in ("begin", "end", "ready"):
                            deadline = time.monotonic() + trace_timeout
                        elif ev == "stop":
                            log(f"  guest: {watch.why}; rebooting for the rest")
                            break
                    if watch.stop:
                        break
            if not watch.stop:
                out += buf  # a partial last line (a hang, or the guest's end)
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
    return out.decode(errors="replace"), hung, time.monotonic() - t0


def dies_with_us(cmd: list[str]) -> list[str]:
    """`cmd` run so that it gets SIGKILL when the daxfuzz process that started it dies
    (util-linux's ``setpriv --pdeathsig KILL``, when the machine has it): QEMU runs in a
    session of its own, and a campaign killed by SIGTERM or SIGKILL left its guest
    running, a core busy until the guest's own timeouts."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else cmd


def run_programs(manifest: dict, progs: list[tuple[str, str | bytes]], *, boot_timeout: float = 180,
                 trace_timeout: float = 120, step_timeout_ms: int = 2000, accel: str = "tcg",
                 log=lambda s: None, reuse: bool = False,
                 until: Callable[[dict[str, GuestTrace]], bool] | None = None,
                 last_in_boot: Collection[str] = (), boot_retries: int = 2,
                 one_boot: Callable | None = None, vcpus: int = 2) -> BatchResult:
    """Run every program (a daxop program's text, or the bytes of a static executable the
    guest runs as ``BIN MOUNTPOINT DEVICE TIMEOUT_MS`` on the fresh mount instead); a hang
    kills the guest and the rest run in a new one.  With `reuse` the guest makes its
    filesystem once per boot instead of once per program: each program's files are
    unlinked after it (the init script's ``daxfuzz.reuse=1``; `kernel fuzz`).  `until`,
    asked after each boot with the traces so far, stops before the next boot when true
    (a reduction round that found what it wanted).  A program named in `last_in_boot`
    ends its boot (the rest run in a new one): the port says it leaves struct pages in a
    state a fresh kernel's are not in (kfuzz.leaked_page: 6.1's PAGE_MAPPING_DAX_COW on
    a freed page), which a later program reusing the block would inherit.

    A guest that dies or stops printing before its first program began (a panic at
    boot: TCG's multi-threaded guest has oopsed on an int3 while the kernel patched its
    own text, once in many hundred boots) is booted afresh, up to `boot_retries` times
    in a row; its console is kept, and `res.failed_boots` counts such boots.  `one_boot`
    stands in for the boot itself (tests).  `vcpus`: the guest's CPUs (QEMU -smp)."""
    boot_once = one_boot or _one_boot
    res = BatchResult()
    todo = list(progs)
    t0 = time.monotonic()
    failed_in_a_row = 0
    while todo:
        res.boots += 1
        log(f"booting the guest ({len(todo)} program(s), {accel})")
        text, hung, _secs = boot_once(manifest, todo, boot_timeout=boot_timeout,
                                      trace_timeout=trace_timeout,
                                      step_timeout_ms=step_timeout_ms, accel=accel, log=log,
                                      reuse=reuse, last=last_in_boot, vcpus=vcpus)
        res.console += text
        boot, traces = parse_console(text)
        res.boot += boot
        res.traces.update(traces)
        if not traces and hung in (None, "<boot>"):
            res.failed_boots += 1
            failed_in_a_row += 1
            if failed_in_a_row <= boot_retries:
                why = "stopped printing" if hung else "stopped"
                said = "; ".join(boot[-2:]) or "no output"
                log(f"  guest {why} before its first program ({said}); booting a fresh one")
                continue
            if hung == "<boot>":
                res.hung.append("<boot>")
            break  # the guest does not boot: do not loop
        failed_in_a_row = 0
        if hung is not None:
            res.hung.append(hung)
            gt = res.traces.setdefault(hung, GuestTrace(hung))
            gt.error = f"guest hung in this trace: killed after {trace_timeout:.0f} s"
        done = set(traces) | ({hung} if hung else set())
        rest = [(n, t) for n, t in todo if n not in done]
        if len(rest) == len(todo):
            break  # no progress
        if rest and until is not None and until(res.traces):
            break
        todo = rest
    res.seconds = time.monotonic() - t0
    return res
