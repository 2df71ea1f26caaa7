"""`circuitscope serve`: a local HTTP server for the page and the graphs it shows.

Routes (every answer is JSON except the page and its static files):

    GET  /                              the page
    GET  /static/NAME                   the built page's files
    GET  /api/graphs                    [{id, name, cards, interventions}]
    GET  /api/graph/ID                  the attribution-graph JSON (+ saved labels)
    GET  /api/feature/ID/LAYER/INDEX    a feature card
    GET  /api/file/ID/PATH              a file inside the graph's folder
    GET  /api/compare/ID/OTHER          graph ID's features beside graph OTHER's (both
                                        trace folders of one transcoder): the JSON of
                                        `graph.compare.compare_graphs`, ID as graph A
    POST /api/state/ID                  {qParams, labels}: save the view
    POST /api/intervene/ID              run interventions on the model (see interventions.py)

Nothing outside the static folder and the served folders is ever read; a bad
request gets a 4xx with {"error": "..."}, and no request can stop the server.
POSTs must be JSON (a plain cross-site form cannot send that), and on a loopback
address requests naming another Host are refused (DNS rebinding).
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from circuitscope.errors import CircuitscopeError
from circuitscope.viewer import trace_folder
from circuitscope.viewer.interventions import InterventionBackend
from circuitscope.viewer.trace_folder import GraphSource

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1 << 20
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_FEATURE = re.compile(r"/api/feature/(\d+)/(\d+)/(\d+)")


class NotFound(CircuitscopeError):
    """A path that names nothing served (answered with 404)."""


class ViewerServer(ThreadingHTTPServer):
    """The HTTP server, holding the served graphs and the intervention backend."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        sources: Sequence[GraphSource],
        backend: InterventionBackend | None = None,
    ) -> None:
        super().__init__(address, ViewerHandler)
        self.sources = list(sources)
        self.backend = backend or InterventionBackend()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def source(self, text: str) -> GraphSource:
        if not text.isdigit() or int(text) >= len(self.sources):
            raise NotFound(f"no graph {text!r}")
        return self.sources[int(text)]


class ViewerHandler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _answer(self, route: Any) -> None:
        try:
            self._check_host()
            route(unquote(urlsplit(self.path).path))
        except NotFound as error:
            self._json({"error": str(error)}, 404)
        except CircuitscopeError as error:
            self._json({"error": str(error)}, getattr(error, "status", 422))
        except Exception as error:  # a bug must not stop the server: report it
            self._json({"error": f"internal error: {type(error).__name__}: {error}"}, 500)

    def _get(self, path: str) -> None:
        if path in ("/", "/index.html"):
            self._file(STATIC_DIR / "index.html")
        elif path.startswith("/static/"):
            self._file(_inside(STATIC_DIR, path.removeprefix("/static/")))
        elif path == "/api/graphs":
            self._json([self._summary(i, s) for i, s in enumerate(self.server.sources)])
        elif match := re.fullmatch(r"/api/graph/(\w+)", path):
            self._json(trace_folder.read_document(self.server.source(match.group(1))))
        elif match := _FEATURE.fullmatch(path):
            source = self.server.source(match.group(1))
            self._json(trace_folder.read_card(source, int(match.group(2)), int(match.group(3))))
        elif match := re.fullmatch(r"/api/compare/(\w+)/(\w+)", path):
            a, b = self.server.source(match.group(1)), self.server.source(match.group(2))
            self._json(trace_folder.compare_sources(a, b))
        elif match := re.fullmatch(r"/api/file/(\w+)/(.+)", path):
            source = self.server.source(match.group(1))
            self._file(_checked(lambda: trace_folder.served_file(source, match.group(2))))
        else:
            raise NotFound(f"nothing at {path}")

    def _post(self, path: str) -> None:
        body = self._body()
        if match := re.fullmatch(r"/api/state/(\w+)", path):
            source = self.server.source(match.group(1))
            trace_folder.save_state(source, body.get("qParams", {}), body.get("labels", {}))
            self._json({"saved": True})
        elif match := re.fullmatch(r"/api/intervene/(\w+)", path):
            self._json(self.server.backend.run(self.server.source(match.group(1)), body))
        else:
            raise NotFound(f"nothing to post at {path}")

    def _summary(self, index: int, source: GraphSource) -> dict[str, Any]:
        return {
            "id": index,
            "name": source.name,
            "cards": source.features_dir is not None,
            "interventions": self.server.backend.available(source),
        }

    def _check_host(self) -> None:
        """On a loopback address, answer only requests addressed to it (a page of another
        site reaching this server through DNS rebinding names its own host)."""
        bound = str(self.server.server_address[0])
        if bound not in LOOPBACK:
            return
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in LOOPBACK:
            self.close_connection = True
            raise _status(CircuitscopeError(f"refused: Host {host!r} is not this machine"), 403)

    def _body(self) -> dict[str, Any]:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind != "application/json":
            self.close_connection = True
            raise _status(CircuitscopeError("a POST must be Content-Type: application/json"), 415)
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise _status(CircuitscopeError("a POST needs a Content-Length"), 411)
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            raise _status(CircuitscopeError(f"body over {MAX_BODY_BYTES} bytes"), 413)
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise _status(CircuitscopeError("the body is not JSON"), 400) from None
        if not isinstance(body, dict):
            raise _status(CircuitscopeError("the body must be a JSON object"), 400)
        return body

    def _file(self, path: Path) -> None:
        data = path.read_bytes()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self._send(data, kind, 200)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(json.dumps(value).encode(), "application/json", status)

    def _send(self, data: bytes, kind: str, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


def _status(error: CircuitscopeError, status: int) -> CircuitscopeError:
    error.status = status  # type: ignore[attr-defined]
    return error


def _inside(root: Path, relative: str) -> Path:
    """`root/relative` if it is a file inside root (after resolving links); else NotFound."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        raise NotFound(f"no file {relative!r}")
    return target


def _checked(find: Any) -> Path:
    try:
        return find()
    except CircuitscopeError as error:
        raise NotFound(str(error)) from None
