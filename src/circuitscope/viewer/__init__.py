"""The graph page: a local server (`circuitscope serve`) and a single-file export."""
