"""Parse the guest's serial console and set the kernel's results beside the oracle's.

The guest prints (see daxop.c and build.INIT_SCRIPT):

    @@B ...                              boot progress
    @@T begin NAME / @@T end NAME         one trace program
    @@I dax=1 files=2 size=N             the files were created (statx DAX attribute)
    @@R step=N status=S ms=T errno=E note=X    one step's result
    @@P step=N done_ms=T code=C after_step=K   a blocked uninterruptible call finished later
    @@K step=N <kernel log line>         a WARNING/BUG/Oops/KASAN line after step N
    @@G ...                              raw struct pages (daxpages.c; read by pages.py)

Kernel log lines that reach the console outside a program's output (a panic, say) are
attached to the trace (and the last step seen) by :func:`parse_console`.

The helper and printk share the one serial port: the 8250 console writes a printk line
straight to the UART while the tty still drains the helper's line, so a kernel line can
land inside one of ours (``@@R step=7 status=e[  9.48] Memory failure: ...`` and then
``rr ms=4.9 ...`` on the next line).  :class:`ConsoleMender` puts such a line back
together before anything reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KERNEL_BAD = re.compile(r"WARNING:|BUG:|BUG |Oops|KASAN|kernel BUG|general protection|"
                        r"Kernel panic|blocked for more than|refcount_t:")
#: QEMU's own complaints (an accelerator or CPU model the host refuses): why a guest
#: never booted, said where "boot: no output" would say nothing
QEMU_ERROR = re.compile(r"^(?:\S*/)?qemu-system-\S+: |KVM internal error")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc")
#: a printk line's time stamp (CONFIG_PRINTK_TIME=y in the guest's kernel.config)
_PRINTK_TS = re.compile(r"\[\s*\d+\.\d+\] ")


class ConsoleMender:
    """Takes console lines in order and gives back lines of the helper that a printk
    line cut in two, whole, with the printk line on its own.  A line that begins with a
    time stamp is the kernel's and is never cut: only text before a stamp that is not
    the kernel's (ours) is held, and joined to the next line that is not the kernel's."""

    def __init__(self) -> None:
        self.held = ""  # the head of a line of ours, cut by a printk line

    def feed(self, line: str) -> list[str]:
        """One console line (no newline); the whole lines it completes, in order, escapes
        and carriage returns gone."""
        line = _ANSI.sub("", line).replace("\r", "")
        if self.held:
            if _PRINTK_TS.match(line):  # a second printk line inside the same one of ours
                return [line]
            line, self.held = self.held + line, ""
        m = _PRINTK_TS.search(line, 1)
        if m is not None and not _PRINTK_TS.match(line):
            self.held = line[:m.start()]
            return [line[m.start():]]
        return [line]

    def flush(self) -> list[str]:
        """The held head, if the console ended inside it."""
        held, self.held = self.held, ""
        return [held] if held else []


def console_lines(text: str) -> list[str]:
    """The console's lines, escapes and carriage returns gone, every line of ours that a
    printk line cut in two put back whole (:class:`ConsoleMender`)."""
    m = ConsoleMender()
    out = [x for raw in text.splitlines() for x in m.feed(raw)]
    return out + m.flush()


@dataclass
class StepResult:
    step: int
    status: str  # ok blocked err sigbus sigsegv skip
    ms: float = 0.0
    errno: str = "0"
    note: str = ""

    def outcome(self) -> str:
        """The result in the model's vocabulary: ok, blocked, SIGBUS, EBUSY, ... or n/a."""
        if self.status == "ok":  # a memory_failure's signal to current: killed=MM
            return f"ok {self.note}" if self.note.startswith("killed=") else "ok"
        if self.status == "blocked":
            return "blocked"
        if self.status == "sigbus":
            return "SIGBUS"
        if self.status == "sigsegv":
            return "SIGSEGV"
        if self.status == "err":
            return self.errno
        return "n/a"

    def describe(self) -> str:
        if self.status == "blocked":
            return f"blocked {self.ms:.0f} ms ({self.note.replace('_', ' ')})"
        if self.status == "skip":
            return f"not expressible: {self.note.replace('_', ' ')}"
        o = self.outcome()
        return f"{o} ({self.ms:.1f} ms)" if self.status == "ok" else o


@dataclass
class GuestTrace:
    name: str
    steps: dict[int, StepResult] = field(default_factory=dict)
    kernel: list[tuple[int, str]] = field(default_factory=list)  # (step, line)
    pending: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    finished: bool = False  # @@T end seen
    error: str = ""  # setup failure, helper crash, hang
    exited: int = -1  # len(kernel) when the helper exited (@@T exit): later lines are the
    # init script's clean-up (unmount, or unlinking the files: their eviction)
    pages: list[str] = field(default_factory=list)  # @@G lines (daxfuzz/guest/pages.py)


def oracle_outcome(result: str) -> str:
    """An oracle/target result in the comparable vocabulary ('blocked pfn=2' -> 'blocked';
    who memory_failure signals stays: 'ok killed=1', as the helper reports it)."""
    w = result.split()
    if len(w) > 1 and w[0] == "ok" and w[1].startswith("killed="):
        return f"ok {w[1]}"
    return w[0] if w else result


def parse_result_line(line: str) -> StepResult | None:
    m = re.match(r"@@R step=(\d+) status=(\S+) ms=([\d.]+) errno=(\S+) note=(\S*)", line)
    if not m:
        return None
    note = "" if m.group(5) == "-" else m.group(5)
    return StepResult(int(m.group(1)), m.group(2), float(m.group(3)), m.group(4), note)


def parse_console(text: str) -> tuple[list[str], dict[str, GuestTrace]]:
    """(boot lines, traces by name) from the whole console output."""
    boot: list[str] = []
    traces: dict[str, GuestTrace] = {}
    cur: GuestTrace | None = None
    last_step = 0
    for raw in console_lines(text):
        line = raw.strip()
        at = line.find("@@")
        if at > 0:
            line = line[at:]
        if line.startswith("@@B"):
            boot.append(line[4:])
            continue
        if line.startswith("@@T begin "):
            cur = GuestTrace(line.split()[2])
            traces[cur.name] = cur
            last_step = 0
            continue
        if cur is None:
            if KERNEL_BAD.search(line) or QEMU_ERROR.search(line):
                boot.append(line)
            continue
        if line.startswith("@@T end"):
            cur.finished = True
            cur = None
            continue
        if line.startswith("@@T setup-failed"):
            cur.error = "setup failed in the guest: " + line.split(None, 3)[-1]
        elif line.startswith("@@T exit"):
            cur.exited = len(cur.kernel)
            code = line.split()[-1]
            if code != "0":
                cur.error = cur.error or f"daxop exited {code}"
        elif line.startswith("@@R"):
            r = parse_result_line(line)
            if r is not None:
                cur.steps[r.step] = r
                last_step = r.step
        elif line.startswith("@@P"):
            cur.pending.append(line[4:])
        elif line.startswith("@@K"):
            m = re.match(r"@@K step=(\d+) (.*)", line)
            if m:
                cur.kernel.append((int(m.group(1)), m.group(2)))
        elif line.startswith("@@G"):
            cur.pages.append(line[4:])
        elif line.startswith("@@I"):
            cur.info.append(line[4:])
        elif KERNEL_BAD.search(line):
            # straight from the console (printk), attributed to the last step reported
            text_ = re.sub(r"^\[\s*[\d.]+\]\s*", "", line)
            if (last_step, text_) not in cur.kernel:
                cur.kernel.append((last_step, text_ + "  [console]"))
    return boot, traces


@dataclass
class Row:
    step: int
    op: str
    predicted: str  # oracle
    kernel: str  # describe()
    verdict: str  # agree / DIFFER / n/a / missing


def spun_at(ops: list[str], gt: GuestTrace) -> int:
    """The first step (1-based) whose call the guest killed and which ran on (``blocked
    ... left_pending``, not an umount), or 0: nothing after it is comparable (the
    documented unkillable reflink/exchange spin; kfuzz.spin_step)."""
    for i, op in enumerate(ops, 1):
        r = gt.steps.get(i)
        if (r is not None and r.status == "blocked" and "left_pending" in r.note
                and not op.startswith("unmount")):
            return i
    return 0


def compare(ops: list[str], predicted: list[str], gt: GuestTrace) -> list[Row]:
    """Per-step rows: the oracle's prediction beside what the kernel did; the steps
    after a killed call that ran on (:func:`spun_at`) are n/a."""
    rows = []
    stop = spun_at(ops, gt)
    for i, (op, pred) in enumerate(zip(ops, predicted, strict=True), 1):
        r = gt.steps.get(i)
        if stop and i > stop:
            what = r.describe() if r is not None else "no result"
            rows.append(Row(i, op, pred, f"{what}; not compared: the killed call of step "
                            f"{stop} ran on", "n/a"))
            continue
        if r is None:
            rows.append(Row(i, op, pred, "no result (guest stopped)", "missing"))
            continue
        k = r.outcome()
        if k == "n/a":
            v = "n/a"
        else:
            v = "agree" if k == oracle_outcome(pred) else "DIFFER"
        rows.append(Row(i, op, pred, r.describe(), v))
    return rows
