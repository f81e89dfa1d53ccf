"""`--kernel 7.2|6.1|DIR` without a guest: argument checks (exit 2), the 6.1
translation's unexpressible steps, the 6.1 guest's mkfs and modules."""

from __future__ import annotations

import pytest

from daxfuzz.cli import main
from daxfuzz.errors import InputError
from daxfuzz.guest import kernels
from daxfuzz.guest.apt import SetupError
from daxfuzz.vocab.trace import parse_trace

EXCHANGE_TRACE = """\
mmap mm=0 vma=0 ino=0
exchange ino1=0 ino2=1 pgoff1=0 pgoff2=0 pages=1
unmount
"""


def test_named_kernels_and_their_targets():
    assert kernels.resolve(None).target == "7.2"
    assert kernels.resolve("7.2").target == "7.2"
    k = kernels.resolve("6.1")
    assert k.target == "legacy"
    assert "6.10" in k.why_not("exchange")
    assert k.why_not("fault") is None


def test_bad_kernel_value_is_input_error():
    with pytest.raises(InputError, match="expected one of 7.2, 6.1"):
        kernels.resolve("6.6")


def test_directory_without_bzimage_is_refused(tmp_path):
    with pytest.raises(InputError, match="holds no bzImage"):
        kernels.resolve(str(tmp_path))


def test_directory_with_bzimage_is_a_built_72(tmp_path):
    (tmp_path / "bzImage").write_bytes(b"x")
    (tmp_path / "build.json").write_text('{"kernel_release": "7.2.13", '
                                         '"patches": ["/x/fix.diff"]}')
    k = kernels.resolve(str(tmp_path))
    assert k.target == "7.2" and k.built == str(tmp_path)
    assert "fix.diff" in k.label


@pytest.mark.parametrize("cmd", [["run", "corpus/pin-blocks-truncate.trace"],
                                 ["fuzz", "--time", "1"],
                                 ["repro", "--run", "corpus/pin-blocks-truncate.trace"]])
def test_cli_bad_kernel_exits_2(cmd, tmp_path, capsys):
    assert main(["kernel", *cmd, "--kernel", "5.10"]) == 2
    assert "--kernel '5.10'" in capsys.readouterr().err
    assert main(["kernel", *cmd, "--kernel", str(tmp_path)]) == 2
    assert "holds no bzImage" in capsys.readouterr().err


def test_setup_refuses_a_directory(tmp_path, capsys):
    assert main(["kernel", "setup", "--kernel", str(tmp_path)]) == 2
    assert "setup takes one of 7.2, 6.1" in capsys.readouterr().err


def test_exchange_is_not_expressible_on_61():
    tr = parse_trace(EXCHANGE_TRACE)
    p72 = kernels.translate_for(kernels.resolve("7.2"), tr)
    assert 2 not in p72.skipped and "\nexchange " in p72.text
    p61 = kernels.translate_for(kernels.resolve("6.1"), tr)
    assert "6.10" in p61.skipped[2]
    assert "\nexchange " not in p61.text
    assert "step 2\nskip exchange not expressible on Linux 6.1" in p61.text
    assert "step 3\n" in p61.text  # the steps after it are kept


def test_repro_run_refuses_exchange_on_61(tmp_path, capsys):
    t = tmp_path / "x.trace"
    t.write_text(EXCHANGE_TRACE)
    assert main(["kernel", "repro", "--run", "--kernel", "6.1", str(t)]) == 2
    assert "step 2 (exchange" in capsys.readouterr().err


def test_61_guest_makes_a_filesystem_61_mounts():
    assert "exchange" not in kernels.MKFS_CMD_61 and "parent" not in kernels.MKFS_CMD_61
    assert kernels.MKFS_CMD_61 in kernels.INIT_SCRIPT_61
    assert "-i exchange=1" not in kernels.INIT_SCRIPT_61
    assert kernels.MODULES_61[0] == "crc32c_generic"  # before libcrc32c (xfs)


def test_pick_image_takes_the_newest_abi():
    names = ["linux-image-6.1.0-47-amd64-unsigned", "linux-image-6.1.0-57-amd64",
             "linux-image-6.1.0-57-amd64-unsigned", "linux-image-6.1.0-57-cloud-amd64",
             "linux-image-6.1.0-57-amd64-dbg"]
    assert kernels.pick_image(names) == "linux-image-6.1.0-57-amd64-unsigned"
    with pytest.raises(SetupError):
        kernels.pick_image(["linux-image-6.1.0-57-rt-amd64"])


def test_target_override_and_a_bad_one(tmp_path, capsys):
    (tmp_path / "bzImage").write_bytes(b"x")
    assert kernels.resolve(str(tmp_path), "7.2-fix-cow-pmd").target == "7.2-fix-cow-pmd"
    with pytest.raises(InputError, match="no such target"):
        kernels.resolve("7.2", "7.3")
    assert main(["kernel", "run", "corpus/pin-blocks-truncate.trace", "--target",
                 "nope"]) == 2
    assert "--target 'nope'" in capsys.readouterr().err
