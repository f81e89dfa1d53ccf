"""`daxfuzz kernel repro`: one self-contained C file that replays a trace on a real kernel.

The file is the guest's own translation, not a second one: ``translate()`` turns the
trace into daxop command lines (the program `daxfuzz kernel run` feeds the guest
helper), and the file is

    a header comment   set-up (pmem, mkfs.xfs, mount: build.py's own commands), the
                       trace's description and expect lines, where it was confirmed
    daxlib.c verbatim  the commands (plain syscalls) and their dispatcher, the same
                       source daxop.c compiles in the guest
    a main()           the program as a table of those exact lines, one block per trace
                       step headed by a comment (the op, what a correct kernel and the
                       7.2 model answer, the syscalls the lines make), fed in trace order
                       to the same dispatcher (``daxop_line``)

So a fork runs through daxop's multi-process director, blocking calls are timed and
interrupted as in the guest, and the output is daxop's ``@@R``/``@@K`` lines, each step
announced by ``== step N: OP``.  A trace with a step the guest cannot express (a
``memory_failure`` of the other holder than the trace's first or of a pfn current
does not map, a reflink needing
more segments than the helper takes) is refused
(:class:`InputError`: file, step, op, why): the file never silently does less.
"""

from __future__ import annotations

import re
import shlex
import textwrap

from daxfuzz.errors import InputError
from daxfuzz.guest import build
from daxfuzz.guest.translate import PAGE, PMD, translate, unexpressible, wants_rmapbt
from daxfuzz.vocab.trace import Trace

DEFAULT_MNT = "/mnt"
DEFAULT_DEV = "/dev/pmem0"
DEFAULT_TIMEOUT_MS = 2000
_CONFIRMED = re.compile(r"confirmed on (Linux [0-9][\w.+~-]*)", re.IGNORECASE)


def _size(n: int) -> str:
    if n and n % PMD == 0:
        return f"{n // PMD * 2} MiB"
    if n and n % PAGE == 0:
        return f"{n // 1024} KiB"
    return f"{n} B"


def _off(n: int) -> str:
    return "0" if n == 0 else f"{n:#x} ({_size(n)})"


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(s: str) -> str:
    """Text safe inside a C block comment."""
    return s.replace("*/", "* /").replace("/*", "/ *")


def confirmations(raw_text: str, trace: Trace) -> list[str]:
    """Kernels the trace's comments or description say it was confirmed on."""
    found: list[str] = []
    text = "\n".join([raw_text, *trace.description])
    for m in _CONFIRMED.finditer(text):
        k = m.group(1).rstrip(".")
        if k not in found:
            found.append(k)
    return found


class _Gloss:
    """What each daxop command line does, in syscalls (the comment above it)."""

    def __init__(self, vmas: int) -> None:
        self.vmas = vmas
        self.ino: dict[int, int] = {}  # slot -> file it maps

    def _where(self, slot: int, o: int) -> str:
        f = f"f{self.ino[slot]}" if slot in self.ino else "the file"
        return f"file offset {_off(o)} of {f} through mapping {slot}"

    def _range(self, slot: int, o: int, n: int) -> str:
        f = f"f{self.ino[slot]}" if slot in self.ino else "the file"
        return f"file offsets [{_off(o)}, +{_size(n)}) of {f} through mapping {slot}"

    def __call__(self, line: str) -> str:
        w = line.split()
        cmd, a = w[0], [int(x) for x in w[1:]] if w[0] not in ("errno", "skip") else []
        if cmd == "init":
            hint = (f", give it a {_size(a[2])} XFS CoW extent size hint "
                    f"(FS_IOC_FSSETXATTR, FS_XFLAG_COWEXTSIZE)" if len(a) > 2 and a[2] else "")
            rmap = (", and check the filesystem has the reverse-mapping btree (XFS_IOC_"
                    "FSGEOMETRY_V1; memory_failure's holder path needs it)"
                    if len(a) > 3 and a[3] == 1 else "")
            return (f"create f0..f{a[0] - 1} in the DAX directory{hint}, ftruncate each to "
                    f"{_size(a[1])} (holes){rmap}")
        if cmd == "mmap":
            slot, ino, o, n, prot, shared, huge, mis, sync = a
            self.ino[slot] = ino
            pr = "PROT_READ|PROT_WRITE" if prot & 2 else "PROT_READ"
            fl = ("MAP_SHARED_VALIDATE|MAP_SYNC" if sync else "MAP_SHARED") if shared \
                else "MAP_PRIVATE"
            at = "2 MiB aligned" if not mis else "2 MiB aligned + 4 KiB (PTEs only)"
            return (f"mapping {slot}: mmap(f{ino}, offset {_off(o)}, {_size(n)}, {pr}, {fl}) "
                    f"at a {at} address" + ("" if huge else ", then MADV_NOHUGEPAGE"))
        if cmd == "munmap":
            if len(a) > 2 and a[2] > 0:
                return (f"munmap(2) of {self._range(a[0], a[1], a[2])} (it may split the "
                        f"mapping, leaving holes)")
            self.ino.pop(a[0], None)
            return (f"munmap(2) of everything mapping {a[0]} maps (one call from its first "
                    f"mapped byte to its last)")
        if cmd == "msync":
            return (f"msync(MS_SYNC) of mapping {a[0]}, from its first mapped byte to its "
                    f"last (ENOMEM for a hole inside)")
        if cmd == "mprotect":
            pr = "PROT_READ|PROT_WRITE" if a[3] & 2 else "PROT_READ"
            return f"mprotect(2) of {self._range(a[0], a[1], a[2])} to {pr}"
        if cmd == "mremap":
            slot, o, n, to, mis = a
            if slot in self.ino:
                self.ino[to] = self.ino[slot]
            at = "2 MiB aligned" if not mis else "2 MiB aligned + 4 KiB (PTEs only)"
            return (f"munmap(2) of everything mapping {to} maps, then mremap(2) "
                    f"MREMAP_MAYMOVE|MREMAP_FIXED of {self._range(slot, o, n)} into "
                    f"mapping {to} at a {at} address (same length)")
        if cmd == "madv":
            return (f"madvise(MADV_DONTNEED) of file offsets [{_off(a[1])}, +{_size(a[2])}) "
                    f"clipped to mapping {a[0]}'s first to last mapped byte")
        if cmd == "touch":
            return f"{'store to' if a[2] else 'load from'} {self._where(a[0], a[1])}"
        if cmd == "gup":
            h, slot, o, write, kind = a
            pre = "store to it, then " if write else ""
            return (f"{pre}vmsplice() the page at {self._where(slot, o)} into pipe {h}: a "
                    f"get_user_pages reference held while the pipe holds it "
                    f"(the model's {'pin' if kind == 1 else 'get'} h={h})")
        if cmd == "gupv":
            h, slot, write, nseg = a[:4]
            runs = [a[4 + 2 * i:6 + 2 * i] for i in range(nseg)]
            n = sum(k for _o, k in runs)
            where = ", ".join(f"{k} page(s) at {_off(o)}" for o, k in runs)
            pre = "store to each page, then " if write else ""
            f = f"f{self.ino[slot]}" if slot in self.ino else "the file"
            return (f"{pre}one vmsplice() of {where} of {f} through mapping {slot} into a "
                    f"staging pipe (get_user_pages_fast of each run at once), then each "
                    f"page spliced on to its own pipe {h}..{h + n - 1} (the model's "
                    f"pin_pages h={h} pages={n}); all or nothing")
        if cmd == "gupl":
            return (f"io_uring_register(IORING_REGISTER_BUFFERS) of the page at "
                    f"{self._where(a[0], a[1])}: FOLL_PIN|FOLL_LONGTERM")
        if cmd == "hwpoison":
            return (f"madvise(MADV_HWPOISON) of the page at {self._where(a[0], a[1])}: "
                    f"GUP, then memory_failure() of its pfn with this process current (a "
                    f"SIGBUS it sends is caught: the model's killed={a[2]})")
        if cmd == "release":
            if len(a) > 2 and a[2] != 1:
                return (f"drain pipes {a[0]}..{a[0] + a[2] - 1} (each must hold a pin, else "
                        f"EINVAL): their pages' references are dropped")
            return f"drain pipe {a[0]}: the page's reference is dropped"
        if cmd == "truncate":
            return f"ftruncate(f{a[0]}, {_size(a[1])}), in a child process (timed)"
        if cmd == "punch":
            return (f"fallocate(f{a[0]}, PUNCH_HOLE|KEEP_SIZE, {_off(a[1])}, {_size(a[2])}), "
                    "in a child process (timed)")
        if cmd == "pwrite":
            return (f"pwrite(f{a[0]}, a heap buffer of {_size(a[2])}, offset {_off(a[1])}), "
                    "in a child process (timed)")
        if cmd == "pwrite_from":
            slot, ino, last, nseg = a[:4]
            calls, at = [], 4
            for _ in range(nseg):  # DOFF NIOV (SOFF LEN)*NIOV per pwritev
                d, niov = a[at], a[at + 1]
                src = " + ".join(f"{_size(n)} from " + (self._where(slot, s) if s >= 0
                                                        else "a heap buffer")
                                 for s, n in zip(a[at + 2:at + 2 + 2 * niov:2],
                                                 a[at + 3:at + 3 + 2 * niov:2], strict=True))
                calls.append(f"{src} to offset {_off(d)}")
                at += 2 + 2 * niov
            parts = "; ".join(calls)
            return (f"pwritev(f{ino}) of {parts} (the copy faults the source in), in this "
                    f"process; EFAULT first, nothing written, when mapping {slot} is gone, "
                    f"does not cover the source, or its file ends at or before {_off(last)}")
        if cmd == "reflink":
            segs = [a[3 + 3 * i:6 + 3 * i] for i in range(a[2])]
            parts = ", ".join(f"src {_off(s)} -> dst {_off(d)} len {_size(n)}" for s, d, n in segs)
            return f"ioctl(f{a[1]}, FICLONERANGE, from f{a[0]}: {parts}), in a child process"
        if cmd == "fork":
            mm, child, vmas = a
            for v in range(vmas):
                if mm * vmas + v in self.ino:
                    self.ino[child * vmas + v] = self.ino.pop(mm * vmas + v)
            return (f"fork(2) of the process playing mm {mm}; the child plays mm {child} "
                    f"(its mappings {child * vmas}..{child * vmas + vmas - 1})")
        if cmd == "umount":
            return "umount(DAXDIR), in a child process (an uninterruptible wait stays pending)"
        if cmd == "mount":
            return "mount(DEVICE, DAXDIR, \"xfs\", 0, \"dax=always\")"
        if cmd == "errno":
            return f"no call: the model's own bookkeeping answers {w[1]}"
        return line


def refuse_unexpressible(trace: Trace, path: str) -> None:
    """InputError naming the file, the step and the op of the first step the guest
    cannot express (the whole list in the message)."""
    bad = [f"step {i} ({trace.ops[i - 1]}): {why}"
           for i, why in sorted(unexpressible(trace).items())]
    if bad:
        raise InputError("no reproducer written: the guest translation cannot express "
                         + "; ".join(bad), path=path)


def repro_source(trace: Trace, path: str, *, raw_text: str = "",
                 predicted: list[str] | None = None, port: list[str] | None = None,
                 confirmed: list[str] | None = None) -> str:
    """The C file for `trace` (see the module docstring).  `predicted`/`port`: the
    oracle's and the 7.2 port's result per step, for the step comments (computed when
    not given)."""
    refuse_unexpressible(trace, path)
    prog = translate(trace, path)
    if predicted is None:
        from daxfuzz.guest.krun import predictions

        predicted, port = predictions(trace)
    g = trace.geometry
    name = path.rsplit("/", 1)[-1]
    kernels = list(dict.fromkeys([*confirmations(raw_text, trace), *(confirmed or [])]))
    uses_mount = any(str(op).split()[0] in ("unmount", "mount") for op in trace.ops)
    uses_exchange = any(str(op).split()[0] == "exchange" for op in trace.ops)
    rmapbt = wants_rmapbt(trace.ops)
    h: list[str] = []
    h.append(f"{name}: Linux fs-DAX reproducer (written by `daxfuzz kernel repro`)")
    h.append("")
    if trace.description:
        h.append("What the trace shows (its description):")
        paras = " ".join(d if d else "\n" for d in trace.description).split("\n")
        h += [f"  {p.strip()}" for p in paras if p.strip()]
        h.append("")
    h.append("daxfuzz's expect lines (divergence op:field or op:warning@function):")
    h.append(f"  expect: {trace.expect}")
    h += [f"  expect {t}: {e}" for t, e in trace.expect_for]
    diffs = []
    if predicted and port:
        diffs = [f"  step {i} ({trace.ops[i - 1]}): a correct kernel gives {o}; Linux 7.2 "
                 f"as daxfuzz models it gives {p}"
                 for i, (o, p) in enumerate(zip(predicted, port, strict=True), 1) if o != p]
    if diffs:
        h.append("Results that differ from a correct kernel's:")
        h += diffs
    h.append("")
    if kernels:
        h.append("Confirmed on: " + ", ".join(kernels) + " (Debian's build under QEMU, "
                 "with the set-up below)")
    else:
        h.append("Confirmed on: no real kernel yet (daxfuzz's model only)")
    h.append("")
    h += [
        "Set-up (what daxfuzz's QEMU guest does; any XFS on an fsdax pmem namespace with",
        "reflink and -o dax=always will do):",
        "  kernel   CONFIG_FS_DAX, CONFIG_TRANSPARENT_HUGEPAGE (for PMD mappings), XFS,",
        "           io_uring (long-term pins); the guest runs Debian's config",
        f"  pmem     a real NVDIMM, or emulated: kernel command line {build.MEMMAP} on a",
        f"           {build.GUEST_MEM_RUN} machine, modules {' '.join(build.MODULES)}, then",
        f"             {build.NDCTL_CMD}",
        f"  mkfs     {build.rmapbt_variant(build.MKFS_CMD) if rmapbt else build.MKFS_CMD}",
        "           (xfsprogs >= 6.10 for -i exchange=1"
        + ("; without it the exchange steps fail EOPNOTSUPP)" if uses_exchange
           else ", which only exchange steps need)"),
        f"  mount    {build.MOUNT_CMD}",
        "Build and run:",
        "  gcc -static -O2 -Wall -o repro repro.c",
        f"  ./repro [DAXDIR [DEVICE [STEP_TIMEOUT_MS]]]    (defaults {DEFAULT_MNT} "
        f"{DEFAULT_DEV} {DEFAULT_TIMEOUT_MS})",
        "  as root"
        + (" (the trace unmounts and/or mounts DEVICE on DAXDIR); " if uses_mount else "; ")
        + "reading /dev/kmsg needs it too (else watch `dmesg -w`).",
        "  It creates (and overwrites) the files f0, f1, ... in DAXDIR.",
        "",
        "Output: per trace step \"== step N: OP (a correct kernel: R)\", then",
        "  @@R step=N status=ok|blocked|err|sigbus|sigsegv|skip ms=T errno=E note=...",
        "  @@K step=N <a WARNING/BUG/Oops line the kernel logged during the step>",
        "A call that may wait (truncate, punch, reflink, exchange, swapext, pwrite, umount)",
        "runs in a child process: one still waiting after STEP_TIMEOUT_MS is SIGKILLed and",
        "reported 'blocked'; an uninterruptible one (umount) stays pending and \"@@P\"",
        "reports it.",
        "",
        f"Geometry: {g.text()}.",
        f"The model's page i is file offset (i >> {g.pmd_order}) * 2 MiB + (i & {g.pmd_colour}) "
        "* 4 KiB: a model PMD group is a real 2 MiB extent (daxfuzz/guest/translate.py). "
        "GUP references are vmsplice()d pages held in pipes; mappings live in 1 GiB windows "
        "of a reservation, so a 2 MiB aligned one can take a PMD (a window that maps "
        "something holds nothing else: its holes are really unmapped).",
        "",
        "The code after this comment up to \"the trace\" is daxfuzz/guest/daxlib.c verbatim "
        "(the helper daxfuzz's guest runs); the table in main() is the trace's program, "
        "fed line by line to its dispatcher, daxop_line().",
    ]
    wrapped: list[str] = []
    for x in h:
        ind = x[:len(x) - len(x.lstrip())]
        wrapped += textwrap.wrap(x, 88, subsequent_indent=ind + "  ", break_long_words=False,
                                 break_on_hyphens=False) or [""]
    out = (["/* " + _comment(wrapped[0])]
           + [(" * " + _comment(x)).rstrip() for x in wrapped[1:]] + [" */"])
    out.append(build.HELPER_LIB.read_text())
    out.append("/* ---- the trace " + "-" * 67 + " */")
    out.append("")
    out.append("static const char *const program[] = {")
    gloss = _Gloss(g.vmas)
    step = 0
    for line in prog.text.splitlines():
        if line == build.FS_RMAPBT_LINE:  # kept: `kernel repro --run` finds it in the
            out.append(f"    {_c_string(line)},  /* binary and makes that filesystem */")
            continue
        if line.startswith("#"):
            continue
        if line.startswith("step "):
            step = int(line.split()[1])
            op = str(trace.ops[step - 1])
            want = f" (a correct kernel: {predicted[step - 1]})" if predicted else ""
            out.append("")
            if predicted and port and port[step - 1] != predicted[step - 1]:
                out.append(f"    /* step {step} differs: a correct kernel: "
                           f"{_comment(predicted[step - 1])}; Linux 7.2 as modelled: "
                           f"{_comment(port[step - 1])} */")
            out.append(f"    {_c_string(f'step {step} {op}{want}')},")
            continue
        out.append(f"    /* {_comment(gloss(line))} */")
        out.append(f"    {_c_string(line)},")
    out.append("    NULL,")
    out.append("};")
    out.append("")
    out.append("int main(int argc, char **argv) {")
    out.append(f"  const char *dir = argc > 1 ? argv[1] : {_c_string(DEFAULT_MNT)};")
    out.append(f"  const char *dev = argc > 2 ? argv[2] : {_c_string(DEFAULT_DEV)};")
    out.append(f"  long timeout_ms = argc > 3 ? atol(argv[3]) : {DEFAULT_TIMEOUT_MS};")
    out.append("  echo_steps = 1;")
    out.append("  printf(\"%s: %s on %s (%s), step timeout %ld ms\\n\", argv[0],")
    out.append(f"         {_c_string(name)}, dir, dev, timeout_ms);")
    out.append("  int r = daxop_start(dir, dev, timeout_ms);")
    out.append("  if (r) return r;")
    out.append("  for (const char *const *line = program; *line; line++) daxop_line(*line);")
    out.append("  return daxop_end();")
    out.append("}")
    return "\n".join(out) + "\n"


def program_lines(source: str) -> list[str]:
    """The command lines of a reproducer's table, step titles cut to ``step N`` (what
    ``translate()`` wrote, for the test that the two cannot drift)."""
    body = source.split("static const char *const program[] = {", 1)[1].split("};", 1)[0]
    lines = []
    for m in re.finditer(r'^\s*(?:\*/ )?"((?:[^"\\]|\\.)*)",$', body, re.MULTILINE):
        s = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
        lines.append(" ".join(s.split()[:2]) if s.startswith("step ") else s)
    return lines


def compile_command(src: str, out: str) -> list[str]:
    return ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", out, src]


def shell_quote(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
