#!/bin/bash -eu
# Build every daxfuzz atheris harness into $OUT, for ClusterFuzzLite or OSS-Fuzz.
#
# One fuzz target per kernel target (daxfuzz_<target>_fuzzer: fuzz/atheris_harness.py
# with DAXFUZZ_TARGET set), each with
#   <name>_seed_corpus.zip   the trace corpus (corpus/**/*.trace) encoded by the codec
#   <name>.dict              fuzz/dict/daxfuzz.dict (whole ops)
#   <name>.options           libFuzzer max_len for the ops per input
# and with the divergences the corpus documents for that target as known
# (DAXFUZZ_KNOWN): a fleet looks for new bugs, as `daxfuzz fuzz` does.
#
# In the image compile_python_fuzzer (PyInstaller) bundles each target.  Without it
# (a local run: SRC=<checkout> OUT=<dir> WORK=<dir> bash .clusterfuzzlite/build.sh)
# each target is a shell wrapper running the harness with this Python.
# DAXFUZZ_FLEET_TARGETS="6.15 7.2" picks the targets (default: every kernel target).

SRC_DIR="${DAXFUZZ_SRC:-$SRC/daxfuzz}"
PYTHON="${PYTHON:-python3}"
cd "$SRC_DIR"

if [ -z "${DAXFUZZ_SKIP_INSTALL:-}" ]; then
  "$PYTHON" -m pip install --quiet .
fi

HARNESSES="$WORK/daxfuzz-harnesses"
rm -rf "$HARNESSES"
mkdir -p "$HARNESSES" "$OUT"
"$PYTHON" "$SRC_DIR/.clusterfuzzlite/make_harnesses.py" --src "$SRC_DIR" \
  --harnesses "$HARNESSES" --out "$OUT" ${DAXFUZZ_FLEET_TARGETS:-}

if ! command -v compile_python_fuzzer >/dev/null 2>&1; then
  compile_python_fuzzer() {  # local stand-in: the same $OUT layout, no bundling
    local name
    name=$(basename -s .py "$1")
    cp "$1" "$OUT/$name.pkg.py"
    printf '#!/bin/sh\n# LLVMFuzzerTestOneInput for fuzzer detection.\nexec %s "$(dirname "$0")/%s.pkg.py" "$@"\n' \
      "$(command -v "$PYTHON")" "$name" > "$OUT/$name"
    chmod +x "$OUT/$name"
  }
fi

for harness in "$HARNESSES"/daxfuzz_*_fuzzer.py; do
  # kdax registers its targets on import and the harness instruments kdax/oracle at
  # import time: bundle the packages whole, not only what static analysis sees
  # (--paths: the checkout, for an editable install PyInstaller cannot follow).
  compile_python_fuzzer "$harness" --paths="$SRC_DIR" \
    --collect-submodules=kdax --collect-submodules=oracle \
    --collect-submodules=daxfuzz --collect-submodules=fuzz
done
ls "$OUT"
