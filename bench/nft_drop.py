"""Packets dropped on purpose with nftables in the network namespace of a test or bench: a cut
path, as after a network change or during a blip on a pupil's link."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dropping(name: str, matches: list[str]) -> Iterator[None]:
    """Drop, while inside, every packet the input hook sees that matches one of
    `matches` (nft expressions). On loopback both directions pass the input hook, where
    a drop looks like a lost packet, not a send error. The table name carries the pid
    (parallel runs share the namespace)."""
    assert matches
    table = f"urok_{name}_{os.getpid()}"
    script = [
        f"add table inet {table}",
        f"add chain inet {table} in {{ type filter hook input priority 0; }}",
        *(f"add rule inet {table} in {match} drop" for match in matches),
    ]
    subprocess.run(["nft", "-f", "-"], input="\n".join(script) + "\n", text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)


def dropped_packets(name: str) -> int:
    """Packets dropped so far by the rules of `dropping(name, ...)` in this process that
    end in `counter` (0 if there are none)."""
    table = f"urok_{name}_{os.getpid()}"
    listing = subprocess.run(
        ["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True, check=True
    ).stdout
    total = 0
    for item in json.loads(listing)["nftables"]:
        for expression in item.get("rule", {}).get("expr", []):
            if "counter" in expression:
                total += int(expression["counter"]["packets"])
    return total
