"""The L2 training loop: synthesize, select, train, evaluate, deploy."""
