"""The viewer's read-only local HTTP server (standard library ``http.server``, one thread per request).

Answers GET and HEAD only (405 otherwise), from :class:`~benchmark.viewer.content.ViewerContent`'s
tables; any path with a ``..`` segment (plain or percent-encoded), a backslash, a NUL, an absolute
path after the first slash or a name the tables do not hold gets 404. It never writes a file. The
page and data carry a Content-Security-Policy of ``'self'`` only, so nothing from outside loads.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from benchmark.viewer.content import ViewerContent

_log = logging.getLogger(__name__)
DEFAULT_PORT = 8753
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_path(raw: str) -> str | None:
    """The content path (no leading slash) a request line's target names, or None when it must be refused."""
    target = urlsplit(raw).path
    decoded = unquote(target, errors="strict") if "%" in target else target
    if not decoded.startswith("/") or decoded.startswith("//") or "\\" in decoded or "\x00" in decoded:
        return None
    path = decoded[1:]
    if any(part in ("..", ".") for part in path.split("/")) or "//" in path:
        return None
    return path


class _Handler(BaseHTTPRequestHandler):
    server_version = "mmface4d-view"
    content: ViewerContent  # set on the subclass made by make_server

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "the viewer is read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _answer(self, send_body: bool) -> None:
        try:
            path = url_path(self.path)
        except UnicodeDecodeError:
            path = None
        found = None
        if path is not None:
            try:
                found = self.content.get(path)
            except Exception as exc:  # a damaged row or submission: the page shows the message
                _log.warning("view: %s: %s", path, exc)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc).encode("utf-8"), "text/plain; charset=utf-8", send_body)
                return
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8", send_body)
            return
        body, kind = found
        self._send(HTTPStatus.OK, body, kind, send_body)

    def _send(self, status: HTTPStatus, body: bytes, kind: str, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # requests go to the debug log, not to the terminal
        _log.debug("view: " + format, *args)


class _ServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(content: ViewerContent, host: str = "127.0.0.1", port: int | None = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A bound (not yet serving) server of ``content``; port None or 0 takes a free port. A non-loopback
    ``host`` logs a warning (the release holds faces and voices)."""
    handler = type("ViewerHandler", (_Handler,), {"content": content})
    if not is_loopback(host):
        _log.warning(
            "warning: serving on %s, a non-loopback address: anyone who can reach it can see and hear this release's "
            "faces and voices (biometric data); use --host 127.0.0.1 to keep it on this machine",
            host,
        )
    server_class = _ServerV6 if ":" in host else ThreadingHTTPServer
    server = server_class((host, int(port or 0)), handler)
    server.daemon_threads = True
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    """The URL to open: the bound address, or the loopback one when bound to every interface (0.0.0.0, ::)."""
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in str(host) else host
    return f"http://{shown}:{port}/"


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread (tests and perf); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="mmface4d-view", daemon=True)
    thread.start()
    return thread
