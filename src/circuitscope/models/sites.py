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


def mlp_in(layer: int) -> str:
    """The MLP's input: the normalised residual stream, what a transcoder encodes."""
    return f"layers.{layer}.mlp_in"


def mlp_out(layer: int) -> str:
    """The MLP's contribution added to the residual, what a transcoder reconstructs."""
    return f"layers.{layer}.mlp_out"


def all_sites(n_layers: int) -> list[str]:
    names = [EMBED]
    for layer in range(n_layers):
        names += [resid_pre(layer), mlp_in(layer), mlp_out(layer), resid_post(layer)]
    return [*names, FINAL_NORM]
