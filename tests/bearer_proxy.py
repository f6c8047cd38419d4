#!/usr/bin/python3
"""A loopback HTTP front for tests/mount_dicomweb.sh: answers 401 unless a
GET carries "Authorization: Bearer <the content of TOKEN_FILE, read per
request>", else forwards it to UPSTREAM with basic auth (user:password)
and returns the answer as it came (status, Content-Type, body).

Usage: bearer_proxy.py PORT UPSTREAM TOKEN_FILE USER:PASSWORD
"""
import base64
import http.server
import sys
import urllib.error
import urllib.request

port, upstream, token_file, userpw = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
basic = "Basic " + base64.b64encode(userpw.encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with open(token_file) as f:
            want = "Bearer " + f.read().strip()
        if self.headers.get("Authorization") != want:
            self.reply(401, "text/plain", b"bearer token refused\n")
            return
        req = urllib.request.Request(upstream + self.path, headers={
            "Accept": self.headers.get("Accept", "*/*"), "Authorization": basic})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                self.reply(r.status, r.headers.get("Content-Type", ""), r.read())
        except urllib.error.HTTPError as e:
            self.reply(e.code, e.headers.get("Content-Type", "text/plain"), e.read())

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
