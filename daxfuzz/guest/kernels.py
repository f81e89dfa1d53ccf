"""Which real kernel the guest boots: `--kernel 7.2|6.1|DIR` of `daxfuzz kernel`.

* ``7.2`` (default): Debian sid's 7.2.13 (`kernel setup`, cache_dir()), predicted by the
  ``7.2`` target.
* ``6.1``: Debian 12's 6.1 from the machine's own suite (`kernel setup --kernel 6.1`,
  cache_dir()/k6.1), predicted by the ``legacy`` target (kdax/legacy.py ports 6.1).  Its
  modules come in the image package.  Its XFS predates exchange-range and parent
  pointers, so the filesystem is made by Debian 12's own mkfs.xfs (the host's,
  xfsprogs 6.1, under /bookworm in the guest) with the guest's layout options
  (MKFS_CMD_61); ``exchange`` steps are not expressible there (EXCHANGE_61_WHY).
* ``DIR``: a kernel built by `daxfuzz kernel build` (DIR holds its bzImage), everything
  built in: its initramfs has no modules (cache_dir()/kbuild/initramfs-nomod.cpio.gz);
  predicted by the ``7.2`` target (it is built from linux-source-7.2).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from daxfuzz.errors import InputError
from daxfuzz.guest import apt, build
from daxfuzz.guest.apt import SetupError, cache_dir

NAMES = ("7.2", "6.1")
DEFAULT = "7.2"
#: Debian 12's kernel image (modules included); the newest of these apt-cache finds
IMAGE_61 = re.compile(r"^linux-image-6\.1\.\d+-(\d+)-amd64(-unsigned)?$")
#: the host's (Debian 12's) mkfs.xfs, put at /bookworm/mkfs.xfs in the 6.1 guest
HOST_MKFS = "/usr/sbin/mkfs.xfs"
#: the 7.2 guest's layout (reflink, no rmapbt, 2 MiB stripe unit, log su) without what
#: 6.1 cannot mount (exchange=1) and what xfsprogs 6.1 does not know (-n parent=0;
#: nrext64 is off by default there)
MKFS_CMD_61 = ("/bookworm/mkfs.xfs -f -q -m reflink=1,rmapbt=0 -d su=2m,sw=1 -l su=256k "
               "/dev/pmem0")
EXCHANGE_61_WHY = ("exchange not expressible on Linux 6.1: XFS_IOC_EXCHANGE_RANGE came in "
                   "6.10, and 6.1's XFS cannot mount a filesystem with the exchange-range "
                   "feature")


@dataclass(frozen=True)
class Kernel:
    """One bootable kernel and the kdax target that predicts it."""

    name: str  # "7.2", "6.1", or the directory
    target: str  # kdax target (`daxfuzz targets`)
    label: str  # "Linux 7.2" etc., for reports
    unexpressible: dict[str, str] = field(default_factory=dict)  # op name -> why
    built: str = ""  # the directory of a `kernel build`, else ""

    def why_not(self, op_name: str) -> str | None:
        """Why an op is not expressible on this kernel (beyond the guest's own limits)."""
        return self.unexpressible.get(op_name)


def resolve(value: str | None, target: str | None = None) -> Kernel:
    """The kernel a ``--kernel`` value names, predicted by `target` when given (e.g.
    ``7.2-fix-cow-pmd`` for a kernel built with that fix); InputError (exit 2) when
    either names nothing."""
    k = _resolve(value)
    if target:
        from kdax.targets import target_name

        name = target_name(target)
        if name is None:
            raise InputError(f"--target {target!r}: no such target (`daxfuzz targets`)")
        k = replace(k, target=name)
    return k


def _resolve(value: str | None) -> Kernel:
    value = value or DEFAULT
    if value == "7.2":
        return Kernel("7.2", "7.2", "Linux 7.2")
    if value == "6.1":
        return Kernel("6.1", "legacy", "Linux 6.1", {"exchange": EXCHANGE_61_WHY})
    if os.path.isdir(value):
        if not os.path.isfile(os.path.join(value, "bzImage")):
            raise InputError(f"--kernel {value}: the directory holds no bzImage (a "
                             "`daxfuzz kernel build` directory is expected)")
        info = _build_info(value)
        rel = info.get("kernel_release", "")
        patches = ", ".join(os.path.basename(p) for p in info.get("patches", []))
        label = f"Linux {rel or '7.2'} (built" + (f", {patches})" if patches else ")")
        return Kernel(os.path.abspath(value), "7.2", label, built=os.path.abspath(value))
    raise InputError(f"--kernel {value!r}: expected one of {', '.join(NAMES)} or a "
                     "directory holding a bzImage from `daxfuzz kernel build`")


def _build_info(d: str) -> dict:
    """build.json of a `daxfuzz kernel build` folder: {} when missing or not ours (the
    label then says only "built"), its kernel_release a string, its patches a list of
    strings."""
    from daxfuzz.errors import InputError
    from daxfuzz.textio import read_json

    try:
        info = read_json(os.path.join(d, "build.json"))
    except InputError:
        return {}
    if not isinstance(info, dict) or not isinstance(info.get("kernel_release", ""), str) \
            or not isinstance(info.get("patches", []), list) \
            or not all(isinstance(p, str) for p in info.get("patches", [])):
        return {}
    return info


def cache_61() -> Path:
    return cache_dir() / "k6.1"


def manifest(k: Kernel) -> dict:
    """The manifest `qemu.run_programs` boots (SetupError naming the set-up step)."""
    if k.name == "7.2":
        return build.load_manifest()
    if k.name == "6.1":
        p = cache_61() / "manifest.json"
        if not p.exists():
            raise SetupError(f"the 6.1 guest is not set up ({p} missing): run "
                             "`daxfuzz kernel setup --kernel 6.1`")
        m = json.loads(p.read_text())
        for key in ("vmlinuz", "initramfs"):
            if not os.path.exists(m[key]):
                raise SetupError(f"{m[key]} missing: run `daxfuzz kernel setup --kernel 6.1`")
        if m.get("init_sha") != init_sha_61():
            raise SetupError("the 6.1 guest's initramfs is out of date: run `daxfuzz kernel "
                             "setup --kernel 6.1`")
        return m
    base = build.load_manifest()  # qemu, the helper and sid's mkfs of the 7.2 guest
    initrd = nomod_initramfs(base)
    return {**base, "vmlinuz": os.path.join(k.built, "bzImage"), "initramfs": str(initrd),
            "kernel_version": _build_info(k.built).get("kernel_release", "")}


# ------------------------------------------------------------------ built kernels -----
def nomod_initramfs(base: dict) -> Path:
    """The 7.2 guest's initramfs without modules, for built kernels (rebuilt when the
    7.2 guest's init or helper changed)."""
    cache = cache_dir()
    out = cache / "kbuild" / "initramfs-nomod.cpio.gz"
    stamp = out.with_suffix(".sha")
    sha = base.get("init_sha", "")
    if out.exists() and stamp.exists() and stamp.read_text() == sha:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    build.build_initramfs(cache, None, cache / "mkfs-root", modules=(), out=out)
    stamp.write_text(sha)
    return out


# ------------------------------------------------------------------ Linux 6.1 ---------
INIT_SCRIPT_61 = build.init_script(MKFS_CMD_61)
#: 6.1's libcrc32c (xfs needs it) allocates the "crc32c" shash at load, which modprobes
#: crc32c (a soft dependency modinfo's `depends` does not list): load it first
MODULES_61 = ("crc32c_generic", *build.MODULES)


def init_sha_61() -> str:
    import hashlib

    h = hashlib.sha256(INIT_SCRIPT_61.encode())
    h.update(build.helper_sha().encode())
    h.update(repr((MODULES_61, build.GUEST_BINS, HOST_MKFS)).encode())
    return h.hexdigest()


def _host_mkfs_files() -> dict[str, bytes]:
    if not os.path.exists(HOST_MKFS):
        raise SetupError(f"{HOST_MKFS} missing on the host (apt-get install xfsprogs)")
    files = {"bookworm/mkfs.xfs": Path(HOST_MKFS).read_bytes()}
    for lib in build.shared_libs(HOST_MKFS):
        for p in {lib, os.path.realpath(lib)}:
            files[p.lstrip("/")] = Path(p).read_bytes()
    return files


def pick_image(names: list[str]) -> str:
    """The newest Debian 6.1 amd64 image package among apt-cache names (unsigned first
    on a tie: no signature needed for -kernel)."""
    cands = [n for n in names if IMAGE_61.match(n)]
    if not cands:
        raise SetupError("no linux-image-6.1.*-amd64 package in the machine's apt lists "
                         "(apt-cache search linux-image-6.1; apt-get update?)")
    return max(cands, key=lambda n: (int(IMAGE_61.match(n).group(1)), n.endswith("unsigned")))


def setup_61(*, install: bool = True, refresh: bool = False, log=print) -> dict:
    """Fetch Debian 12's 6.1 image and build its guest under cache_dir()/k6.1 (the 7.2
    guest's cache is not touched).  Idempotent like `build.setup`."""
    t0 = time.monotonic()
    cache = cache_61()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"cache: {cache}")
    installed = apt.ensure_host_packages(log, install=install)
    if build.qemu_binary() is None:
        raise SetupError("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    if not (cache_dir() / "mkfs-root").exists():
        log("the 7.2 guest's files are needed too (the helper's build): run "
            "`daxfuzz kernel setup` first if this fails")
    mpath = cache / "manifest.json"
    old = json.loads(mpath.read_text()) if mpath.exists() else {}
    debs, root = cache / "debs", cache / "root"
    deb = old.get("kernel_deb")
    rebuild = refresh
    if refresh or not deb or not (debs / deb).exists():
        out = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1"],
                             capture_output=True, text=True)
        names = [ln.split(" - ", 1)[0].strip() for ln in out.stdout.splitlines()]
        pkg = pick_image(names)
        log(f"downloading {pkg} (the machine's own suite)")
        debs.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise SetupError(f"apt-get download {pkg} failed: {p.stderr.strip()[-500:]}")
        got = sorted(glob.glob(str(debs / f"{glob.escape(pkg)}_*.deb")), key=os.path.getmtime)
        if not got:
            raise SetupError(f"apt-get download {pkg}: no .deb in {debs}")
        deb = os.path.basename(got[-1])
        shutil.rmtree(root, ignore_errors=True)
        rebuild = True
    if not root.exists():
        apt.extract_deb(debs / deb, root)
        rebuild = True
    mods = sorted((root / "lib/modules").glob("*")) or sorted((root / "usr/lib/modules").glob("*"))
    if not mods:
        raise SetupError(f"no modules directory under {root}")
    moddir = mods[-1]
    kver = moddir.name
    vml = root / "boot" / f"vmlinuz-{kver}"
    if not vml.exists():
        raise SetupError(f"{vml} missing in {deb}")
    kpath = cache / "vmlinuz"
    if rebuild or not kpath.exists():
        shutil.copyfile(vml, kpath)
    if rebuild or not build.helper_is_current(cache):
        log("building daxop (gcc -static)")
        build.build_helper(cache / "daxop")
        (cache / "daxop.sha256").write_text(build.helper_sha())
        rebuild = True
    initrd = cache / "initramfs.cpio.gz"
    if rebuild or not initrd.exists() or old.get("init_sha") != init_sha_61():
        log("building the initramfs (6.1 modules, Debian 12's mkfs.xfs)")
        build.build_initramfs(cache, moddir, cache_dir() / "mkfs-root", init=INIT_SCRIPT_61,
                              modules=MODULES_61, extra=_host_mkfs_files())
    m = {"cache": str(cache), "kernel_version": kver, "kernel_deb": deb,
         "modules_deb": deb, "vmlinuz": str(kpath), "initramfs": str(initrd),
         "helper": str(cache / "daxop"), "qemu": build.qemu_binary(),
         "kvm": build.kvm_usable(), "host_packages_installed_now": installed,
         "init_sha": init_sha_61(), "mkfs": MKFS_CMD_61,
         "sizes": {p.name: p.stat().st_size for p in (kpath, initrd, cache / "daxop")}}
    mpath.write_text(json.dumps(m, indent=1) + "\n")
    m["seconds"] = round(time.monotonic() - t0, 1)
    return m


# ------------------------------------------------------------------ programs ----------
def translate_for(k: Kernel, trace, path: str = "<trace>"):
    """translate.translate(), with the steps this kernel cannot express turned into
    ``skip`` lines (reported like memory_failure: not expressible, naming the step)."""
    from daxfuzz.guest.translate import Program, translate

    prog = translate(trace, path, k.target)
    bad = {i: k.why_not(op.name) for i, op in enumerate(trace.ops, 1) if k.why_not(op.name)}
    if not bad:
        return prog
    out: list[str] = []
    step = 0
    for line in prog.text.splitlines():
        m = re.fullmatch(r"step (\d+)", line)
        if m:
            step = int(m.group(1))
            out.append(line)
            if step in bad:
                out.append(f"skip {bad[step]}")
            continue
        if step not in bad:
            out.append(line)
    return Program("\n".join(out) + "\n", prog.steps, {**prog.skipped, **bad})


def raw_check(manifest: dict, target: str):
    """pages.RawCheck for a kernel predicted by `target` (the 7.2 port for 7.2, the
    legacy port for 6.1: pages.py's conventions cover both)."""
    from daxfuzz.guest.pages import RawCheck

    return RawCheck(manifest, target)
