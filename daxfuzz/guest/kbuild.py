"""`daxfuzz kernel build --patch FILE...`: a small 7.2 kernel from Debian's
linux-source-7.2, with patches, for the guest.

Everything the guest needs is built in (``kernel.config``, merged onto ``make
tinyconfig`` with scripts/kconfig/merge_config.sh), so its initramfs carries no
modules.  Layout under ``cache_dir()/kbuild``:

    src/<version>/linux-source-7.2   the pristine tree, unpacked once from the .deb
    <key>/linux                      a hard-linked copy, patched (patch -p1), built
    <key>/bzImage, build.json        the result: what went in, build seconds
    initramfs-nomod.cpio.gz          the guest's initramfs without modules

``<key>`` hashes the source .deb's name, the config fragment and the patches' bytes: a
kernel built once is reused, a changed patch or fragment builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from daxfuzz.guest import apt
from daxfuzz.guest.apt import SetupError, cache_dir

HERE = Path(__file__).resolve().parent
FRAGMENT = HERE / "kernel.config"
SOURCE_PKG = "linux-source-7.2"
SOURCE_DIR = "linux-source-7.2"
#: host packages `make bzImage` needs (the machine's own suite, like HOST_PKGS)
BUILD_PKGS = ("make", "gcc", "flex", "bison", "bc", "libelf-dev", "libssl-dev", "cpio",
              "xz-utils", "patch")
JOBS = 2


def parse_fragment(text: str) -> dict[str, str]:
    """CONFIG_X -> value ('y', 'n', a number or string) of a config fragment; '# CONFIG_X
    is not set' is 'n'.  Any other line is an error naming it."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = re.fullmatch(r"# (CONFIG_\w+) is not set", line)
        if m:
            out[m.group(1)] = "n"
            continue
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(CONFIG_\w+)=(\S.*)", line)
        if m is None:
            raise SetupError(f"config fragment line {n}: {raw!r} is not CONFIG_X=VALUE")
        out[m.group(1)] = m.group(2)
    return out


def missing_options(fragment: dict[str, str], config_text: str) -> list[str]:
    """The fragment's options the final .config does not have (Kconfig dropped them: an
    unmet dependency or a renamed symbol)."""
    have = parse_fragment("\n".join(
        ln for ln in config_text.splitlines()
        if ln.startswith("CONFIG_") or re.fullmatch(r"# CONFIG_\w+ is not set", ln)))
    return sorted(k for k, v in fragment.items() if have.get(k, "n") != v)


def build_key(source: str, fragment: str, patches: list[tuple[str, bytes]]) -> str:
    """The cache key of a build: source package, fragment text, patch contents in order."""
    h = hashlib.sha256(source.encode() + b"\0" + fragment.encode() + b"\0")
    for _name, data in patches:
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def read_patches(files: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for f in files:
        if not os.path.isfile(f):
            raise SetupError(f"--patch {f}: no such file")
        out.append((f, Path(f).read_bytes()))
    return out


def apply_patches(tree: Path, patches: list[tuple[str, bytes]]) -> None:
    """`patch -p1` each patch in order; one that does not apply is a SetupError (exit 2)
    naming it.  A dry run first, so a failing patch leaves the tree as it was."""
    if shutil.which("patch") is None:
        raise SetupError("patch not found on the host (apt-get install patch)")
    for name, data in patches:
        for extra in (["--dry-run"], []):
            p = subprocess.run(["patch", "-p1", "--forward", "--batch", *extra], cwd=tree,
                               input=data, capture_output=True)
            if p.returncode != 0:
                tail = "\n".join(p.stdout.decode(errors="replace").strip().splitlines()[-6:])
                raise SetupError(f"patch {name} does not apply to {tree.name}:\n{tail}")


def _source_deb(log) -> Path:
    """Debian's linux-source-7.2 .deb: cached in debs/, else fetched through the private
    sid apt config `kernel setup` uses."""
    debs = cache_dir() / "debs"
    have = sorted(debs.glob(f"{SOURCE_PKG}_*.deb"))
    if have:
        return have[-1]
    sid = apt.SidApt(cache_dir() / "apt")
    sid.configure()
    if not sid.has_lists():
        log("apt-get update (sid, private config)")
        sid.update()
    log(f"downloading {SOURCE_PKG} (sid)")
    return sid.download(SOURCE_PKG, debs)


def _pristine(deb: Path, log) -> Path:
    """The unpacked source tree of `deb` (once; a stamp says it is complete)."""
    dest = cache_dir() / "kbuild" / "src" / deb.stem
    tree = dest / SOURCE_DIR
    if (dest / ".complete").exists() and (tree / "Makefile").exists():
        return tree
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    log(f"unpacking {deb.name}")
    cmd = (f"dpkg-deb --fsys-tarfile '{deb}' | tar -xOf - ./usr/src/{SOURCE_DIR}.tar.xz "
           f"| xz -dc | tar -xf - -C '{dest}'")
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    if p.returncode != 0 or not (tree / "Makefile").exists():
        raise SetupError(f"unpacking {deb.name} failed: {p.stderr.strip()[-500:]}")
    (dest / ".complete").write_text("")
    return tree


def _make(tree: Path, *targets: str, what: str, log_file: Path | None = None) -> None:
    cmd = ["make", f"-j{JOBS}", *targets]
    if log_file is not None:
        with open(log_file, "w") as f:
            p = subprocess.run(cmd, cwd=tree, stdout=f, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
            raise SetupError(f"{what} failed (exit {p.returncode}; log {log_file}):\n{tail}")
        return
    p = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    if p.returncode != 0:
        raise SetupError(f"{what} failed: {(p.stderr or p.stdout).strip()[-1500:]}")


def configure(tree: Path, fragment_path: Path = FRAGMENT) -> list[str]:
    """tinyconfig + the fragment (merge_config.sh -m, then olddefconfig); returns the
    fragment options that did not make it into .config (an error if any is '=y')."""
    _make(tree, "tinyconfig", what="make tinyconfig")
    p = subprocess.run(["sh", "scripts/kconfig/merge_config.sh", "-m", ".config",
                        str(fragment_path)], cwd=tree, capture_output=True, text=True)
    if p.returncode != 0:
        raise SetupError(f"merge_config.sh failed: {(p.stderr or p.stdout)[-1500:]}")
    _make(tree, "olddefconfig", what="make olddefconfig")
    frag = parse_fragment(fragment_path.read_text())
    return missing_options(frag, (tree / ".config").read_text())


def build(patch_files: list[str], *, install: bool = True, log=print) -> dict:
    """Build (or find cached) the kernel with `patch_files`; returns build.json's dict."""
    patches = read_patches(patch_files)
    apt.ensure_host_packages(log, install=install, pkgs=BUILD_PKGS)
    deb = _source_deb(log)
    fragment = FRAGMENT.read_text()
    key = build_key(deb.name, fragment, patches)
    out = cache_dir() / "kbuild" / key
    info_path = out / "build.json"
    if info_path.exists() and (out / "bzImage").exists():
        info = json.loads(info_path.read_text())
        info["cached"] = True
        return info
    pristine = _pristine(deb, log)
    tree = out / "linux"
    if not (tree / ".patched").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        log(f"copying the tree to {tree} (hard links)")
        subprocess.run(["cp", "-al", str(pristine), str(tree)], check=True)
        try:
            apply_patches(tree, patches)
        except SetupError:
            shutil.rmtree(out, ignore_errors=True)
            raise
        (tree / ".patched").write_text("".join(n + "\n" for n, _ in patches))
    log("configuring: make tinyconfig + " + str(FRAGMENT.name))
    missing = configure(tree)
    bad = [m for m in missing if parse_fragment(fragment)[m] != "n"]
    if bad:
        raise SetupError("the config fragment's options did not all survive Kconfig "
                         f"(unmet dependencies?): {' '.join(bad)}")
    log(f"make -j{JOBS} bzImage (log: {out / 'make.log'})")
    t0 = time.monotonic()
    _make(tree, "bzImage", what=f"make -j{JOBS} bzImage", log_file=out / "make.log")
    secs = time.monotonic() - t0
    shutil.copyfile(tree / "arch/x86/boot/bzImage", out / "bzImage")
    info = {"key": key, "source_deb": deb.name, "patches": [n for n, _ in patches],
            "patch_sha256": [hashlib.sha256(d).hexdigest() for _, d in patches],
            "fragment": str(FRAGMENT.name), "build_seconds": round(secs, 1), "jobs": JOBS,
            "bzImage": str(out / "bzImage"), "dir": str(out),
            "kernel_release": _release(tree)}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    info["cached"] = False
    return info


def _release(tree: Path) -> str:
    f = tree / "include/config/kernel.release"
    return f.read_text().strip() if f.exists() else ""
