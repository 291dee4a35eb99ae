#!/bin/bash
# tests/fuzz/run.sh [SECONDS]: build the config fuzzer with clang's libFuzzer (ASan+UBSan) and run
# it for SECONDS (default $FUZZ_SECONDS or 60) over tests/fuzz/corpus. New crashing inputs are
# written to build-fuzz/crashes/; copy them into tests/fuzz/corpus once fixed (ctest's
# fuzz-conf-replay replays that directory on every run). Longer runs: tests/fuzz/run.sh 3600.
set -eu -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECS=${1:-${FUZZ_SECONDS:-60}}
command -v clang >/dev/null || { echo "fuzz: no clang, skipped"; exit 77; }
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DUC_FUZZ=ON > build-fuzz.log 2>&1 || { tail build-fuzz.log; exit 1; }
cmake --build build-fuzz -j"$(nproc)" --target fuzz-conf >> build-fuzz.log 2>&1 || { tail -20 build-fuzz.log; exit 1; }
mkdir -p build-fuzz/crashes build-fuzz/corpus
cp tests/fuzz/corpus/* build-fuzz/corpus/
echo "fuzz: running fuzz-conf for ${SECS}s"
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}
timeout -k 10 $((SECS + 60)) build-fuzz/fuzz-conf -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix=build-fuzz/crashes/ -dict=tests/fuzz/conf.dict build-fuzz/corpus 2>&1 | tail -n 5
