"""Which attention-sink token keeps SmolLM2-Instruct's next-token predictions closest to
the prompt run as tokenized (no sink), over the validation suite's prompts.

    .venv/bin/python benchmarks/bos_choice.py [--machine NAME]

For each candidate sink token c and each prompt: KL(p_plain ‖ p_c) of the next-token
distributions, whether the top token is the same, and the expected token's probability.
Prints a table and writes benchmarks/results/bos-choice-<date>-<machine>.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import torch

from circuitscope.models.loading import load_model

HERE = Path(__file__).resolve().parent
CANDIDATES = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def distributions(loaded, prompt: str, sink: int | None) -> torch.Tensor:
    ids = loaded.tokenizer(prompt).input_ids
    ids = ids if sink is None else [sink, *ids]
    with torch.no_grad():
        logits = loaded.adapter.run(torch.tensor([ids])).logits[0, -1].double()
    return torch.softmax(logits, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--machine", default=platform.node() or "cpu")
    args = parser.parse_args()
    loaded = load_model("smollm2-135m")
    prompts = json.loads((HERE / "validation_prompts.json").read_text())
    rows = {name: {"kl": [], "top1": [], "p_expected": []} for name in ("none", *CANDIDATES)}
    for item in prompts:
        plain = distributions(loaded, item["prompt"], None)
        expected = loaded.tokenizer.encode(item["expected"], add_special_tokens=False)[0]
        rows["none"]["p_expected"].append(float(plain[expected]))
        for name in CANDIDATES:
            sink = loaded.tokenizer.convert_tokens_to_ids(name)
            assert isinstance(sink, int), name  # one token, one id
            p = distributions(loaded, item["prompt"], sink)
            kl = float((plain * (plain.clamp_min(1e-30).log() - p.clamp_min(1e-30).log())).sum())
            rows[name]["kl"].append(kl)
            rows[name]["top1"].append(int(p.argmax() == plain.argmax()))
            rows[name]["p_expected"].append(float(p[expected]))
    lines = [
        f"# Attention-sink token for SmolLM2-135M-Instruct "
        f"({datetime.date.today()}, {args.machine})",
        "",
        f"{len(prompts)} prompts of benchmarks/validation_prompts.json; the reference is the "
        "prompt as tokenized (SmolLM2's tokenizer adds no BOS). Command: "
        "`.venv/bin/python benchmarks/bos_choice.py`.",
        "",
        "| sink token | mean KL(plain ‖ with sink) | max KL | top-1 same | mean p(expected) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in rows.items():
        mean_p = sum(values["p_expected"]) / len(prompts)
        if name == "none":
            n = len(prompts)
            lines.append(f"| (none: as tokenized) | 0 | 0 | {n}/{n} | {mean_p:.3f} |")
            continue
        kl = values["kl"]
        lines.append(
            f"| `{name}` | {sum(kl) / len(kl):.3f} | {max(kl):.3f} | "
            f"{sum(values['top1'])}/{len(prompts)} | {mean_p:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = HERE / "results" / f"bos-choice-{datetime.date.today()}-{args.machine}.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
