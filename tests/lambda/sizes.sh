#!/usr/bin/env bash
# Each Lambda function's release binary: size (stripped, and zipped as Lambda stores it) and init time to the first
# /runtime/invocation/next (tests/lambda/init_time.py, a stand-in Runtime API; median of 5 starts), with the
# template's environment against moto — the table in the README.
#
#   tests/lambda/sizes.sh            builds every function in one `cargo build --release` (LTO: ~15–30 min on 2
#                                    cores), then measures target/release/<binary>
#   NUSATRADE_SIZES_REUSE=1 tests/lambda/sizes.sh   measures the binaries already built
#
# The same binaries `sam build` makes (release profile, stripped), without cargo-lambda's packaging;
# tests/lambda/sam-build.sh measures the real artefacts. Not run by tests/run.sh (release builds with LTO).
set -euo pipefail
NT_PHASE=sizes
# shellcheck source=tests/lambda/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$NT_REPO_ROOT"

nt_ensure_venv
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nusatrade-sizes.XXXXXX")"
NT_MOTO_PID=""
cleanup() {
    local rc=$?
    nt_kill "$NT_MOTO_PID"
    if [[ $rc -eq 0 ]]; then rm -rf "$WORK"; else nt_log "logs in $WORK"; fi
    exit $rc
}
trap cleanup EXIT

packages=()
while IFS=$'\t' read -r _lid _binary pkg _; do packages+=(-p "$pkg"); done \
    < <("$NT_VENV/bin/python" tests/lambda/lambdatool.py functions template.yaml)
if [[ -z "${NUSATRADE_SIZES_REUSE:-}" ]]; then
    started=$SECONDS
    nt_log "cargo build --release ${packages[*]}"
    cargo build --release --quiet "${packages[@]}"
    nt_log "built in $((SECONDS - started)) s"
fi
TARGET_DIR="$(cargo metadata --no-deps --format-version 1 | "$NT_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

nt_start_moto "$WORK"
nt_size_table "$WORK" "$TARGET_DIR/release/{binary}"
