#!/usr/bin/env python3
"""moto_server, handling one request at a time.

Usage: python moto_serial.py -H 127.0.0.1 -p PORT   (the arguments of `moto_server`)

moto 5.2.5's server is threaded (werkzeug `threaded=True`), and its backends check a
condition and then apply the write without a lock: two concurrent conditional UpdateItems on
one item can both pass their condition. Measured with boto3 alone, no vhs involved: 8 threads
each doing 20 read-then-conditional-update increments of one counter (UpdateItem
`SET n = :new, a0 = :a0, ...` with `ConditionExpression n = :old`) reported 160 successes and
left the counter at 130. DynamoDB itself applies each conditional write atomically, and the
store's safety argument (and the race tests that check it) rests on exactly that.

This wrapper keeps moto's own server, request handler and arguments and adds one thing: each
request is dispatched under a process-wide lock, and its response body is produced before the
lock is released, so every request is applied atomically, in some order, as DynamoDB and S3
apply them. Connections are still accepted and read on their own threads.
"""

import io
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_LOCK = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _serial(self, environ, start_response):
    # The request body is read before taking the lock: a client may hold back its
    # last bytes until another of its requests answered (vhs does, for uploads
    # that must complete after a read), and that request needs the lock.
    stream = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH") or ""
    if stream is not None and length.isdigit() and int(length) > 0:
        environ["wsgi.input"] = io.BytesIO(stream.read(int(length)))
    elif stream is not None and environ.get("wsgi.input_terminated"):
        environ["wsgi.input"] = io.BytesIO(stream.read())
    with _LOCK:
        body = _dispatch(self, environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


DomainDispatcherApplication.__call__ = _serial

if __name__ == "__main__":
    main(sys.argv[1:])
