"""`[media] udp_ports`: the UDP port range of the node's media sockets (sfu/media_ports.py)."""

from __future__ import annotations

import re
from typing import Any

_RANGE = re.compile(r"^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$")
# Below 1024 a port needs root or CAP_NET_BIND_SERVICE; the service runs as its own user.
LOWEST_PORT = 1024


def parse_udp_ports(value: Any) -> tuple[int, int] | None:
    """ "40000-40999" (or one port, "40000") -> (40000, 40999); "" -> None (any port).
    ValueError with the message for the operator."""
    if not isinstance(value, str):
        raise ValueError('media.udp_ports must be a string such as "40000-40999"')
    if not value.strip():
        return None
    match = _RANGE.match(value)
    if match is None:
        raise ValueError(f'media.udp_ports: {value!r} is not a range such as "40000-40999"')
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not LOWEST_PORT <= first <= last <= 65535:
        raise ValueError(
            f"media.udp_ports: {value!r} must be ports from {LOWEST_PORT} to 65535, the lower first"
        )
    return first, last
