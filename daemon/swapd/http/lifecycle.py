"""A client connection's lifecycle as one table: states, triggers and legal transitions.

The server's connection loop consults `TRANSITIONS` for every change and
keeps no other record of where a connection is: whether it may take another
request, whether the request body is still coming, whether it must close
after the current response. A transition not in the table is a bug and
raises `IllegalTransition`; the tests walk the table.

Two rows are deliberately absent: a connection cannot go back to `idle`
while the request body is unread (`body` + `response_done`), since unread
bytes cannot be skipped safely, and nothing leaves `closed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ConnState(StrEnum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    RESPONDING = "responding"
    CLOSING = "closing"
    CLOSED = "closed"


class Trigger(StrEnum):
    BYTES = "bytes"  # the first bytes of a request head arrived
    HEAD_DONE = "head_done"  # a whole, valid request head was parsed; the app is called
    BODY_DONE = "body_done"  # the end of the request body was read
    RESPONSE_DONE = "response_done"  # the app returned and its response is complete
    CLOSE = "close"  # no further request: asked for, bad input, timeout, failure, shutdown
    EOF = "eof"  # the client closed or broke its side


S, T = ConnState, Trigger

TRANSITIONS: Mapping[tuple[ConnState, Trigger], ConnState] = MappingProxyType(
    {
        (S.IDLE, T.BYTES): S.HEAD,
        (S.IDLE, T.CLOSE): S.CLOSED,
        (S.IDLE, T.EOF): S.CLOSED,
        (S.HEAD, T.HEAD_DONE): S.BODY,
        (S.HEAD, T.CLOSE): S.CLOSING,
        (S.HEAD, T.EOF): S.CLOSED,
        (S.BODY, T.BODY_DONE): S.RESPONDING,
        (S.BODY, T.CLOSE): S.CLOSING,
        (S.BODY, T.EOF): S.CLOSING,
        (S.RESPONDING, T.RESPONSE_DONE): S.IDLE,
        (S.RESPONDING, T.CLOSE): S.CLOSING,
        (S.RESPONDING, T.EOF): S.CLOSING,
        (S.CLOSING, T.BODY_DONE): S.CLOSING,
        (S.CLOSING, T.CLOSE): S.CLOSING,
        (S.CLOSING, T.EOF): S.CLOSING,
        (S.CLOSING, T.RESPONSE_DONE): S.CLOSED,
    }
)

NOTES: Mapping[tuple[ConnState, Trigger], str] = MappingProxyType(
    {
        (S.IDLE, T.BYTES): "the head timeout starts",
        (S.IDLE, T.CLOSE): "keep-alive timeout, shutdown, or evicted to make room",
        (S.IDLE, T.EOF): "the client ended the connection between requests",
        (S.HEAD, T.HEAD_DONE): "the app is called; it reads the body as it needs",
        (S.HEAD, T.CLOSE): "bad, oversized or late head: an error response, then close",
        (S.HEAD, T.EOF): "the client left mid-head",
        (S.BODY, T.BODY_DONE): "the whole request was read",
        (S.BODY, T.CLOSE): "bad body, or the app answered without reading it all",
        (S.BODY, T.EOF): "the client left mid-body: the app gets http.disconnect",
        (S.RESPONDING, T.RESPONSE_DONE): "keep-alive: wait for the next request",
        (S.RESPONDING, T.CLOSE): "the client asked, HTTP/1.0, an app failure, or shutdown",
        (S.RESPONDING, T.EOF): "the client left: the app gets http.disconnect",
        (S.CLOSING, T.BODY_DONE): "the body ended after the connection was marked to close",
        (S.CLOSING, T.CLOSE): "already closing",
        (S.CLOSING, T.EOF): "the client left while the response was finishing",
        (S.CLOSING, T.RESPONSE_DONE): "the last response is out: close",
    }
)

LEGEND: Mapping[ConnState, str] = MappingProxyType(
    {
        S.IDLE: "waiting for a request (keep-alive timeout)",
        S.HEAD: "reading a request head (head timeout, size bound)",
        S.BODY: "the app runs; the request body is still arriving",
        S.RESPONDING: "the request was read whole; the app responds",
        S.CLOSING: "the current response is the last one",
        S.CLOSED: "closed",
    }
)


class IllegalTransition(RuntimeError):
    def __init__(self, state: ConnState, trigger: Trigger) -> None:
        super().__init__(f"no connection transition from {state} on {trigger}")
        self.state = state
        self.trigger = trigger


def next_state(state: ConnState, trigger: Trigger) -> ConnState:
    """The state after `trigger`; raises IllegalTransition when the table has no row."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(state, trigger) from None


def render_table() -> str:
    """The transition table as Markdown, for the docs."""
    rows = ["| from | trigger | to | what happens |", "|---|---|---|---|"]
    for (state, trigger), target in TRANSITIONS.items():
        rows.append(f"| {state} | {trigger} | {target} | {NOTES[(state, trigger)]} |")
    return "\n".join(rows)
