"""Routing: the run loop, the pure FIFO scheduler and the swap planners.

HTTP handlers and the control socket talk to a `Router` only: `lease` a
model to relay a request, `unload`, `explain`, `decisions`, `snapshot`.
"""
