#!/usr/bin/env bash
# Runs the nusatrade-aws tests against a moto server.
# Uses NUSATRADE_MOTO_ENDPOINT when set and reachable; otherwise starts `moto_server` on a free port
# (from PATH, or from /work/main/.venv) and stops it afterwards. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../../.."

started=""
cleanup() { if [ -n "$started" ]; then kill "$started" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [ -z "${NUSATRADE_MOTO_ENDPOINT:-}" ] || ! curl -sf -o /dev/null "${NUSATRADE_MOTO_ENDPOINT}/moto-api/"; then
  moto="$(command -v moto_server || true)"
  [ -z "$moto" ] && [ -x .venv/bin/moto_server ] && moto=.venv/bin/moto_server
  if [ -z "$moto" ]; then
    echo "moto_server not found: python3 -m venv .venv && .venv/bin/pip install 'moto[server]'" >&2
    exit 1
  fi
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$moto" -H 127.0.0.1 -p "$port" >/tmp/nusatrade-moto-"$port".log 2>&1 &
  started=$!
  export NUSATRADE_MOTO_ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do
    curl -sf -o /dev/null "$NUSATRADE_MOTO_ENDPOINT/moto-api/" && break
    sleep 0.2
  done
fi
echo "moto at $NUSATRADE_MOTO_ENDPOINT" >&2
cargo test -p nusatrade-aws "$@"
