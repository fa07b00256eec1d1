"""Where the dashboard and Flower listen: this machine only, unless the user means otherwise (``--allow-remote``).

Both serve plain HTTP with basic auth, so on an address other machines can reach, the password crosses the
network readable: that takes an explicit flag, and comes with a warning.
"""

from __future__ import annotations

import ipaddress
import sys

from importer.exitcodes import EXIT_CONFIG, CommandError


def is_loopback(address: str) -> bool:
    """Only this machine can reach ``address`` (127.0.0.0/8, ::1, localhost)."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_address(what: str, address: str, allow_remote: bool) -> None:
    """Refuse (one line, exit 3) an address other machines can reach unless ``allow_remote``; warn when allowed."""
    if is_loopback(address):
        return
    if not allow_remote:
        raise CommandError(f"--address {address} lets other machines reach the {what} over plain HTTP (basic auth, "
                           "the password readable on the network): add --allow-remote to mean it", EXIT_CONFIG)
    print(f"warning: the {what} listens on {address}: other machines can reach it, over plain HTTP with basic auth "
          "(the password crosses the network readable); an SSH tunnel to 127.0.0.1 is safer", file=sys.stderr)
