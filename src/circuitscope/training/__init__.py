"""Training transcoders: losses, the loop, checkpoints, distributed launch, evaluation."""
