"""The peer policy: the daemon's uid, root, or a member of the control group."""

from __future__ import annotations

import os
import socket

from hypothesis import given
from hypothesis import strategies as st

from swapd.control.peercred import (
    is_peer_allowed,
    parse_proc_groups,
    peer_credentials,
    process_groups,
)

DAEMON = 1000
GROUP = 2000


def test_same_uid_is_allowed() -> None:
    assert is_peer_allowed(DAEMON, [], daemon_uid=DAEMON, group_gid=None)


def test_root_is_allowed() -> None:
    assert is_peer_allowed(0, [], daemon_uid=DAEMON, group_gid=None)


def test_other_uid_without_a_group_is_refused() -> None:
    assert not is_peer_allowed(1001, [GROUP], daemon_uid=DAEMON, group_gid=None)


def test_group_member_is_allowed_only_when_a_group_is_configured() -> None:
    assert is_peer_allowed(1001, [5, GROUP], daemon_uid=DAEMON, group_gid=GROUP)
    assert not is_peer_allowed(1001, [5, 6], daemon_uid=DAEMON, group_gid=GROUP)


@given(
    st.integers(1, 70000),
    st.frozensets(st.integers(0, 70000), max_size=5),
    st.integers(1, 70000),
    st.none() | st.integers(0, 70000),
)
def test_policy_is_exactly_the_three_rules(
    peer: int, groups: frozenset[int], daemon: int, group: int | None
) -> None:
    expected = peer == daemon or (group is not None and group in groups)
    assert is_peer_allowed(peer, groups, daemon_uid=daemon, group_gid=group) == expected
    assert is_peer_allowed(0, groups, daemon_uid=daemon, group_gid=group)


def test_parse_proc_groups() -> None:
    text = "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNgid:\t0\n"
    assert parse_proc_groups(text) == frozenset({4, 24, 27, 1000})
    assert parse_proc_groups("Groups:\t\n") == frozenset()
    assert parse_proc_groups("Name:\tx\n") is None


def test_own_process_groups_include_the_primary_gid() -> None:
    groups = process_groups(os.getpid(), os.getuid(), os.getgid())
    assert os.getgid() in groups and set(os.getgroups()) <= groups


def test_peer_credentials_of_a_socketpair_are_our_own() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        peer = peer_credentials(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
