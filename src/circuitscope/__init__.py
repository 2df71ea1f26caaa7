"""circuitscope: circuits behind a language model's next token.

Train cross-layer transcoders on a Hugging Face causal LM, build a prompt's local
replacement model, compute and prune its attribution graph, and check the graph's
claims by intervening on the original model.
"""

from circuitscope.errors import CircuitscopeError

__version__ = "0.1.0"

__all__ = ["CircuitscopeError", "__version__"]
