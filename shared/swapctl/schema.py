"""The JSON Schema of the control protocol, generated from the Structs.

`python -m swapctl.schema > docs/protocol.schema.json` regenerates the
committed file (`-o PATH` writes it directly); a test fails when it is stale.
Never edit the JSON by hand: change `swapctl.protocol` and regenerate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from swapctl.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    TOPICS,
    ClientMessage,
    ServerMessage,
)


def protocol_schema() -> dict[str, Any]:
    """One document: `client` and `server` message unions plus shared definitions."""
    (client, server), components = msgspec.json.schema_components(
        [ClientMessage, ServerMessage], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/swapd/swapd/docs/protocol.schema.json",
        "title": "swapd control protocol",
        "description": (
            "Newline-delimited JSON over a Unix socket; each line is one message tagged by "
            f"'type'. Protocol version {PROTOCOL_VERSION}; lines are at most {MAX_LINE_BYTES} "
            f"bytes. Event topics: {', '.join(TOPICS)}. See docs/protocol.md."
        ),
        "x-protocol-version": PROTOCOL_VERSION,
        "oneOf": [
            {"title": "client message", "$ref": "#/$defs/ClientMessage"},
            {"title": "server message", "$ref": "#/$defs/ServerMessage"},
        ],
        "$defs": {
            "ClientMessage": {"title": "a line a client sends", **client},
            "ServerMessage": {"title": "a line the daemon sends", **server},
            **dict(sorted(components.items())),
        },
    }


def render() -> str:
    """The schema file's exact text (stable key order, trailing newline)."""
    return json.dumps(protocol_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swapctl.schema", description="Print the control protocol's JSON Schema."
    )
    parser.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    text = render()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
