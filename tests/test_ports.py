"""``importer.local.ports.start_on_free_port``: which failures start a server again on another port (pure logic;
the real races, with a port held by another program, are in tests/test_local_stack.py)."""

from __future__ import annotations

import socket

import pytest

from importer.local.ports import DidNotStart, free_port, port_free, start_on_free_port


def starter(failures: list[DidNotStart]):
    """A start function that fails with the given errors in turn, then answers ``started``; records its ports."""
    tried: list[int] = []

    def start(port: int) -> str:
        tried.append(port)
        if failures:
            raise failures.pop(0)
        return "started"

    return start, tried


def test_a_server_that_exited_starts_again_on_another_free_port() -> None:
    start, tried = starter([DidNotStart("taken", exited=True), DidNotStart("taken", exited=True)])
    assert start_on_free_port(start, 1) == ("started", tried[-1])
    assert tried[0] == 1 and len(tried) == 3 and len(set(tried)) == 3


def test_a_server_that_did_not_answer_in_time_is_not_started_again() -> None:
    start, tried = starter([DidNotStart("too slow", exited=False)])
    with pytest.raises(DidNotStart, match="too slow"):
        start_on_free_port(start, 1)
    assert tried == [1]


def test_after_as_many_tries_as_allowed_the_last_failure_is_raised() -> None:
    start, tried = starter([DidNotStart(f"taken {i}", exited=True) for i in range(5)])
    with pytest.raises(DidNotStart, match="taken 2"):
        start_on_free_port(start)
    assert len(tried) == 3
    start, tried = starter([DidNotStart("taken", exited=True)])
    with pytest.raises(DidNotStart):
        start_on_free_port(start, 7, tries=1)
    assert tried == [7]


def test_a_free_port_is_free_and_a_listening_one_is_not() -> None:
    port = free_port()
    assert port_free(port)
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        assert not port_free(port)
