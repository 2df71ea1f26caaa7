"""`serve` and `export-html`: the graph page in a browser, live or as one file."""

from __future__ import annotations

from dataclasses import dataclass, field

from circuitscope.cli_args import positional
from circuitscope.commands import Command


@dataclass(kw_only=True)
class ServeConfig:
    graphs: list[str] = positional()
    """Trace folders (from `circuitscope trace`) or attribution-graph JSON files."""
    features: str = ""
    """Feature cards (a folder from `circuitscope features`; default: GRAPH/features)."""
    port: int = 8765
    """The port (0: any free one)."""
    host: str = "127.0.0.1"
    """The address to listen on; another than 127.0.0.1 exposes the page to the network."""
    model: str = ""
    """Model for interventions (default: the one in the trace's config.json)."""
    transcoder: str = ""
    """Transcoder for interventions (default: the one in the trace's config.json)."""
    device: str = "cpu"
    """Device for interventions: cpu, cuda, cuda:N, or auto."""
    open_browser: bool = True
    """Open the page in the default browser (else only print its address)."""


@dataclass(kw_only=True)
class ExportHtmlConfig:
    graph: str = positional()
    """A trace folder or an attribution-graph JSON file."""
    output: str = field(default="graph.html", metadata={"short": "-o"})
    """The HTML file to write."""
    features: str = ""
    """Feature cards to embed (default: GRAPH/features when present)."""


def serve_command(config: ServeConfig) -> int:
    """Serve the graph page for one or more trace folders until interrupted."""
    import webbrowser

    from circuitscope.errors import CircuitscopeError
    from circuitscope.viewer.interventions import InterventionBackend, ModelChoice
    from circuitscope.viewer.server import ViewerServer
    from circuitscope.viewer.trace_folder import open_source

    sources = [open_source(path, config.features or None) for path in config.graphs]
    choice = ModelChoice(config.model, config.transcoder, config.device)
    try:
        server = ViewerServer((config.host, config.port), sources, InterventionBackend(choice))
    except OSError as error:
        raise CircuitscopeError(f"cannot listen on {config.host}:{config.port}: {error}") from None
    print(f"serving {len(sources)} graph(s) at {server.url}  (Ctrl-C stops)")
    if config.open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0


def export_html_command(config: ExportHtmlConfig) -> int:
    """Write one self-contained HTML file (page, graph, cards) that opens offline."""
    from circuitscope.outputs import check_output_file
    from circuitscope.viewer.export_html import export_html
    from circuitscope.viewer.trace_folder import open_source

    output = check_output_file(config.output)
    source = open_source(config.graph, config.features or None)
    path = export_html(source, output)
    print(f"written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


COMMANDS = [
    Command("serve", ServeConfig, serve_command),
    Command("export-html", ExportHtmlConfig, export_html_command),
]
