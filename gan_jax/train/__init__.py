"""Train state, pure train step and the loop."""
