#!/usr/bin/env bash
# Proves that every function declared in template.yaml answers its sample events through the real
# Lambda Runtime API:
#   1. reads the functions (logical id, Binary, crate) from template.yaml and checks that each has
#      at least one event in events/<Binary>/;
#   2. builds the debug binaries (a no-op after `cargo build --workspace`);
#   3. starts cargo-lambda's Runtime API emulator only (`cargo lambda watch --only-lambda-apis`);
#   4. per function: creates the template's table, bucket and queues on moto, starts the prebuilt
#      target/debug/<Binary> against the emulator with the template's environment, sends every
#      event with `cargo lambda invoke --data-file`, and checks each response (statusCode 200, or
#      what events/<Binary>/<event>.expect.json says). A response-streaming function (function URL,
#      InvokeMode RESPONSE_STREAM) is invoked through the emulator's invoke endpoint, which decodes the stream.
# Uses $NUSATRADE_MOTO_ENDPOINT when set (tests/run.sh sets it), otherwise starts its own moto.
# Prints `lambda-events: N passed, M failed` and exits non-zero on any failure.
set -euo pipefail

NT_PHASE=lambda-events
# shellcheck source=tests/lambda/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$NT_REPO_ROOT"

TEMPLATE="${NUSATRADE_TEMPLATE:-template.yaml}"
EVENTS_DIR="${NUSATRADE_EVENTS_DIR:-events}"
INVOKE_TIMEOUT="${NUSATRADE_INVOKE_TIMEOUT:-60}"

nt_ensure_venv
PY="$NT_VENV/bin/python"
TOOL="$NT_LIB_DIR/lambdatool.py"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/nusatrade-lambda-events.XXXXXX")"
OWN_MOTO_PID="" WATCH_PID="" FN_PID=""
cleanup() {
    local rc=$?
    nt_kill "$FN_PID" "$WATCH_PID" "$OWN_MOTO_PID"
    if [[ $rc -ne 0 ]]; then
        nt_log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Functions and their events.
"$PY" "$TOOL" functions "$TEMPLATE" >"$WORK/functions.tsv"
"$PY" "$TOOL" events "$TEMPLATE" "$EVENTS_DIR" >"$WORK/events.tsv"
nt_log "$(wc -l <"$WORK/functions.tsv") function(s), $(wc -l <"$WORK/events.tsv") event(s) in $TEMPLATE"

# 2. The real binaries, as `cargo build` makes them. Built with the same package selection and targets
# as tests/run.sh's build phase, so cargo unifies features the same way and this is a no-op there
# (selecting only the function packages would unify features differently and rebuild the AWS SDK).
# With NUSATRADE_SAM_BUILD_DIR (tests/lambda/sam-build.sh), the artefacts `sam build` made are used instead:
# <dir>/<LogicalId>/bootstrap.
if [[ -z "${NUSATRADE_SAM_BUILD_DIR:-}" ]]; then
    cargo build --quiet --workspace --all-targets
fi
TARGET_DIR="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

# 3. Emulators: moto (AWS services) and the Lambda Runtime API.
if [[ -z "${NUSATRADE_MOTO_ENDPOINT:-}" ]]; then
    nt_start_moto "$WORK"
    OWN_MOTO_PID="$NT_MOTO_PID"
fi
PORT="$(nt_free_port)"
# Its working directory is the repository (it looks for a Cargo manifest); its log stays in $WORK,
# outside any watched directory.
setsid cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$PORT" \
    >"$WORK/runtime-api.log" 2>&1 &
WATCH_PID=$!
for ((i = 0; i < 150; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$WATCH_PID" 2>/dev/null || break
    sleep 0.2
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    cat "$WORK/runtime-api.log" >&2
    nt_die "cargo lambda watch --only-lambda-apis did not listen on 127.0.0.1:$PORT within 30 s"
fi
nt_log "Lambda Runtime API emulator on 127.0.0.1:$PORT (cargo lambda watch --only-lambda-apis)"

# 4. Each function, each event.
passed=0 failed=0
run=0
while IFS=$'\t' read -r lid binary _package memory timeout mode; do
    run=$((run + 1))
    bin_path="$TARGET_DIR/debug/$binary"
    [[ -z "${NUSATRADE_SAM_BUILD_DIR:-}" ]] || bin_path="$NUSATRADE_SAM_BUILD_DIR/$lid/bootstrap"
    [[ -x "$bin_path" ]] || nt_die "$lid: $bin_path was not built"
    prefix="ntev$$-$run"
    "$PY" "$TOOL" provision "$TEMPLATE" "$NUSATRADE_MOTO_ENDPOINT" "$prefix" "$lid" >"$WORK/$binary.env" 2>"$WORK/$binary.env.notes" \
        || { cat "$WORK/$binary.env.notes" >&2; nt_die "$lid: could not create the template's resources on moto"; }
    mapfile -t fn_env <"$WORK/$binary.env"
    nt_log "$lid: starting $bin_path with ${#fn_env[@]} variable(s) from the template: $(cut -d= -f1 "$WORK/$binary.env" | paste -sd' ' -)"
    # The environment Lambda gives a custom runtime, pointed at the emulators.
    setsid env -u AWS_ENDPOINT_URL -u AWS_PROFILE \
        "${fn_env[@]}" \
        AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$PORT/.rt/$binary" \
        AWS_LAMBDA_FUNCTION_NAME="$binary" \
        AWS_LAMBDA_FUNCTION_VERSION='$LATEST' \
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="$memory" \
        AWS_LAMBDA_FUNCTION_TIMEOUT="$timeout" \
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/$binary" \
        AWS_LAMBDA_LOG_STREAM_NAME="local/$binary" \
        AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
        NUSATRADE_AWS_ENDPOINT="$NUSATRADE_MOTO_ENDPOINT" \
        "$bin_path" >"$WORK/$binary.log" 2>&1 &
    FN_PID=$!
    while IFS=$'\t' read -r ev_binary event; do
        [[ "$ev_binary" == "$binary" ]] || continue
        out="$WORK/$binary.$(basename "$event" .json).response.json"
        # A response-streaming function (a function URL with InvokeMode RESPONSE_STREAM) through the emulator's
        # invoke endpoint, which decodes the stream; the others through `cargo lambda invoke`.
        if [[ "$mode" == "stream" ]]; then
            invoke=(timeout "$INVOKE_TIMEOUT" "$PY" "$TOOL" invoke-stream "$PORT" "$binary" "$event" "$out")
        else
            invoke=(timeout "$INVOKE_TIMEOUT" cargo lambda invoke "$binary" --invoke-address 127.0.0.1 --invoke-port "$PORT"
                --data-file "$event" --output-format json)
        fi
        if [[ "$mode" == "stream" ]]; then sink="/dev/null"; else sink="$out"; fi
        if ! "${invoke[@]}" >"$sink" 2>"$out.err"; then
            failed=$((failed + 1))
            echo "FAIL $binary <- $event: invoke failed or timed out after ${INVOKE_TIMEOUT}s" >&2
            cat "$out.err" "$out" >&2 || true
            echo "----- $binary log -----" >&2
            tail -n 50 "$WORK/$binary.log" >&2 || true
            continue
        fi
        if result="$("$PY" "$TOOL" check-response "$event" "$out" 2>"$out.check")"; then
            passed=$((passed + 1))
            echo "ok   $binary <- $event ($result)"
        else
            failed=$((failed + 1))
            echo "FAIL $binary <- $event" >&2
            cat "$out.check" >&2
        fi
    done <"$WORK/events.tsv"
    if ! kill -0 "$FN_PID" 2>/dev/null; then
        failed=$((failed + 1))
        echo "FAIL $binary: the process exited during the test" >&2
        tail -n 50 "$WORK/$binary.log" >&2 || true
    fi
    nt_kill "$FN_PID"
    FN_PID=""
    if [[ -n "${NUSATRADE_SHOW_LOGS:-}" ]]; then
        cat "$WORK/$binary.log"
    fi
done <"$WORK/functions.tsv"

echo "lambda-events: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
