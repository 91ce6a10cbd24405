"""The HTTP API: the OpenAI/Anthropic relay and the admin routes.

`create_app(services)` (in `app.py`) builds the ASGI application that
`swapd.daemon` serves with its own HTTP/1.1 server (`server.py`) inside
its nursery. Pure pieces
(errors, auth, model extraction, name resolution, filters, listing, the
loading-state text) are separate modules with no I/O.
"""
