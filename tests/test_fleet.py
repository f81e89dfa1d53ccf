"""The ClusterFuzzLite/OSS-Fuzz files: build.sh run locally, and the fuzzers it writes run
the way those engines run them (corpus dir argument, -runs=N, crash exit code, artifact).

What cannot run here (no docker): the base-builder image, and compile_python_fuzzer's
PyInstaller bundling; build.sh then stands in a wrapper with the same $OUT layout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from daxfuzz.cli import main as cli
from daxfuzz.vocab.geometry import DEFAULT
from fuzz.codec import decode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN = "test-broken-unmap-ref"
KERNELS = ["daxfuzz_6_15_fuzzer", "daxfuzz_7_2_fuzzer", "daxfuzz_legacy_fuzzer",
           "daxfuzz_v6_fuzzer"]


def build(tmp_path, name: str, targets: str = "") -> str:
    out, work = tmp_path / f"out-{name}", tmp_path / f"work-{name}"
    out.mkdir()
    work.mkdir()
    env = dict(os.environ, SRC=ROOT, DAXFUZZ_SRC=ROOT, OUT=str(out), WORK=str(work),
               PYTHON=sys.executable, DAXFUZZ_SKIP_INSTALL="1", DAXFUZZ_FLEET_TARGETS=targets,
               PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    p = subprocess.run(["bash", os.path.join(ROOT, ".clusterfuzzlite", "build.sh")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return str(out)


def fuzzers(out: str) -> list[str]:
    return sorted(n for n in os.listdir(out) if os.access(os.path.join(out, n), os.X_OK)
                  and not os.path.isdir(os.path.join(out, n)))


@pytest.fixture(scope="module")
def kernel_out(tmp_path_factory):
    return build(tmp_path_factory.mktemp("fleet"), "kernels")


def test_build_sh_writes_every_kernel_harness_with_seeds_dict_options(kernel_out):
    names = fuzzers(kernel_out)
    assert set(KERNELS) <= set(names)
    assert not [n for n in names if "zoo" in n or "test" in n or "mainline" in n]
    for name in names:
        with open(os.path.join(kernel_out, name)) as f:
            assert "LLVMFuzzerTestOneInput" in f.read()  # how the engines spot a fuzz target
        with zipfile.ZipFile(os.path.join(kernel_out, name + "_seed_corpus.zip")) as z:
            seeds = z.namelist()
            assert len(seeds) >= 20
            assert decode(z.read(seeds[0]), DEFAULT)  # corpus traces, encoded
        with open(os.path.join(kernel_out, name + ".dict")) as f:
            assert 'fault_write="' in f.read()
        with open(os.path.join(kernel_out, name + ".options")) as f:
            assert f.read().startswith("[libfuzzer]\nmax_len = ")


def test_kernel_harness_runs_as_the_engine_calls_it(kernel_out, tmp_path):
    # batch/code-change mode: the seed corpus unpacked into a corpus dir, -runs bounded
    name = "daxfuzz_7_2_fuzzer"
    corpus = tmp_path / "corpus"
    with zipfile.ZipFile(os.path.join(kernel_out, name + "_seed_corpus.zip")) as z:
        z.extractall(corpus)
    p = subprocess.run([os.path.join(kernel_out, name), "-runs=300", "-seed=1",
                        f"-dict={kernel_out}/{name}.dict", str(corpus)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    # the corpus's documented 7.2 divergences are known to the harness: no crash
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Done 300 runs" in p.stderr


def test_planted_bug_crashes_with_artifact_and_reproduces(tmp_path):
    out = build(tmp_path, "broken", BROKEN)
    fz = os.path.join(out, "daxfuzz_test_broken_unmap_ref_fuzzer")
    corpus = tmp_path / "corpus"
    with zipfile.ZipFile(fz + "_seed_corpus.zip") as z:
        z.extractall(corpus)
    art = tmp_path / "art"
    art.mkdir()
    env = dict(os.environ, DAXFUZZ_KNOWN="")  # every divergence counts, not only new ones
    p = subprocess.run([fz, "-runs=100000", "-seed=1", f"-artifact_prefix={art}/",
                        str(corpus)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env=env)
    assert p.returncode not in (0, None), p.stderr[-2000:]  # libFuzzer: 77 for a crash
    (crash,) = [str(art / n) for n in os.listdir(art) if n.startswith("crash-")]
    assert "DivergenceFound" in p.stdout + p.stderr
    # reproduce mode (how the engines confirm a crash): the one input, non-zero again
    r = subprocess.run([fz, crash], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env=env)
    assert r.returncode != 0
    assert cli(["reduce", crash, "--target", BROKEN, "-o", str(tmp_path / "r.trace")]) == 1


def test_workflows_name_both_modes():
    wf = os.path.join(ROOT, ".github", "workflows")
    with open(os.path.join(wf, "cflite_pr.yml")) as f:
        pr = f.read()
    with open(os.path.join(wf, "cflite_batch.yml")) as f:
        batch = f.read()
    assert "mode: 'code-change'" in pr and "pull_request:" in pr
    assert "mode: 'batch'" in batch and "schedule:" in batch
    for text in (pr, batch):
        assert "google/clusterfuzzlite/actions/build_fuzzers@v1" in text
        assert "language: python" in text
    with open(os.path.join(ROOT, ".clusterfuzzlite", "project.yaml")) as f:
        assert "language: python" in f.read()
