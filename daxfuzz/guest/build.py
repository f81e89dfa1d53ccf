"""`daxfuzz kernel setup`: fetch the kernel, install the host tools, build the guest.

Cache layout (``cache_dir()``, default ~/.cache/daxfuzz/kernel or $DAXFUZZ_KERNEL_CACHE):

    apt/          private apt config and lists for suite sid (the machine's own mirror)
    debs/         linux-binary-*.deb, linux-modules-*.deb, and sid's xfsprogs + the
                  libraries its mkfs.xfs loads (SID_MKFS_PKGS)
    root/         the two kernel packages unpacked (vmlinuz is usr/lib/modules/<kver>/vmlinuz)
    mkfs-root/    sid's xfsprogs and its libraries unpacked (the guest's mkfs.xfs)
    vmlinuz       copy of the kernel image
    daxop         the static guest helper (gcc -static from daxfuzz/guest/daxop.c + daxlib.c)
    initramfs.cpio.gz   busybox, ndctl (+ its libraries), sid's mkfs.xfs under /sid (its
                  libraries and sid's loader beside it), the modules, /init
    manifest.json what was cached, with versions and sizes
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

from daxfuzz.guest import apt
from daxfuzz.guest.apt import SetupError, cache_dir
from daxfuzz.textio import write_bytes_atomic

HERE = Path(__file__).resolve().parent
HELPER_SRC = HERE / "daxop.c"  # the program-file reader; it #includes HELPER_LIB
HELPER_LIB = HERE / "daxlib.c"  # the commands, also the body of every `kernel repro` file
HELPER_PAGES = HERE / "daxpages.c"  # raw struct page dumps (daxop only, not in reproducers)
#: modules the guest needs (their dependencies are added from modinfo)
MODULES = ("nd_e820", "nd_pmem", "dax_pmem", "xfs")
#: guest binaries copied from the host, with their shared libraries
GUEST_BINS = ("/usr/bin/ndctl",)
#: mkfs.xfs comes from sid's xfsprogs: exchange-range (XFS_IOC_EXCHANGE_RANGE) needs the
#: XFS_SB_FEAT_INCOMPAT_EXCHRANGE feature, which only xfsprogs >= 6.10 sets (-i exchange=1;
#: Debian 12 has 6.1).  It runs under sid's own loader and libraries, from /sid in the
#: guest (the host's glibc is older than the one it is built against); the packages that
#: hold what its DT_NEEDED closure names:
SID_MKFS_PKGS = ("xfsprogs", "libc6", "libblkid1", "libuuid1", "libinih1", "liburcu8t64")
SID_LOADER = "ld-linux-x86-64.so.2"
#: /usr/sbin/mkfs.xfs in the guest: sid's binary under sid's loader
MKFS_WRAPPER = f"""#!/bin/sh
exec /sid/lib/{SID_LOADER} --library-path /sid/lib /sid/mkfs.xfs "$@"
"""
BUSYBOX = "/bin/busybox"
#: guest memory layout: RAM 3 GiB, of which [1 GiB, 2 GiB) is the legacy pmem region
#: (with 2 GiB, QEMU's tables at the top of RAM cut the region and ndctl refuses it)
GUEST_MEM_RUN = "3G"
MEMMAP = "memmap=1G!1G"
#: how the guest makes its fs-DAX filesystem (INIT_SCRIPT; `kernel repro` headers quote them)
#: (--map=mem: the struct pages in RAM, where /proc/kcore can read them: daxpages.c)
NDCTL_CMD = "ndctl create-namespace -f -e namespace0.0 -m fsdax --map=mem -a 2M"
#: (-i exchange=1 for exchange-range; rmapbt=0, nrext64=0 and parent=0 keep what Debian
#: 12's mkfs made before -- newer xfsprogs turn them on by default)
MKFS_CMD = ("mkfs.xfs -f -q -m reflink=1,rmapbt=0 -i exchange=1,nrext64=0 -n parent=0 "
            "-d su=2m,sw=1 -l su=256k /dev/pmem0")
MOUNT_CMD = "mount -o dax=always /dev/pmem0 /mnt"
#: a program that holds this line gets a filesystem with the reverse map (rmapbt=1): its
#: `memory_failure holder=1` steps need XFS's notify_failure holder to find the owners
#: (translate.py, "Memory failure"); every other program gets MKFS_CMD's, rmapbt=0
FS_RMAPBT_LINE = "# fs rmapbt=1"


def rmapbt_variant(mkfs: str) -> str:
    """`mkfs` (a command with ``rmapbt=0``) making the reverse-mapping btree."""
    assert "rmapbt=0" in mkfs
    return mkfs.replace("rmapbt=0", "rmapbt=1")


INIT_TEMPLATE = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /usr/bin /usr/sbin /sbin
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
TIMEOUT=$(sed -n 's/.*daxfuzz.timeout=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$TIMEOUT" ] || TIMEOUT=2000
# daxfuzz.reuse=1 (`kernel fuzz`): one mkfs per boot, not per program; each program gets
# fresh files (daxop creates f0.. anew, the previous program's were unlinked after it)
REUSE=$(sed -n 's/.*daxfuzz.reuse=\([0-9]*\).*/\1/p' /proc/cmdline)
mounted() { grep -q " /mnt " /proc/mounts; }
echo "@@B kernel $(uname -r)"
for m in $(cat /modules.order); do
  insmod /lib/modules/$m.ko 2>/tmp/insmod.err || echo "@@B insmod-failed $m $(cat /tmp/insmod.err)"
done
i=0
while [ ! -e /sys/bus/nd/devices/namespace0.0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
@NDCTL@ >/tmp/ndctl.log 2>&1 \
  || echo "@@B ndctl-failed $(tr '\n' ' ' </tmp/ndctl.log)"
i=0
while [ ! -b /dev/pmem0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
SZ=$(cat /sys/block/pmem0/size 2>/dev/null)
echo "@@B ready pmem=$SZ dax=$(cat /sys/block/pmem0/queue/dax 2>/dev/null)"
# the filesystem a program wants: with the reverse map when it says @RMAPLINE@
fs_of() { grep -qx '@RMAPLINE@' "$1" 2>/dev/null && echo rmapbt || echo plain; }
mkfs_as() { if [ "$1" = rmapbt ]; then @MKFS_RMAP@; else @MKFS@; fi; }
FS=none
if [ "$REUSE" = 1 ]; then
  mkfs_as plain >/tmp/mkfs.log 2>&1 && FS=plain \
    || echo "@@B mkfs-failed $(tr '\n' ' ' </tmp/mkfs.log)"
fi
# the programs on a plain filesystem first, then those wanting the reverse map: one
# mkfs more per boot at most (`kernel fuzz` reuses one filesystem for many programs)
for kind in plain rmapbt; do
for p in /progs/*.prog; do
  [ -e "$p" ] || continue
  want=$(fs_of $p)
  [ "$want" = "$kind" ] || continue
  name=$(basename $p .prog)
  echo "@@T begin $name"
  if [ "$REUSE" = 1 ]; then
    if [ "$want" != "$FS" ]; then  # another kind of filesystem: make it (once per switch)
      umount /mnt 2>/dev/null
      FS=none
      mkfs_as $want >/tmp/mkfs.log 2>&1 && FS=$want
    fi
    [ "$FS" = "$want" ] && { mounted || @MOUNT@ >/tmp/mkfs.log 2>&1; } \
      && rm -f /mnt/f* 2>>/tmp/mkfs.log
  else
    mkfs_as $want >/tmp/mkfs.log 2>&1 && @MOUNT@
  fi
  if [ $? = 0 ]; then
    if [ -x /progs/$name.bin ]; then
      /progs/$name.bin /mnt /dev/pmem0 $TIMEOUT  # a static binary (a `kernel repro`)
    else
      /daxop $p /mnt /dev/pmem0 $TIMEOUT
    fi
    echo "@@T exit $name $?"
    if [ "$REUSE" = 1 ]; then  # unlink the files now: their eviction is this program's
      { mounted || @MOUNT@ >/dev/null 2>&1; } && rm -f /mnt/f*
    else
      umount /mnt 2>/dev/null
    fi
  else
    echo "@@T setup-failed $name $(tr '\n' ' ' </tmp/mkfs.log)"
    [ "$REUSE" = 1 ] && { echo "@@T end $name"; break 2; }  # a wedged mount: a fresh guest
  fi
  echo "@@T end $name"
done
done
echo "@@B alldone"
sync
poweroff -f
"""


def init_script(mkfs: str = MKFS_CMD) -> str:
    """The guest's /init with `mkfs` (and its rmapbt=1 variant) making the filesystem."""
    return (INIT_TEMPLATE.replace("@NDCTL@", NDCTL_CMD).replace("@MKFS_RMAP@", rmapbt_variant(mkfs))
            .replace("@MKFS@", mkfs).replace("@MOUNT@", MOUNT_CMD)
            .replace("@RMAPLINE@", FS_RMAPBT_LINE))


INIT_SCRIPT = init_script()


# ------------------------------------------------------------------ cpio (newc) ----
class Cpio:
    """A minimal writer of the kernel's initramfs format (cpio newc)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * ((4 - len(data) % 4) % 4))

    def mkdir(self, path: str) -> None:
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        if "/" in path:
            self.mkdir(path.rsplit("/", 1)[0])
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        if "/" in path:
            self.mkdir(path.rsplit("/", 1)[0])
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        data = self.buf.getvalue()
        return data + b"\0" * ((512 - len(data) % 512) % 512)


def shared_libs(binary: str) -> list[str]:
    """The shared libraries (and the ELF interpreter) `binary` loads, from ldd."""
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    libs = []
    for line in p.stdout.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            libs.append(m.group(1))
    return libs


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED sonames of an ELF file (readelf, from binutils beside gcc)."""
    p = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SetupError(f"readelf -d {path} failed: {p.stderr.strip()[-300:]}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)


def sid_mkfs_files(root: Path) -> dict[str, Path]:
    """Guest path -> file for sid's mkfs.xfs unpacked under `root`: the binary, its
    DT_NEEDED closure and sid's loader, all under /sid."""
    binary = root / "usr/sbin/mkfs.xfs"
    if not binary.exists():
        raise SetupError(f"{binary} missing: sid's xfsprogs did not unpack as expected")
    libdirs = [root / "usr/lib/x86_64-linux-gnu", root / "lib/x86_64-linux-gnu"]

    def find(soname: str) -> Path:
        for d in libdirs:
            if (d / soname).exists():
                return Path(os.path.realpath(d / soname))
        raise SetupError(f"sid's mkfs.xfs needs {soname}, which none of "
                         f"{' '.join(SID_MKFS_PKGS)} provides")

    files = {"sid/mkfs.xfs": binary, f"sid/lib/{SID_LOADER}": find(SID_LOADER)}
    todo = [binary]
    while todo:
        for soname in elf_needed(todo.pop()):
            key = f"sid/lib/{soname}"
            if key not in files:
                files[key] = find(soname)
                todo.append(files[key])
    return files


def module_closure(moddir: Path, wanted: tuple[str, ...] = MODULES) -> list[Path]:
    """Module files for `wanted` and their dependencies, in load order."""
    files = {p.name.split(".ko")[0].replace("-", "_"): p for p in moddir.rglob("*.ko*")}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        f = files.get(name)
        if f is None:
            return  # built in
        out = subprocess.run(["modinfo", "-F", "depends", str(f)], capture_output=True,
                             text=True).stdout.strip()
        for dep in filter(None, out.split(",")):
            visit(dep)
        order.append(f)

    for w in wanted:
        if w.replace("-", "_") not in files:
            raise SetupError(f"module {w} is neither in the modules package nor listed there")
        visit(w)
    return order


def _module_bytes(p: Path) -> bytes:
    data = p.read_bytes()
    if p.name.endswith(".xz"):
        return lzma.decompress(data)
    if p.name.endswith(".zst"):
        out = subprocess.run(["zstd", "-dc", str(p)], capture_output=True, check=True)
        return out.stdout
    if p.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def build_helper(out: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SetupError("no C compiler (gcc) on the host: the guest helper is built with "
                         "gcc -static")
    p = subprocess.run([cc, "-static", "-O2", "-Wall", "-o", str(out), str(HELPER_SRC)],
                       capture_output=True, text=True, cwd=HERE)
    if p.returncode != 0:
        raise SetupError(f"gcc -static daxop.c failed:\n{p.stderr[-2000:]}")


def helper_sha() -> str:
    return hashlib.sha256(HELPER_SRC.read_bytes() + HELPER_LIB.read_bytes()
                          + HELPER_PAGES.read_bytes()).hexdigest()


def helper_is_current(cache: Path) -> bool:
    stamp = cache / "daxop.sha256"
    h = helper_sha()
    return (cache / "daxop").exists() and stamp.exists() and stamp.read_text() == h


def build_initramfs(cache: Path, moddir: Path | None, mkfs_root: Path | None = None, *,
                    modules: tuple[str, ...] = MODULES, init: str = INIT_SCRIPT,
                    extra: dict[str, bytes] | None = None, out: Path | None = None) -> Path:
    """The guest's initramfs (cache/initramfs.cpio.gz unless `out`): `modules` from
    `moddir` (none: a kernel with everything built in), the `init` script, and `extra`
    files (guest path -> bytes, executable) for another kernel's guest."""
    c = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "mnt",
              "progs", "lib/modules", "etc"):
        c.mkdir(d)
    c.file("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
    c.symlink("bin/sh", "busybox")
    libs: set[str] = set()
    for b in GUEST_BINS:
        if not os.path.exists(b):
            raise SetupError(f"{b} missing on the host (packages: {' '.join(apt.HOST_PKGS)})")
        c.file(b, Path(b).read_bytes(), 0o755)
        libs.update(shared_libs(b))
    for lib in sorted(libs):
        c.file(lib, Path(lib).read_bytes(), 0o755)
        real = os.path.realpath(lib)  # /lib may be a symlink to usr/lib (merged /usr)
        if real != lib:
            c.file(real, Path(real).read_bytes(), 0o755)
    for gpath, f in sid_mkfs_files(mkfs_root or cache / "mkfs-root").items():
        c.file(gpath, f.read_bytes(), 0o755)
    c.file("usr/sbin/mkfs.xfs", MKFS_WRAPPER.encode(), 0o755)
    for gpath, data in sorted((extra or {}).items()):
        c.file(gpath, data, 0o755)
    names = []
    for m in module_closure(moddir, modules) if modules and moddir else []:
        name = m.name.split(".ko")[0]
        c.file(f"lib/modules/{name}.ko", _module_bytes(m))
        names.append(name)
    c.file("modules.order", ("\n".join(names) + "\n").encode())
    c.file("daxop", (cache / "daxop").read_bytes(), 0o755)
    c.file("init", init.encode(), 0o755)
    out = out or cache / "initramfs.cpio.gz"
    write_bytes_atomic(out, gzip.compress(c.finish(), compresslevel=6))
    return out


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


def kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def setup(*, install: bool = True, refresh: bool = False, log=print) -> dict:
    """Fetch and build everything; returns the manifest.  Idempotent: what is cached and
    current is kept (``refresh`` refetches the apt lists and rebuilds)."""
    t0 = time.monotonic()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"cache: {cache}")
    installed = apt.ensure_host_packages(log, install=install)
    if qemu_binary() is None:
        raise SetupError("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    sid = apt.SidApt(cache / "apt")
    kpath = cache / "vmlinuz"
    manifest_path = cache / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    debs = cache / "debs"
    root = cache / "root"
    have_debs = {k: old.get(k) for k in ("kernel_deb", "modules_deb")}
    if refresh or not all(v and (debs / v).exists() for v in have_debs.values()):
        sid.configure()
        if refresh or not sid.has_lists():
            log("apt-get update (sid, private config)")
            sid.update()
        names = sid.search(r"^linux-(binary|modules)-7\.2")
        kname = apt.resolve_name(apt.KERNEL_PKG, names, "binary")
        mname = apt.resolve_name(apt.MODULES_PKG, names, "modules")
        log(f"downloading {kname} and {mname}")
        kdeb = sid.download(kname, debs)
        mdeb = sid.download(mname, debs)
        shutil.rmtree(root, ignore_errors=True)
        apt.extract_deb(kdeb, root)
        apt.extract_deb(mdeb, root)
        have_debs = {"kernel_deb": kdeb.name, "modules_deb": mdeb.name}
        rebuild = True
    else:
        rebuild = refresh
    mods = sorted((root / "usr/lib/modules").glob("*")) or sorted((root / "lib/modules").glob("*"))
    if not mods:
        if not root.exists() and all(have_debs.values()):
            for v in have_debs.values():
                apt.extract_deb(debs / v, root)
            mods = sorted((root / "usr/lib/modules").glob("*"))
        if not mods:
            raise SetupError(f"no modules directory under {root}")
    moddir = mods[-1]
    kver = moddir.name
    vml = moddir / "vmlinuz"
    if not vml.exists():
        cands = sorted(root.glob("boot/vmlinuz-*"))
        if not cands:
            raise SetupError(f"no vmlinuz in {root}")
        vml = cands[-1]
    mkfs_debs = old.get("mkfs_debs") or []
    mkfs_root = cache / "mkfs-root"
    if refresh or len(mkfs_debs) != len(SID_MKFS_PKGS) \
            or not all((debs / v).exists() for v in mkfs_debs):
        sid.configure()
        if refresh or not sid.has_lists():
            log("apt-get update (sid, private config)")
            sid.update()
        log(f"downloading sid's {' '.join(SID_MKFS_PKGS)} (the guest's mkfs.xfs)")
        mkfs_debs = [sid.download(p, debs).name for p in SID_MKFS_PKGS]
        shutil.rmtree(mkfs_root, ignore_errors=True)
        rebuild = True
    if not (mkfs_root / "usr/sbin/mkfs.xfs").exists():
        for v in mkfs_debs:
            apt.extract_deb(debs / v, mkfs_root)
        rebuild = True
    if rebuild or not kpath.exists():
        shutil.copyfile(vml, kpath)
    if rebuild or not helper_is_current(cache):
        log("building daxop (gcc -static)")
        build_helper(cache / "daxop")
        (cache / "daxop.sha256").write_text(helper_sha())
        rebuild = True
    initrd = cache / "initramfs.cpio.gz"
    if rebuild or not initrd.exists() or old.get("init_sha") != _init_sha():
        log("building the initramfs")
        build_initramfs(cache, moddir, mkfs_root)
    manifest = {
        "cache": str(cache),
        "kernel_version": kver,
        **have_debs,
        "mkfs_debs": mkfs_debs,
        "vmlinuz": str(kpath),
        "initramfs": str(initrd),
        "helper": str(cache / "daxop"),
        "qemu": qemu_binary(),
        "kvm": kvm_usable(),
        "host_packages_installed_now": installed,
        "init_sha": _init_sha(),
        "sizes": {p.name: p.stat().st_size for p in (kpath, initrd, cache / "daxop")},
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    manifest["seconds"] = round(time.monotonic() - t0, 1)
    return manifest


def _init_sha() -> str:
    h = hashlib.sha256(INIT_SCRIPT.encode())
    h.update(HELPER_SRC.read_bytes() + HELPER_LIB.read_bytes() + HELPER_PAGES.read_bytes())
    h.update(repr((MODULES, GUEST_BINS, SID_MKFS_PKGS, MKFS_WRAPPER)).encode())
    return h.hexdigest()


def load_manifest() -> dict:
    """The manifest of a set-up guest, or a SetupError naming `daxfuzz kernel setup`."""
    p = cache_dir() / "manifest.json"
    if not p.exists():
        raise SetupError(f"the guest is not set up ({p} missing): run `daxfuzz kernel setup`")
    m = json.loads(p.read_text())
    for k in ("vmlinuz", "initramfs"):
        if not os.path.exists(m[k]):
            raise SetupError(f"{m[k]} missing: run `daxfuzz kernel setup`")
    if not m.get("qemu") or not os.path.exists(m["qemu"]):
        raise SetupError("qemu-system-x86_64 missing: run `daxfuzz kernel setup` "
                         "(it installs qemu-system-x86)")
    return m
