# Shared helpers for tests/run.sh and tests/lambda/run-events.sh. Source it; do not run it.
#
#   nt_ensure_venv      create or reuse the cached Python venv with the pinned tools; sets NT_VENV
#                       and puts its bin/ first on PATH
#   nt_free_port        print a free TCP port on 127.0.0.1
#   nt_start_moto DIR   start moto's server on a free port (log in DIR); sets NT_MOTO_PID and
#                       NUSATRADE_MOTO_ENDPOINT; fails loudly if it does not answer within 30 s.
#                       It is moto_server with DynamoDB requests serialised (see moto_server.py)
#   nt_kill PID...      stop processes this script started (their process groups), quietly
#   nt_size_table WORK PATTERN
#                       print the Markdown table of every template function's binary (PATTERN with {lid} and
#                       {binary} replaced: `target/release/{binary}`, `$OUT/{lid}/bootstrap`): stripped size in bytes
#                       and MB, zipped as Lambda stores it, init time to the first /runtime/invocation/next
#                       (init_time.py, median of 5 starts) with the template's environment on moto
#                       ($NUSATRADE_MOTO_ENDPOINT; nt_start_moto first). WORK holds the environment files.
#
# Processes are started in their own process group (setsid) so that nt_kill also stops their
# children, and only those.

NT_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NT_REPO_ROOT="$(cd "$NT_LIB_DIR/../.." && pwd)"

nt_log() { printf '[%s] %s\n' "${NT_PHASE:-tests}" "$*" >&2; }
nt_die() { printf '[%s] ERROR: %s\n' "${NT_PHASE:-tests}" "$*" >&2; exit 1; }

nt_ensure_venv() {
    local venv="${NUSATRADE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/nusatrade/venv}"
    local req="$NT_LIB_DIR/requirements.txt"
    local python="${NUSATRADE_PYTHON:-python3}"
    command -v "$python" >/dev/null || nt_die "$python not found (Python 3.11 is needed for the test tools)"
    # The stamp names the pinned set and the interpreter; any change re-creates the venv.
    local want
    want="$( { "$python" -c 'import sys; print(sys.version)'; grep -v '^[[:space:]]*#' "$req"; } | sha256sum | cut -d' ' -f1)"
    mkdir -p "$(dirname "$venv")"
    local lock="$venv.lock"
    (
        # Two runs at once must not build the same venv: the second waits for the first.
        if command -v flock >/dev/null; then flock 9; fi
        if [[ -f "$venv/.nusatrade-stamp" && "$(cat "$venv/.nusatrade-stamp")" == "$want" && -x "$venv/bin/python" ]]; then
            exit 0
        fi
        if [[ -e "$venv" ]]; then
            [[ -f "$venv/pyvenv.cfg" ]] || nt_die "$venv exists and is not a venv: remove it or set NUSATRADE_VENV"
            nt_log "pinned tools changed: re-creating $venv"
            rm -rf "$venv"
        fi
        nt_log "creating the test tools venv at $venv (first run: about 3 minutes)"
        "$python" -m venv "$venv" || nt_die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" \
            || { rm -rf "$venv"; nt_die "pip install -r $req failed"; }
        echo "$want" > "$venv/.nusatrade-stamp"
        nt_log "venv ready: $("$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
            | grep -iE '^(moto|cargo-lambda|aws-sam-cli|cfn-lint) ' | tr -s ' ' | paste -sd, -)"
    ) 9>"$lock" || exit 1
    NT_VENV="$venv"
    export PATH="$venv/bin:$PATH"
}

nt_free_port() {
    "${NT_VENV:+$NT_VENV/bin/}python3" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Waits until URL answers (any HTTP status), at most $2 seconds, while PID $3 lives.
nt_wait_http() {
    local url="$1" secs="$2" pid="$3" i
    for ((i = 0; i < secs * 5; i++)); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

nt_start_moto() {
    local dir="$1" port
    [[ -n "${NT_VENV:-}" ]] || nt_die "nt_ensure_venv must run before nt_start_moto"
    port="$(nt_free_port)"
    setsid "$NT_VENV/bin/python" "$NT_LIB_DIR/moto_server.py" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    NT_MOTO_PID=$!
    if ! nt_wait_http "http://127.0.0.1:$port/moto-api/" 30 "$NT_MOTO_PID"; then
        echo "----- moto_server log ($dir/moto.log) -----" >&2
        cat "$dir/moto.log" >&2 || true
        echo "-------------------------------------------" >&2
        nt_kill "$NT_MOTO_PID"
        nt_die "the AWS emulator (moto server on 127.0.0.1:$port) did not answer GET /moto-api/ within 30 s (or exited)"
    fi
    export NUSATRADE_MOTO_ENDPOINT="http://127.0.0.1:$port"
    nt_log "moto server answering at $NUSATRADE_MOTO_ENDPOINT (pid $NT_MOTO_PID)"
}

nt_kill() {
    local pid
    for pid in "$@"; do
        [[ -n "$pid" ]] || continue
        kill -0 "$pid" 2>/dev/null || continue
        # setsid made the process a group leader: stop the group (its children), then the process.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        [[ -n "$pid" ]] || continue
        local i
        for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

nt_size_table() {
    local work="$1" pattern="$2" py="$NT_VENV/bin/python" lid binary boot sizes med lo hi
    printf '\n| function | stripped bytes | stripped | zipped | init to first /next (median, min–max of 5) |\n'
    printf '|---|---|---|---|---|\n'
    "$py" "$NT_LIB_DIR/lambdatool.py" functions "$NT_REPO_ROOT/template.yaml" | while IFS=$'\t' read -r lid binary _; do
        boot="${pattern//\{lid\}/$lid}"
        boot="${boot//\{binary\}/$binary}"
        [[ -x "$boot" ]] || nt_die "$lid: $boot was not built"
        "$py" "$NT_LIB_DIR/lambdatool.py" provision "$NT_REPO_ROOT/template.yaml" "$NUSATRADE_MOTO_ENDPOINT" \
            "init$$-$lid" "$lid" >"$work/$lid.env" 2>/dev/null
        echo "NUSATRADE_AWS_ENDPOINT=$NUSATRADE_MOTO_ENDPOINT" >>"$work/$lid.env"
        sizes=$("$py" -c 'import io,os,sys,zipfile
b=io.BytesIO()
with zipfile.ZipFile(b,"w",zipfile.ZIP_DEFLATED,compresslevel=9) as z: z.write(sys.argv[1],"bootstrap")
n=os.path.getsize(sys.argv[1])
print(f"{n:,} | {n/1e6:.1f} MB | {len(b.getvalue())/1e6:.1f} MB")' "$boot")
        read -r _ med lo hi < <("$py" "$NT_LIB_DIR/init_time.py" "$work/$lid.env" "$boot" 5)
        printf '| %s | %s | %s ms (%s–%s) |\n' "$binary" "$sizes" "$med" "$lo" "$hi"
    done
}
