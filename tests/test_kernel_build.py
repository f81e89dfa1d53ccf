"""`daxfuzz kernel build` without building: the config fragment, the cache key, a patch
that does not apply (exit 2)."""

from __future__ import annotations

import shutil

import pytest

from daxfuzz.cli import main
from daxfuzz.guest import kbuild
from daxfuzz.guest.apt import SetupError


def test_fragment_parses_and_is_what_the_guest_needs():
    frag = kbuild.parse_fragment(kbuild.FRAGMENT.read_text())
    for opt in ("CONFIG_ZONE_DEVICE", "CONFIG_FS_DAX", "CONFIG_XFS_FS", "CONFIG_DEVTMPFS",
                "CONFIG_BLK_DEV_PMEM", "CONFIG_X86_PMEM_LEGACY", "CONFIG_IO_URING",
                "CONFIG_TRANSPARENT_HUGEPAGE", "CONFIG_SERIAL_8250_CONSOLE",
                "CONFIG_BLK_DEV_INITRD"):
        assert frag[opt] == "y", opt
    assert not any(v == "m" for v in frag.values())  # no modules in the guest


def test_fragment_errors_and_missing_options():
    assert kbuild.parse_fragment("# c\n# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_N=4\n") \
        == {"CONFIG_A": "n", "CONFIG_B": "y", "CONFIG_N": "4"}
    with pytest.raises(SetupError, match="line 2"):
        kbuild.parse_fragment("CONFIG_A=y\nfoo\n")
    config = "CONFIG_B=y\n# CONFIG_C is not set\nCONFIG_N=2\n"
    frag = {"CONFIG_A": "n", "CONFIG_B": "y", "CONFIG_C": "y", "CONFIG_N": "4"}
    assert kbuild.missing_options(frag, config) == ["CONFIG_C", "CONFIG_N"]


def test_build_key_changes_with_every_input():
    base = kbuild.build_key("src.deb", "CONFIG_A=y\n", [("p", b"1")])
    assert base == kbuild.build_key("src.deb", "CONFIG_A=y\n", [("q", b"1")])  # bytes only
    assert base != kbuild.build_key("src2.deb", "CONFIG_A=y\n", [("p", b"1")])
    assert base != kbuild.build_key("src.deb", "CONFIG_A=n\n", [("p", b"1")])
    assert base != kbuild.build_key("src.deb", "CONFIG_A=y\n", [("p", b"2")])
    assert base != kbuild.build_key("src.deb", "CONFIG_A=y\n", [])


GOOD = b"""--- a/f.c
+++ b/f.c
@@ -1,2 +1,2 @@
 a
-b
+B
"""
BAD = b"""--- a/f.c
+++ b/f.c
@@ -1,2 +1,2 @@
 a
-nope
+B
"""


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
def test_patches_apply_in_order_and_a_bad_one_names_itself(tmp_path):
    (tmp_path / "f.c").write_text("a\nb\n")
    kbuild.apply_patches(tmp_path, [("good.diff", GOOD)])
    assert (tmp_path / "f.c").read_text() == "a\nB\n"
    (tmp_path / "f.c").write_text("a\nb\n")
    with pytest.raises(SetupError, match="patch bad.diff does not apply") as e:
        kbuild.apply_patches(tmp_path, [("bad.diff", BAD)])
    assert e.value.exit_code == 2
    assert (tmp_path / "f.c").read_text() == "a\nb\n"  # the dry run left it alone


def test_build_missing_patch_file_exits_2(tmp_path, capsys):
    assert main(["kernel", "build", "--no-install", "--patch",
                 str(tmp_path / "nope.diff")]) == 2
    assert "nope.diff: no such file" in capsys.readouterr().err
