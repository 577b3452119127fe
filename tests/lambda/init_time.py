"""Time from starting a Lambda bootstrap to its first `GET /2018-06-01/runtime/invocation/next`.

    init_time.py ENV_FILE BOOTSTRAP [RUNS]

A stand-in for the Lambda Runtime API on a free 127.0.0.1 port answers nothing but records when the function
first asks for an invocation: everything before that is the function's init phase (config, AWS clients, ports).
ENV_FILE holds the template's environment (`lambdatool.py provision` output, NAME=VALUE lines). Prints
`<bootstrap> <median ms> <min ms> <max ms>` over RUNS starts (default 5).
"""

import http.server
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

first_call = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's API
        if self.path.endswith("/runtime/invocation/next"):
            first_call.set()
            time.sleep(5)  # a long poll with nothing to hand out
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    env_file, bootstrap = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    base_env = dict(line.rstrip("\n").split("=", 1) for line in open(env_file) if "=" in line)
    times = []
    for _ in range(runs):
        port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        first_call.clear()
        env = dict(os.environ)
        env.update(base_env)
        env.update({
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(os.path.dirname(bootstrap)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_REGION": "us-east-1",
        })
        started = time.perf_counter()
        proc = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = first_call.wait(30)
        elapsed = (time.perf_counter() - started) * 1000
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()
        if not ok:
            sys.exit(f"{bootstrap}: no call to /runtime/invocation/next within 30 s")
        times.append(elapsed)
    print(f"{bootstrap} {statistics.median(times):.1f} {min(times):.1f} {max(times):.1f}")


if __name__ == "__main__":
    main()
