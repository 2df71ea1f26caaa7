"""Quality versus training time of one run: its checkpoints evaluated as transcoders.

    .venv/bin/python benchmarks/training_curve.py out/quality --steps 500 1500 3000 \
        [--tokens 8192] [--validation [--validation-steps 500 3000]] [--machine NAME]
        [--name quality]

For each step: `export-checkpoint` (the run's final transcoder for its last step), `eval`
on held-out text (normalized MSE, L0, dead and dense fractions, spliced top-1 / KL / loss
change; kept in the transcoder folder and reused), and with --validation the SmolLM2
validation suite (`benchmarks/validation.py`: mean replacement and completeness scores,
mean ablation Spearman on the original and the replacement model; today's finished run
of it on the same transcoder is reused). The time axis is the run's own: `elapsed_s` /
`cpu_s` of the log line at that step, or, for logs without them, the checkpoint's
modification time minus the run's start (RUN/../NAME.start, an ISO time).
Writes benchmarks/results/training-curve-<name>-<date>-<machine>.md/.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLI = [sys.executable, "-m", "circuitscope"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("run", help="a run folder of `circuitscope train`")
    parser.add_argument("--steps", type=int, nargs="+", required=True)
    parser.add_argument("--tokens", type=int, default=8192, help="held-out tokens for eval")
    parser.add_argument("--validation", action="store_true", help="also run the suite")
    parser.add_argument(
        "--validation-steps", type=int, nargs="+", help="with --validation: only these steps"
    )
    parser.add_argument("--machine", default=f"{platform.machine()}-cpu")
    parser.add_argument("--name", default="", help="the recipe's name (default: the folder's)")
    return parser.parse_args()


def transcoder_of(run: Path, step: int, last: int) -> Path:
    if step == last and (run / "transcoder").is_dir():
        return run / "transcoder"
    folder = run / f"transcoder-step-{step}"
    if not (folder / "config.json").is_file():
        subprocess.run([*CLI, "export-checkpoint", str(run), "--step", str(step)], check=True)
    return folder


def run_times(run: Path, step: int) -> dict[str, float | None]:
    """Wall and CPU seconds of training up to `step`."""
    for line in (run / "train_log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["step"] == step and "elapsed_s" in record:
            return {"wall_s": record["elapsed_s"], "cpu_s": record["cpu_s"]}
    start_file = run.parent / f"{run.name}.start"
    checkpoint = run / "checkpoints" / f"step-{step:08d}" / "state.json"
    if not start_file.is_file() or not checkpoint.is_file():
        return {"wall_s": None, "cpu_s": None}
    start = datetime.datetime.fromisoformat(start_file.read_text().strip().replace("Z", "+00:00"))
    return {"wall_s": round(checkpoint.stat().st_mtime - start.timestamp(), 1), "cpu_s": None}


def evaluate(transcoder: Path, tokens: int) -> dict[str, Any]:
    report = transcoder / "eval.json"
    if not report.is_file():
        args = [*CLI, "eval", "smollm2-135m", str(transcoder), "--tokens", str(tokens)]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(report.read_text())
    figures = {k: data[k] for k in ("n_tokens", "nmse", "l0", "dead_fraction")}
    figures["dense_fraction"] = data.get("dense_fraction")
    for name in ("replacement", "open_loop"):
        for key in ("top1_agreement", "kl", "loss_delta"):
            figures[f"{name}_{key}"] = data[name][key]
    return figures


def validate(transcoder: Path, machine: str, step: int) -> dict[str, Any]:
    """The suite's means for this checkpoint; a finished run of it today is reused."""
    date = datetime.date.today().isoformat()
    found = HERE / "results" / f"validation-{date}-{machine}-step{step}.json"
    if not _finished(found, transcoder):
        out = ROOT / "out" / "validation-curve" / f"step-{step}"
        args = [sys.executable, str(HERE / "validation.py"), "--transcoder", str(transcoder)]
        args += ["--out", str(out), "--machine", f"{machine}-step{step}"]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads(found.read_text())["summary"]
    return {k: v for k, v in summary.items() if k.startswith("mean_")}


def _finished(results: Path, transcoder: Path) -> bool:
    """Whether `results` holds the whole suite's validation of `transcoder`."""
    if not results.is_file():
        return False
    data = json.loads(results.read_text())
    suite = json.loads((HERE / "validation_prompts.json").read_text())
    same = Path(data["transcoder"]).resolve() == transcoder.resolve()
    return same and len(data["rows"]) == len(suite)


def table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k != "transcoder"]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for row in rows:
        cells = [_cell(row.get(k)) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main() -> None:
    args = parse_args()
    run = Path(args.run)
    last = json.loads((run / "train_config.json").read_text())["steps"]
    rows = []
    for step in args.steps:
        transcoder = transcoder_of(run, step, last)
        row: dict[str, Any] = {"step": step, **run_times(run, step)}
        row.update(evaluate(transcoder, args.tokens))
        if args.validation and (not args.validation_steps or step in args.validation_steps):
            row.update(validate(transcoder, args.machine, step))
        row["transcoder"] = str(transcoder)
        rows.append(row)
        print(json.dumps(row), flush=True)
    name = args.name or run.name
    date = datetime.date.today().isoformat()
    stem = HERE / "results" / f"training-curve-{name}-{date}-{args.machine}"
    config = json.loads((run / "train_config.json").read_text())
    meta = {"date": date, "machine": args.machine, "run": str(run), "settings": config}
    stem.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    text = f"# Training curve: {name}\n\n{json.dumps(meta)}\n\n{table(rows)}\n"
    stem.with_suffix(".md").write_text(text)
    print(table(rows))
    print(f"written {stem}.md/.json")


if __name__ == "__main__":
    main()
