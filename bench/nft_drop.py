"""Packets dropped on purpose with nftables in the network namespace of a test or bench: a cut
path, as after a network change or during a blip on a pupil's link."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def table_name(name: str) -> str:
    """The nftables table of `dropping(name, ...)` in this process."""
    return f"urok_{name}_{os.getpid()}"


def nft(script: list[str]) -> None:
    subprocess.run(["nft", "-f", "-"], input="\n".join(script) + "\n", text=True, check=True)


@contextmanager
def dropping(name: str, matches: list[str], sets: tuple[str, ...] = ()) -> Iterator[str]:
    """Drop, while inside, every packet the input hook sees that matches one of
    `matches` (nft expressions, which may name the table's `sets`, e.g. "ports { type
    inet_service; }"); the table's name. On loopback both directions pass the input
    hook, where a drop looks like a lost packet, not a send error. The table name
    carries the pid (parallel runs share the namespace)."""
    assert matches
    table = table_name(name)
    nft([
        f"add table inet {table}",
        *(f"add set inet {table} {declaration}" for declaration in sets),
        f"add chain inet {table} in {{ type filter hook input priority 0; }}",
        *(f"add rule inet {table} in {match} drop" for match in matches),
    ])  # fmt: skip
    try:
        yield table
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)


def dropped_packets(name: str) -> int:
    """Packets dropped so far by the rules of `dropping(name, ...)` in this process that
    end in `counter` (0 if there are none)."""
    table = table_name(name)
    listing = subprocess.run(
        ["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True, check=True
    ).stdout
    total = 0
    for item in json.loads(listing)["nftables"]:
        for expression in item.get("rule", {}).get("expr", []):
            if "counter" in expression:
                total += int(expression["counter"]["packets"])
    return total
