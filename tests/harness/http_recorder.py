#!/usr/bin/env python3
"""A tiny HTTP server for tests: records every request and answers it.

    http_recorder.py PORTFILE LOGFILE

Listens on 127.0.0.1 on a free port (written to PORTFILE once listening), and appends one
JSON line per request to LOGFILE: method, path, the Title header and the body. A path that
contains "/status-NNN" is answered with status NNN; every other one with 200. Runs until
killed."""
import http.server
import json
import sys


class Recorder(http.server.BaseHTTPRequestHandler):
    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(json.dumps({"method": self.command, "path": self.path,
                                  "title": self.headers.get("Title"), "body": body}) + "\n")
        status = 200
        if "/status-" in self.path:
            status = int(self.path.split("/status-", 1)[1][:3])
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_HEAD = _handle

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
