"""Debian packages for the guest: the sid kernel through a private apt config, and the
host tools (QEMU, busybox, xfsprogs, ndctl, kmod) from the machine's own suite.

The private config reuses the mirror URI already configured on the machine (read from
/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list); no host name is written
here.  Everything lives under the cache directory (``cache_dir()``).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from daxfuzz.errors import DaxfuzzError

KERNEL_VERSION = "7.2.13"
#: the packages the issue names; their exact current names are looked up with apt-cache
KERNEL_PKG = f"linux-binary-{KERNEL_VERSION}+deb14-amd64"
MODULES_PKG = f"linux-modules-{KERNEL_VERSION}+deb14-amd64"
#: host packages from the machine's own suite (installed with apt-get when missing)
HOST_PKGS = ("qemu-system-x86", "busybox-static", "xfsprogs", "ndctl", "kmod")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class SetupError(DaxfuzzError):
    """The guest cannot be set up (a package, a tool or the mirror is missing)."""

    exit_code = 2


def cache_dir() -> Path:
    env = os.environ.get("DAXFUZZ_KERNEL_CACHE")
    if env:
        return Path(env)
    return Path(os.path.expanduser("~/.cache/daxfuzz/kernel"))


def _sources_files() -> list[str]:
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    files += ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    return [f for f in files if os.path.isfile(f)]


def parse_mirror(texts: list[tuple[str, str]]) -> str | None:
    """The Debian archive URI among apt source texts [(filename, text)], or None.

    deb822 stanzas (``URIs:`` / ``Suites:``) and one-line ``deb URI suite ...`` entries
    are read; security and update-only suites are skipped.
    """
    def good(suites: list[str]) -> bool:
        return any(s and "security" not in s and not s.endswith("-updates")
                   and not s.endswith("-backports") for s in suites)

    for name, text in texts:
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.strip()
                types = fields.get("types", "").split()
                if "deb" not in types or "enabled" in fields and fields["enabled"] == "no":
                    continue
                uris = fields.get("uris", "").split()
                if uris and good(fields.get("suites", "").split()):
                    return uris[0]
        else:
            for line in text.splitlines():
                toks = line.split("#", 1)[0].split()
                if not toks or toks[0] != "deb":
                    continue
                toks = [t for t in toks[1:] if not t.startswith("[") and not t.endswith("]")
                        and "=" not in t]
                if len(toks) >= 2 and toks[0].startswith(("http", "file", "ftp")) \
                        and good([toks[1]]):
                    return toks[0]
    return None


def machine_mirror() -> str:
    texts = []
    for f in _sources_files():
        try:
            texts.append((f, Path(f).read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    uri = parse_mirror(texts)
    if uri is None:
        raise SetupError("no Debian mirror found in /etc/apt/sources.list(.d): the sid kernel "
                         "is fetched through the machine's own mirror")
    return uri


def _run(cmd: list[str], *, cwd: str | Path | None = None, what: str) -> str:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise SetupError(f"{what}: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what}: timed out: {' '.join(cmd)}") from None
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-6:])
        raise SetupError(f"{what} failed ({' '.join(cmd[:3])} ... exit {p.returncode}):\n{tail}")
    return p.stdout


class SidApt:
    """apt-get/apt-cache on suite sid with a private config under ``root``."""

    def __init__(self, root: Path, mirror: str | None = None) -> None:
        self.root = root
        self.mirror = mirror

    def _opts(self) -> list[str]:
        r = self.root
        return ["-o", f"Dir::Etc::sourcelist={r}/etc/sources.list",
                "-o", "Dir::Etc::sourceparts=-",
                "-o", f"Dir::State={r}/state",
                "-o", f"Dir::State::status={r}/state/status",
                "-o", f"Dir::Cache={r}/cache",
                "-o", "APT::Get::List-Cleanup=0",
                "-o", "Debug::NoLocking=1"]

    def configure(self) -> None:
        mirror = self.mirror or machine_mirror()
        for d in ("etc", "state/lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        signed = f"[signed-by={KEYRING}] " if os.path.exists(KEYRING) else ""
        (self.root / "etc/sources.list").write_text(f"deb {signed}{mirror} sid main\n")
        status = self.root / "state/status"
        if not status.exists():
            status.write_text("")

    def update(self) -> None:
        _run(["apt-get", *self._opts(), "update"], what="apt-get update (sid)")

    def has_lists(self) -> bool:
        return bool(glob.glob(str(self.root / "state/lists/*_Packages*")))

    def search(self, regex: str) -> list[str]:
        out = _run(["apt-cache", *self._opts(), "search", "--names-only", regex],
                   what="apt-cache search (sid)")
        return sorted(line.split(" - ", 1)[0].strip() for line in out.splitlines()
                      if line.strip())

    def download(self, pkg: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", *self._opts(), "download", pkg], cwd=dest,
             what=f"apt-get download {pkg} (sid)")
        debs = sorted(dest.glob(f"{glob.escape(pkg)}_*.deb"), key=os.path.getmtime)
        if not debs:
            raise SetupError(f"apt-get download {pkg}: no .deb appeared in {dest}")
        return debs[-1]


def _vkey(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def resolve_name(wanted: str, candidates: list[str], kind: str) -> str:
    """`wanted` if apt knows it, else the newest 7.2 amd64 package of this `kind`."""
    if wanted in candidates:
        return wanted
    pat = re.compile(rf"^linux-{kind}-7\.2\.\d+\+deb\d+-amd64$")
    alts = sorted((c for c in candidates if pat.match(c)), key=_vkey)
    if not alts:
        raise SetupError(f"{wanted}: not in sid, and no other linux-{kind}-7.2.*-amd64 "
                         f"package either (apt-cache search found {len(candidates)} names)")
    return alts[-1]


def host_missing(pkgs: tuple[str, ...] = HOST_PKGS) -> list[str]:
    missing = []
    for p in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                           text=True)
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


def ensure_host_packages(log, install: bool = True,
                         pkgs: tuple[str, ...] = HOST_PKGS) -> list[str]:
    """Install the host packages in `pkgs` that are missing (apt-get, the machine's
    suite)."""
    if shutil.which("dpkg-query") is None:
        raise SetupError("dpkg-query not found: a Debian host is needed for the guest tools")
    missing = host_missing(pkgs)
    if not missing:
        return []
    if not install:
        raise SetupError("missing host packages: " + " ".join(missing)
                         + " (apt-get install them, or run without --no-install)")
    if os.geteuid() != 0:
        raise SetupError("missing host packages: " + " ".join(missing)
                         + "; run as root or: sudo apt-get install " + " ".join(missing))
    log(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in (1, 2):
        p = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                            *missing], capture_output=True, text=True, env=env)
        if p.returncode == 0:
            break
        if attempt == 1:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
            continue
        tail = "\n".join(p.stderr.strip().splitlines()[-6:])
        raise SetupError(f"apt-get install {' '.join(missing)} failed:\n{tail}")
    still = host_missing(pkgs)
    if still:
        raise SetupError("host packages still missing after apt-get: " + " ".join(still))
    return missing


def extract_deb(deb: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest)], what=f"dpkg-deb -x {deb.name}")
