"""swapd's embedded demo: a portable llama.cpp server launcher and where its model lives.

Nothing in the daemon imports this package; the demo config runs
`swapd-llama-server` as a model's `cmd`, exactly as a user's config runs
their own `llama-server` binary.
"""
