#!/usr/bin/env bash
# Runs only the nusatrade-aws tests (the project's full test command is tests/run.sh).
# Reuses NUSATRADE_MOTO_ENDPOINT when it answers; otherwise starts the project's moto server
# (tests/lambda/moto_server.py: moto with DynamoDB requests serialised, from the pinned venv) on a
# free port and stops it afterwards. Arguments go to `cargo test -p nusatrade-aws`.
set -euo pipefail
NT_PHASE=aws-tests
# shellcheck source=../../../tests/lambda/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../../tests/lambda/lib.sh"
cd "$NT_REPO_ROOT"

NT_MOTO_PID=""
WORK=""
cleanup() {
    nt_kill "$NT_MOTO_PID"
    [[ -z "$WORK" ]] || rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${NUSATRADE_MOTO_ENDPOINT:-}" ]] || ! curl -fsS -o /dev/null --max-time 2 "$NUSATRADE_MOTO_ENDPOINT/moto-api/"; then
    nt_ensure_venv
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/nusatrade-aws-tests.XXXXXX")"
    nt_start_moto "$WORK"
fi
nt_log "moto at $NUSATRADE_MOTO_ENDPOINT"
cargo test -p nusatrade-aws "$@"
