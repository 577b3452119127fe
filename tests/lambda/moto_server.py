#!/usr/bin/env python3
"""moto_server, with DynamoDB requests applied one at a time.

    python moto_server.py -H 127.0.0.1 -p PORT

`moto_server` serves every request on its own thread, and moto's DynamoDB backend does not lock an
item between evaluating a condition and writing: two concurrent conditional updates of one item can
both succeed (seen in the store contract test `concurrent_conditional_updates_only_one_wins`). Real
DynamoDB applies conditional writes and transactions atomically, so this server runs the same moto
application but serialises DynamoDB requests (JSON protocol, `X-Amz-Target: DynamoDB_...`) behind
one lock. Other services stay concurrent: an SQS long poll must not block the send it waits for.
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class SerialDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:
            # Produce the whole response under the lock: the write happens while it is generated.
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        return [body]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(args.host, args.port, SerialDynamoDB(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
