#!/usr/bin/env bash
# The deploy path, exercised offline: the real `sam build` of template.yaml for x86_64 (cargo-lambda with the
# plain cargo compiler; the arm64 Rust target cannot be installed here), then
#   1. every built artefact answers its events/ through the Lambda Runtime API (tests/lambda/run-events.sh on the
#      artefacts, against moto);
#   2. a table of each function's bootstrap size (stripped, and zipped as Lambda stores it) and its init time to
#      the first /runtime/invocation/next (tests/lambda/init_time.py, a stand-in Runtime API; median of 5 starts).
#      tests/lambda/sizes.sh prints the same table for plain `cargo build --release` binaries (minutes, not half
#      an hour).
#
#   tests/lambda/sam-build.sh [BUILD_DIR]      (default: target/sam-build; takes 30–40 min on 2 cores)
#   NUSATRADE_SAM_REUSE=1 tests/lambda/sam-build.sh   checks and measures the artefacts already in BUILD_DIR
#
# Not run by tests/run.sh (release builds with LTO would double CI's time); run it after changing the template's
# build settings, a function's dependencies or the release profile, and update the README's table.
set -euo pipefail
NT_PHASE=sam-build
# shellcheck source=tests/lambda/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$NT_REPO_ROOT"

OUT="${1:-$NT_REPO_ROOT/target/sam-build}"
nt_ensure_venv
export SAM_CLI_TELEMETRY=0 SAM_CLI_CONTACT_TRACKING=0 CARGO_LAMBDA_COMPILER=cargo
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nusatrade-sam-build.XXXXXX")"
NT_MOTO_PID=""
cleanup() {
    local rc=$?
    nt_kill "$NT_MOTO_PID"
    if [[ $rc -eq 0 ]]; then rm -rf "$WORK"; else nt_log "logs in $WORK"; fi
    exit $rc
}
trap cleanup EXIT

started=$SECONDS
if [[ -n "${NUSATRADE_SAM_REUSE:-}" ]]; then
    nt_log "reusing the artefacts in $OUT"
else
nt_log "sam build (x86_64) into $OUT"
sam build --beta-features --template-file template.yaml --build-dir "$OUT" \
    --parameter-overrides Architecture=x86_64 2>&1 | tee "$WORK/sam-build.log" | grep -E 'Building|Build Succeeded|Error' || true
grep -q 'Build Succeeded' "$WORK/sam-build.log" || { tail -n 50 "$WORK/sam-build.log" >&2; nt_die "sam build failed"; }
nt_log "sam build finished in $((SECONDS - started)) s"
fi

nt_start_moto "$WORK"
NUSATRADE_SAM_BUILD_DIR="$OUT" bash tests/lambda/run-events.sh

nt_size_table "$WORK" "$OUT/{lid}/bootstrap"
