#!/usr/bin/env bash
# The project's one test command:
#
#   tests/run.sh [-- ARGS...]      ARGS go to the test runner(s) (e.g. a test name filter)
#
# 1. creates or reuses the cached venv with the pinned Python tools (tests/lambda/requirements.txt:
#    moto, cargo-lambda, aws-sam-cli, cfn-lint), at $NUSATRADE_VENV or
#    ${XDG_CACHE_HOME:-~/.cache}/nusatrade/venv; re-installed only when the pinned set changes;
# 2. starts moto's server (tests/lambda/moto_server.py: DynamoDB requests serialised, so conditional
#    writes are atomic as in DynamoDB) on a free 127.0.0.1 port and exports NUSATRADE_MOTO_ENDPOINT
#    plus dummy AWS credentials and region: the adapter contract tests run against it; fails loudly
#    if it does not answer within 30 s;
# 3. cargo build --workspace --all-targets;
# 4. the tests: cargo nextest (when installed) plus doc tests, or cargo test; the browser tests use Debian's
#    Chromium and chromedriver (the dashboard's, tests/dashboard.rs), installed here with apt-get when missing
#    (NUSATRADE_REQUIRE_BROWSER=1: a missing browser fails);
# 4b. tests/api/fuzz.sh: schemathesis fuzzes the local gateway from its own OpenAPI document;
# 5. tests/lambda/run-events.sh: every function in template.yaml answers its events/ through the
#    real Lambda Runtime API (cargo-lambda's emulator);
# 6. template checks, offline: cfn-lint, sam validate, sam validate --lint, and the project's own
#    template rules (tests/lambda/lambdatool.py check-template).
# Debug builds only. Ends with a `total: N passed, M failed` line.
set -euo pipefail

NT_PHASE=run
# shellcheck source=tests/lambda/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lambda/lib.sh"
cd "$NT_REPO_ROOT"

TEST_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --) shift; TEST_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) nt_die "unknown argument $1 (test runner arguments go after --)" ;;
    esac
done

STARTED=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nusatrade-tests.XXXXXX")"
NT_MOTO_PID=""
CURRENT_PHASE="setup"
cleanup() {
    local rc=$?
    nt_kill "$NT_MOTO_PID"
    if [[ $rc -ne 0 ]]; then
        echo "tests/run.sh: FAILED in phase '$CURRENT_PHASE' (exit $rc) after $((SECONDS - STARTED)) s; logs in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase() {
    CURRENT_PHASE="$1"
    NT_PHASE="$1"
    printf '\n==== %s (%d s) ====\n' "$1" "$((SECONDS - STARTED))"
}

# Tests are counted from the runners' own summary lines.
PASSED=0 FAILED=0 SKIPPED=0
count_cargo_test() { # cargo test's "test result: ok. 3 passed; 0 failed; 1 ignored; ..."
    local p f i
    read -r p f i < <(awk '/^test result: /{for(n=1;n<NF;n++){if($(n+1)~/^passed/)p+=$n; if($(n+1)~/^failed/)f+=$n; if($(n+1)~/^ignored/)g+=$n}} END{print p+0, f+0, g+0}' "$1")
    PASSED=$((PASSED + p)) FAILED=$((FAILED + f)) SKIPPED=$((SKIPPED + i))
}
count_nextest() { # nextest's "Summary [ 1.2s] 42 tests run: 42 passed, 1 skipped"
    local line p s
    line=$(grep -E '^ *Summary \[' "$1" | tail -n 1 || true)
    p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line")
    s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
    PASSED=$((PASSED + ${p:-0})) SKIPPED=$((SKIPPED + ${s:-0}))
}

# ---- 1. tools -------------------------------------------------------------------------------------
phase "tools"
nt_ensure_venv
export SAM_CLI_TELEMETRY=0 SAM_CLI_CONTACT_TRACKING=0
nt_log "venv $NT_VENV; $(cargo lambda --version 2>/dev/null | head -n1); $(sam --version); $(cfn-lint --version)"
# Headless Chromium and its WebDriver for the browser tests (Debian's chromium and chromium-driver; the tests
# refuse to skip when they are required).
export NUSATRADE_CHROMIUM="${NUSATRADE_CHROMIUM:-/usr/bin/chromium}"
export NUSATRADE_CHROMEDRIVER="${NUSATRADE_CHROMEDRIVER:-/usr/bin/chromedriver}"
if [[ ! -x "$NUSATRADE_CHROMIUM" || ! -x "$NUSATRADE_CHROMEDRIVER" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        nt_log "installing Debian's chromium and chromium-driver for the browser tests"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
            || nt_die "apt-get install chromium chromium-driver failed"
    else
        nt_die "$NUSATRADE_CHROMIUM or $NUSATRADE_CHROMEDRIVER not found: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) or set NUSATRADE_CHROMIUM / NUSATRADE_CHROMEDRIVER"
    fi
fi
export NUSATRADE_REQUIRE_BROWSER=1
nt_log "$("$NUSATRADE_CHROMIUM" --version 2>/dev/null | head -n1); $("$NUSATRADE_CHROMEDRIVER" --version 2>/dev/null | head -n1)"

# ---- 2. AWS emulator ------------------------------------------------------------------------------
phase "moto"
nt_start_moto "$WORK"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

# ---- 3. build -------------------------------------------------------------------------------------
phase "build"
cargo build --workspace --all-targets

# ---- 4. tests -------------------------------------------------------------------------------------
phase "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --no-tests=warn "${TEST_ARGS[@]}" 2>&1 | tee "$WORK/nextest.log"
    count_nextest "$WORK/nextest.log"
    phase "doc tests"
    cargo test --workspace --doc "${TEST_ARGS[@]}" 2>&1 | tee "$WORK/doctest.log"
    count_cargo_test "$WORK/doctest.log"
else
    cargo test --workspace --no-fail-fast "${TEST_ARGS[@]}" 2>&1 | tee "$WORK/cargo-test.log"
    count_cargo_test "$WORK/cargo-test.log"
fi

# ---- 4b. API fuzzing from the OpenAPI document ------------------------------------------------------
phase "api fuzz"
bash tests/api/fuzz.sh "$NT_REPO_ROOT/target/debug/nusatrade" 2>&1 | tee "$WORK/api-fuzz.log"
p=$(sed -nE 's/^api-fuzz: ([0-9]+) passed.*/\1/p' "$WORK/api-fuzz.log" | tail -n1)
PASSED=$((PASSED + ${p:-0}))

# ---- 5. Lambda functions through the Runtime API --------------------------------------------------
phase "lambda events"
bash tests/lambda/run-events.sh 2>&1 | tee "$WORK/lambda-events.log"
p=$(sed -nE 's/^lambda-events: ([0-9]+) passed.*/\1/p' "$WORK/lambda-events.log")
PASSED=$((PASSED + ${p:-0}))

# ---- 6. template ----------------------------------------------------------------------------------
phase "template"
cfn-lint template.yaml
echo "cfn-lint template.yaml: ok"
sam validate -t template.yaml
sam validate --lint -t template.yaml
"$NT_VENV/bin/python" tests/lambda/lambdatool.py check-template template.yaml
PASSED=$((PASSED + 4))

CURRENT_PHASE="done"
printf '\nAll phases passed in %d s (build, tests, api fuzz, lambda events, template).\n' "$((SECONDS - STARTED))"
echo "total: $PASSED passed, $FAILED failed, $SKIPPED skipped"
