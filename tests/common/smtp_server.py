"""An SMTP server on loopback for ivr's mail tests (aiosmtpd, Debian python3-aiosmtpd).

Every accepted message is written whole, as received (DATA bytes), to DIR/N.eml, and its
envelope to DIR/N.json, each written to a temp name and renamed so a reader never sees half a
file. Prints "READY <port>" once listening; runs until killed.

    smtp_server.py --port P --dir D [--starttls CERT KEY] [--smtps CERT KEY] [--auth USER:PASS]
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Saver:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.out, str(self.n))
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "login": (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
            "at": time.time(),
        }
        for ext, data in ((".eml", envelope.original_content), (".json", json.dumps(meta).encode())):
            with open(base + ext + ".tmp", "wb") as f:
                f.write(data)
            os.rename(base + ext + ".tmp", base + ext)
        return "250 Message accepted for delivery"


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--starttls", nargs=2)
    p.add_argument("--smtps", nargs=2)
    p.add_argument("--auth")
    a = p.parse_args()

    kwargs = {}
    if a.starttls:
        kwargs["tls_context"] = tls_context(*a.starttls)
        kwargs["require_starttls"] = True
    if a.smtps:
        kwargs["server_kwargs"] = {"ssl_context": tls_context(*a.smtps)}
    if a.auth:
        user, password = a.auth.split(":", 1)

        def check(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            return AuthResult(success=ok, auth_data=auth_data)

        kwargs["authenticator"] = check
        kwargs["auth_required"] = True
        # Implicit TLS counts as TLS for aiosmtpd only through the context given to the server.
        kwargs["auth_require_tls"] = bool(a.starttls)

    if a.smtps:
        # The controller's readiness probe would speak plain SMTP to a TLS port: start it by hand.
        loop = asyncio.new_event_loop()
        from aiosmtpd.smtp import SMTP
        handler = Saver(a.dir)

        def factory():
            return SMTP(handler, hostname="127.0.0.1", **{k: v for k, v in kwargs.items() if k != "server_kwargs"})

        server = loop.run_until_complete(
            loop.create_server(factory, "127.0.0.1", a.port, ssl=kwargs["server_kwargs"]["ssl_context"]))
        print(f"READY {a.port}", flush=True)
        loop.run_forever()
        return

    controller = Controller(Saver(a.dir), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print(f"READY {a.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
