"""Every message kind survives encode -> decode unchanged, and the schema file is current."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapctl import codec, protocol, schema
from tests.unit.control import strategies

ROOT = Path(__file__).resolve().parents[3]

CLIENT_TYPES = protocol.message_types(protocol.ClientMessage)
SERVER_TYPES = protocol.message_types(protocol.ServerMessage)
EVENT_TYPES = protocol.message_types(protocol.EventPayload)


def _roundtrip(message: msgspec.Struct, decoder: codec.Decoder) -> None:
    line = codec.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoder.feed(line)
    assert decoder.next() == message
    assert decoder.next() is None


@pytest.mark.parametrize("tag", sorted(CLIENT_TYPES))
def test_every_client_message_roundtrips(tag: str) -> None:
    decoder = codec.client_decoder()

    @given(strategies.for_struct(CLIENT_TYPES[tag]))
    @settings(max_examples=40)
    def check(message: msgspec.Struct) -> None:
        _roundtrip(message, decoder)

    check()


@pytest.mark.parametrize("tag", sorted(SERVER_TYPES))
def test_every_server_message_roundtrips(tag: str) -> None:
    decoder = codec.server_decoder()

    @given(strategies.for_struct(SERVER_TYPES[tag]))
    @settings(max_examples=40)
    def check(message: msgspec.Struct) -> None:
        _roundtrip(message, decoder)

    check()


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_event_kind_roundtrips_inside_an_event(kind: str) -> None:
    decoder = codec.server_decoder()

    @given(strategies.for_struct(EVENT_TYPES[kind]), st.integers(0, 2**31))
    @settings(max_examples=30)
    def check(data: protocol.EventData, sub: int) -> None:
        _roundtrip(protocol.Event(subscription=sub, topic=data.topic, data=data), decoder)

    check()


def test_tags_are_unique_and_match_the_wire_names() -> None:
    assert set(CLIENT_TYPES).isdisjoint(SERVER_TYPES)
    line = codec.encode(protocol.StatusRequest(id=7))
    assert json.loads(line) == {"type": "status", "id": 7}


def test_event_payload_topics_are_known_topics() -> None:
    for cls in EVENT_TYPES.values():
        assert cls.topic in (*protocol.TOPICS, "misc")
    # Every topic a client may subscribe to has a payload kind of its own.
    covered = {cls.topic for cls in EVENT_TYPES.values()}
    assert set(protocol.TOPICS) <= covered


def test_unknown_fields_are_ignored_so_daemons_can_add_fields() -> None:
    decoder = codec.server_decoder()
    decoder.feed(b'{"type":"lagged","subscription":3,"missed":9,"added_later":{"x":1}}\n')
    assert decoder.next() == protocol.Lagged(subscription=3, missed=9)


def test_minimal_hand_typed_requests_decode() -> None:
    decoder = codec.client_decoder()
    decoder.feed(b'{"type":"hello"}\n{"type":"status"}\n{"type":"unload","all":true}\n')
    assert list(decoder) == [
        protocol.Hello(),
        protocol.StatusRequest(id=0),
        protocol.UnloadRequest(all=True),
    ]


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (protocol.Problem(message="bad"), "bad"),
        (protocol.Problem(message="bad", path="models.a.ttl"), "models.a.ttl: bad"),
        (protocol.Problem(message="bad", file="c.yaml"), "c.yaml: bad"),
        (
            protocol.Problem(message="expected int", file="c.yaml", line=12, column=5, path="x.y"),
            "c.yaml:12:5: x.y: expected int",
        ),
        (protocol.Problem(message="m", file="c.yaml", line=3), "c.yaml:3: m"),
    ],
)
def test_problem_format_matches_the_config_loader(problem: protocol.Problem, text: str) -> None:
    assert problem.format() == text


def test_every_error_code_is_documented() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    for code in protocol.ERROR_CODES:
        assert f"`{code}`" in doc, code


def test_schema_file_is_current() -> None:
    committed = (ROOT / "docs" / "protocol.schema.json").read_text()
    assert committed == schema.render(), (
        "docs/protocol.schema.json is stale: run `python -m swapctl.schema -o "
        "docs/protocol.schema.json`"
    )


def test_schema_names_every_message_kind() -> None:
    doc = schema.protocol_schema()
    client_mapping = doc["$defs"]["ClientMessage"]["discriminator"]["mapping"]
    server_mapping = doc["$defs"]["ServerMessage"]["discriminator"]["mapping"]
    assert set(client_mapping) == set(CLIENT_TYPES)
    assert set(server_mapping) == set(SERVER_TYPES)
    assert doc["x-protocol-version"] == protocol.PROTOCOL_VERSION


def test_schema_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert schema.main(["-o", str(out)]) == 0
    assert out.read_text() == schema.render()
