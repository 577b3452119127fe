#!/usr/bin/env bash
# Property-based API fuzzing of the local gateway from its own OpenAPI document (schemathesis).
#
#   tests/api/fuzz.sh [NUSATRADE_BINARY]     (tests/run.sh runs it after the build; the venv must be active)
#
# Starts `nusatrade serve` on a free 127.0.0.1 port with a throw-away data dir (cheap password hashing, no
# e-mail verification step, generous request limits), validates /api/v1/openapi.json as OpenAPI 3.1, registers a
# user and runs schemathesis with its bearer token over every operation: no 5xx but the documented 503s
# (tests/api/hooks.py), every status code, content type, header and body as the document says. Operations that
# would end the fuzzer's own session (logout, revoking sessions, 2FA) are left out. Stops what it started.
# NUSATRADE_FUZZ_EXAMPLES (default 25) bounds the cases per operation; prints `api-fuzz: N passed, M failed`.
# One worker: with two, hypothesis parses lambda sources from two threads and CPython 3.11's parser can fail
# ("AST constructor recursion depth mismatch") inside the tool, not the API.
set -euo pipefail
NT_PHASE=api-fuzz
# shellcheck source=tests/lambda/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lambda/lib.sh"
cd "$NT_REPO_ROOT"

BIN="${1:-$NT_REPO_ROOT/target/debug/nusatrade}"
[[ -x "$BIN" ]] || nt_die "$BIN not found: build the workspace first"
command -v schemathesis >/dev/null || nt_die "schemathesis not on PATH (run nt_ensure_venv first)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nusatrade-fuzz.XXXXXX")"
PID=""
cleanup() {
    local rc=$?
    nt_kill "$PID"
    if [[ $rc -eq 0 && -z "${NUSATRADE_FUZZ_KEEP:-}" ]]; then rm -rf "$WORK"; else echo "api-fuzz: logs in $WORK" >&2; fi
    exit $rc
}
trap cleanup EXIT

PORT="$(nt_free_port)"
BASE="http://127.0.0.1:$PORT"
NUSATRADE_JWT_SECRET="fuzz-secret-fuzz-secret-fuzz-secret-fuzz" \
NUSATRADE_ARGON2_MEMORY_KIB=8192 NUSATRADE_ARGON2_ITERATIONS=1 NUSATRADE_ARGON2_PARALLELISM=1 \
NUSATRADE_RATE_LIMIT_AUTH_REQUESTS=100000 NUSATRADE_RATE_LIMIT_REQUESTS=1000000 \
NUSATRADE_REQUIRE_EMAIL_VERIFICATION=false RUST_LOG=${RUST_LOG:-warn} \
    setsid "$BIN" serve --addr "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
PID=$!
nt_wait_http "$BASE/api/v1/health" 30 "$PID" || { cat "$WORK/gateway.log" >&2; nt_die "the gateway did not start"; }

curl -fsS "$BASE/api/v1/openapi.json" -o "$WORK/openapi.json"
python - "$WORK/openapi.json" <<'PY'
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
spec = json.load(open(sys.argv[1]))
assert spec["openapi"].startswith("3.1"), spec["openapi"]
validate(spec, cls=OpenAPIV31SpecValidator)
ops = sum(1 for p in spec["paths"].values() for m in p if m in ("get", "post", "put", "patch", "delete"))
print(f"api-fuzz: the document validates as OpenAPI 3.1 ({ops} operations)")
PY

TOKEN="$(curl -fsS -X POST "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"fuzz@example.com","password":"Str0ng!pass","full_name":"Fuzz"}' \
    | python -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
# One broker connection, so connection routes have something of the user's to find.
curl -fsS -X POST "$BASE/api/v1/brokers/connections" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"broker_name":"MetaTrader 5","account_number":"1001","server":"Demo"}' \
    -o /dev/null

set +e
SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$NT_REPO_ROOT/tests/api" schemathesis run "$BASE/api/v1/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks no_unexpected_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --exclude-path-regex '^/api/v1/(auth/logout|auth/sessions|totp/)' \
    --phases examples,coverage,fuzzing \
    --max-examples "${NUSATRADE_FUZZ_EXAMPLES:-25}" \
    --seed 1 --workers 1 --request-timeout 30 \
    --generation-database none --no-color \
    --report junit --report-junit-path "$WORK/junit.xml" 2>&1 | tee "$WORK/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e
python - "$WORK/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
passed = failed = 0
for c in cases:
    if c.find("failure") is not None or c.find("error") is not None:
        failed += 1
    else:
        passed += 1
print(f"api-fuzz: {passed} passed, {failed} failed")
PY
kill -0 "$PID" 2>/dev/null || nt_die "the gateway died during the run (see $WORK/gateway.log)"
exit "$rc"
