#!/usr/bin/env python3
"""A registry token server for the tests (the distribution spec's token auth): RS256 JWTs whose
`x5c` header carries the self-signed certificate the registry trusts. Anonymous callers get pull
access only; a caller with the right basic credentials gets what it asks for (skopeo's push).

usage: token_server.py PORT KEY.pem CERT.pem ISSUER SERVICE USER:PASS
"""
import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse
import uuid

PORT, KEY, CERT, ISSUER, SERVICE, CREDS = sys.argv[1:7]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cert_der():
    pem = open(CERT).read()
    body = "".join(l for l in pem.splitlines() if "-----" not in l)
    return body  # x5c is standard base64 of the DER, which the PEM body already is


def sign(data):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        authed = auth == "Basic " + base64.b64encode(CREDS.encode()).decode()
        if auth and not authed:
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in q.get("scope", []):
            typ, name, actions = scope.split(":", 2)
            actions = actions.split(",")
            if not authed:
                actions = [a for a in actions if a == "pull"]
            access.append({"type": typ, "name": name, "actions": actions})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [cert_der()]}
        claims = {"iss": ISSUER, "sub": CREDS.split(":")[0] if authed else "", "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        token = signing_input.decode() + "." + b64url(sign(signing_input))
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
