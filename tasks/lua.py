"""A step of one module's Lua script run inside another module's script, in its round trip: a ``Rider``.

Each module keeps its own Lua (the limiter's ``done``, the row store's ``finish``); a host script that takes a rider
runs the rider's body first, as a Lua function of its own keys and arguments, which the host receives after its
own: KEYS end with the rider's keys, ARGV with the rider's arguments and then the two counts. One round trip less
per row on the hot path (tasks.runner), each script still tested on its own.
"""

from __future__ import annotations

from typing import NamedTuple


class Rider(NamedTuple):
    #: A Lua identifier: the host registers one script per rider name.
    name: str
    #: Lua run as ``function(KEYS, ARGV)``; what it returns is dropped.
    body: str
    keys: tuple
    args: tuple


#: The host script's first lines when it carries a rider (``with_rider``).
_RUN_RIDER = """
local rider_keys, rider_args = {}, {}
local nk, na = tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
for i = #KEYS - nk + 1, #KEYS do rider_keys[#rider_keys + 1] = KEYS[i] end
for i = #ARGV - 1 - na, #ARGV - 2 do rider_args[#rider_args + 1] = ARGV[i] end
rider(rider_keys, rider_args)
"""


def with_rider(rider_body: str, host: str) -> str:
    """The text of ``host`` (a script body) that first runs ``rider_body`` on the trailing keys and arguments."""
    return "local function rider(KEYS, ARGV)\n" + rider_body + "\nend\n" + _RUN_RIDER + host


def append(rider: Rider, keys: list, args: list) -> None:
    """Add ``rider``'s keys and arguments (and the counts) after a host's own."""
    keys.extend(rider.keys)
    args.extend(rider.args)
    args.extend((len(rider.keys), len(rider.args)))
