"""Names of the places in a model that can be recorded or replaced.

The residual stream entering layer 0 (`embed`) already includes whatever the
architecture adds to token embeddings (Gemma's sqrt(d) scale, GPT-2's position
embeddings), so it is the token's true contribution to the residual.
"""

EMBED = "embed"
FINAL_NORM = "final_norm"
"""Output of the final norm: the vector the unembedding reads."""


def resid_pre(layer: int) -> str:
    """The residual stream entering `layer`."""
    return f"layers.{layer}.resid_pre"


def resid_post(layer: int) -> str:
    """The residual stream leaving `layer`."""
    return f"layers.{layer}.resid_post"


def resid_mid(layer: int) -> str:
    """The residual stream after `layer`'s attention, before the MLP's norm: what a
    `resid_mid` transcoder encodes (circuit-tracer's `hook_resid_mid`)."""
    return f"layers.{layer}.resid_mid"


def mlp_in(layer: int) -> str:
    """The MLP's input: the normalised residual stream, what a transcoder encodes."""
    return f"layers.{layer}.mlp_in"


def mlp_out(layer: int) -> str:
    """The MLP's contribution added to the residual, what a transcoder reconstructs."""
    return f"layers.{layer}.mlp_out"


def all_sites(n_layers: int) -> list[str]:
    names = [EMBED]
    for layer in range(n_layers):
        names += [resid_pre(layer), resid_mid(layer), mlp_in(layer), mlp_out(layer)]
        names.append(resid_post(layer))
    return [*names, FINAL_NORM]


TRANSCODER_INPUTS = ("mlp_in", "resid_mid")
"""The sites a transcoder may read: the MLP's (normalised) input, or the residual stream
before the MLP's norm."""


def transcoder_input(kind: str, layer: int) -> str:
    """The site named by a transcoder input kind (one of `TRANSCODER_INPUTS`) at `layer`."""
    if kind == "mlp_in":
        return mlp_in(layer)
    if kind == "resid_mid":
        return resid_mid(layer)
    raise ValueError(f"unknown transcoder input {kind!r}; choose from {TRANSCODER_INPUTS}")
