"""Boot the guest once per batch of programs and collect its console.

The programs go in a second, uncompressed cpio archive appended to the cached
initramfs (the kernel unpacks concatenated archives), as /progs/NAME.prog.  A guest that
stops printing is killed: at boot (``boot_timeout``) or inside one program
(``trace_timeout``); the programs not yet begun run in a fresh guest.
"""

from __future__ import annotations

import gzip
import os
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from daxfuzz.guest.build import GUEST_MEM_RUN, MEMMAP, Cpio
from daxfuzz.guest.results import GuestTrace, parse_console


@dataclass
class BatchResult:
    console: str = ""
    boot: list[str] = field(default_factory=list)
    traces: dict[str, GuestTrace] = field(default_factory=dict)
    boots: int = 0
    hung: list[str] = field(default_factory=list)  # names killed for hanging
    seconds: float = 0.0


def qemu_command(manifest: dict, initrd: str, step_timeout_ms: int, accel: str) -> list[str]:
    cpu = "host" if accel == "kvm" else "max"
    return [manifest["qemu"], "-M", "pc", "-m", GUEST_MEM_RUN, "-smp", "2", "-cpu", cpu,
            "-accel", accel if accel == "kvm" else "tcg,thread=multi",
            "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio",
            "-display", "none", "-nic", "none",
            "-kernel", manifest["vmlinuz"], "-initrd", initrd,
            "-append", f"console=ttyS0 loglevel=4 {MEMMAP} panic=-1 "
                       f"daxfuzz.timeout={step_timeout_ms}"]


#: console lines after which the guest is not trusted with another program: an oops
#: leaves locks and mounts behind, and a WARN_ON_ONCE site that fired stays silent for
#: the rest of the boot (a later trace hitting it would look clean)
_TAINTS = ("kernel BUG at", "Oops:", "BUG: ", "Kernel panic", "WARNING: ")


def _one_boot(manifest: dict, progs: list[tuple[str, str]], *, boot_timeout: float,
              trace_timeout: float, step_timeout_ms: int, accel: str,
              log) -> tuple[str, str | None, float]:
    """Boot once; (console text, name of a program that hung or None, seconds)."""
    c = Cpio()
    c.mkdir("progs")
    for name, text in progs:
        c.file(f"progs/{name}.prog", text.encode())
    base = Path(manifest["initramfs"]).read_bytes()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="daxfuzz-guest-") as tmp:
        initrd = os.path.join(tmp, "initrd")
        with open(initrd, "wb") as f:
            f.write(base)
            f.write(gzip.compress(c.finish(), compresslevel=1))
        cmd = qemu_command(manifest, initrd, step_timeout_ms, accel)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out = bytearray()
        buf = b""
        current: str | None = None
        deadline = time.monotonic() + boot_timeout
        hung: str | None = None
        tainted = stop = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    hung = current or "<boot>"
                    break
                r, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
                if not r:
                    if proc.poll() is not None:
                        break
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    at = line.find("@@")
                    if at < 0:
                        if current is not None and any(m in line for m in _TAINTS):
                            tainted = True
                        continue
                    line = line[at:].strip()
                    if line.startswith("@@T begin "):
                        current = line.split()[2]
                        deadline = time.monotonic() + trace_timeout
                        log(f"  guest: {current}")
                    elif line.startswith("@@T end"):
                        current = None
                        deadline = time.monotonic() + trace_timeout
                        if tainted:  # an oops leaves the kernel (and the mount) unusable:
                            stop = True  # the remaining programs get a fresh guest
                    elif line.startswith("@@B ready"):
                        deadline = time.monotonic() + trace_timeout
                if stop:
                    log("  guest: kernel WARNING/BUG/Oops in that trace; rebooting for the rest")
                    break
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
    return out.decode(errors="replace"), hung, time.monotonic() - t0


def run_programs(manifest: dict, progs: list[tuple[str, str]], *, boot_timeout: float = 180,
                 trace_timeout: float = 120, step_timeout_ms: int = 2000, accel: str = "tcg",
                 log=lambda s: None) -> BatchResult:
    """Run every program; a hang kills the guest and the rest run in a new one."""
    res = BatchResult()
    todo = list(progs)
    t0 = time.monotonic()
    while todo:
        res.boots += 1
        log(f"booting the guest ({len(todo)} program(s), {accel})")
        text, hung, _secs = _one_boot(manifest, todo, boot_timeout=boot_timeout,
                                      trace_timeout=trace_timeout,
                                      step_timeout_ms=step_timeout_ms, accel=accel, log=log)
        res.console += text
        boot, traces = parse_console(text)
        res.boot += boot
        res.traces.update(traces)
        if hung == "<boot>" and not traces:
            res.hung.append("<boot>")
            break  # the guest does not boot: do not loop
        if hung is not None:
            res.hung.append(hung)
            gt = res.traces.setdefault(hung, GuestTrace(hung))
            gt.error = f"guest hung in this trace: killed after {trace_timeout:.0f} s"
        done = set(traces) | ({hung} if hung else set())
        rest = [(n, t) for n, t in todo if n not in done]
        if len(rest) == len(todo):
            break  # no progress
        todo = rest
    res.seconds = time.monotonic() - t0
    return res
