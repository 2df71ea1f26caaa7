"""`demo`: the case studies on the bundled SmolLM2-135M, from training to the page."""

from __future__ import annotations

from dataclasses import dataclass, field

from circuitscope.commands import Command


@dataclass(kw_only=True)
class DemoConfig:
    out: str = field(default="out/demo", metadata={"short": "-o"})
    """The demo folder: a rerun reuses what an earlier run wrote there (and an interrupted
    one continues)."""
    quick: bool = False
    """Tiny settings (a 24-step transcoder, three cases, few tokens): minutes, for tests."""
    transcoder: str = ""
    """Use this transcoder instead of training the demo preset into OUT/train."""
    suite: str = ""
    """A JSON file of case studies in the bundled suite's format (default: the bundled one)."""
    feature_tokens: int | None = None
    """Corpus tokens for the feature cards (default: 32768, 4x on CUDA; quick 2048)."""
    top_n: int | None = None
    """Nodes per graph tested on the model (default: 30, quick 10)."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (CUDA when present; the presets scale up on it)."""
    serve: bool = True
    """Serve the page on the graphs when done (--no-serve: print how to)."""
    port: int = 8765
    """The port for the page (0: any free one)."""
    progress: bool = True
    """Show progress bars."""


def demo_command(config: DemoConfig) -> int:
    """Train (or reuse) the demo transcoder, trace and check the case studies, write a report."""
    from pathlib import Path

    from circuitscope.demo.run import run_demo
    from circuitscope.demo.steps import DemoSettings
    from circuitscope.demo.suite import load_suite
    from circuitscope.errors import CircuitscopeError
    from circuitscope.models.loading import resolve_device
    from circuitscope.outputs import check_output_folder

    for name in ("feature_tokens", "top_n"):  # refused before any long work
        value = getattr(config, name)
        if value is not None and value < 1:
            raise CircuitscopeError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    out = check_output_folder(config.out, ("screening.json", "report.json", "train"))
    suite = load_suite(config.suite or None)
    quick_or = (lambda quick, full: quick) if config.quick else (lambda quick, full: full)
    device = resolve_device(config.device)
    scale = 4 if device.startswith("cuda") else 1  # as the training presets scale up
    settings = DemoSettings(
        out=out,
        quick=config.quick,
        device=device,
        feature_tokens=_given(config.feature_tokens, quick_or(2048, 32_768 * scale)),
        top_n=_given(config.top_n, quick_or(10, 30)),
        progress=config.progress,
    )
    graphs = run_demo(settings, suite, config.transcoder)
    serve = ["circuitscope", "serve", *map(str, graphs), "--features", str(out / "features")]
    if not config.serve or not graphs:
        print("to read the graphs in the browser: " + " ".join(serve))
        return 0
    from circuitscope.commands.viewer_commands import ServeConfig, serve_command

    return serve_command(
        ServeConfig(
            graphs=[str(Path(g)) for g in graphs], features=str(out / "features"), port=config.port
        )
    )


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


COMMANDS = [Command("demo", DemoConfig, demo_command)]
