"""A step of one module's Lua script run inside another module's script, in its round trip: a ``Rider``.

Each module keeps its own Lua (the limiter's ``done`` and ``admit``, the row store's ``finish`` and the start of a
row's attempt); a host script that takes a rider runs the rider's body as a Lua function of its own keys and
arguments, which the host receives after its own: KEYS end with the rider's keys, ARGV with the rider's arguments and
then the two counts. Either first, its answer dropped (``with_rider``: ``finish`` carrying the limiter's ``done``),
or where the host calls it (``with_rider(..., first=False)``: the limiter's ``admit`` runs the row's start only once
the request is admitted, and admits it only if the start went through). One round trip less per row on the hot path
(tasks.runner) each time, each script still tested on its own.
"""

from __future__ import annotations

from typing import NamedTuple


class Rider(NamedTuple):
    #: A Lua identifier: the host registers one script per rider name.
    name: str
    #: Lua run as ``function(KEYS, ARGV)``; what it returns is dropped, or handed to the host (``first=False``).
    body: str
    keys: tuple
    args: tuple


#: The host script's first lines when it carries a rider (``with_rider``): the rider's keys and arguments taken off
#: the end; ``host_keys`` is how many of KEYS are the host's own.
_TAKE_RIDER = """
local rider_keys, rider_args = {}, {}
local nk, na = tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
for i = #KEYS - nk + 1, #KEYS do rider_keys[#rider_keys + 1] = KEYS[i] end
for i = #ARGV - 1 - na, #ARGV - 2 do rider_args[#rider_args + 1] = ARGV[i] end
local host_keys, riding = #KEYS - nk, true
"""


def with_rider(rider_body: str, host: str, *, first: bool = True) -> str:
    """The text of ``host`` (a script body) carrying ``rider_body`` on the trailing keys and arguments: run first,
    or, with ``first=False``, where the host calls ``rider(rider_keys, rider_args)`` (it sees ``riding`` true and
    ``host_keys``; the host's text without a rider starts with ``NO_RIDER``)."""
    return ("local function rider(KEYS, ARGV)\n" + rider_body + "\nend\n" + _TAKE_RIDER +
            ("rider(rider_keys, rider_args)\n" if first else "") + host)


#: What a host that calls its rider itself starts with when it carries none (``with_rider(..., first=False)``).
NO_RIDER = "local host_keys, riding, rider, rider_keys, rider_args = #KEYS, false, nil, nil, nil\n"


def append(rider: Rider, keys: list, args: list) -> None:
    """Add ``rider``'s keys and arguments (and the counts) after a host's own."""
    keys.extend(rider.keys)
    args.extend(rider.args)
    args.extend((len(rider.keys), len(rider.args)))
