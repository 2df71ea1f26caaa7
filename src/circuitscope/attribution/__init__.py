"""The local replacement model of a prompt and the edges of its attribution graph."""
