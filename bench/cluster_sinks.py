"""The cluster bench's sink mode: the server does all its work, the bots pay for little of it.

A server forwards each published packet to every other member of the lesson:
decrypt once, then encrypt and `sendto` once per subscriber. On one machine
the bots that receive all of that (aiortc: a datagram callback, SRTP, RTP
parsing in Python per packet) cost about what the server does, so with the
server and the bots on the same two cores the bench runs out of CPU before
the server (docs/performance.md, "Cluster: one machine, 1 and 2 workers").

With `--sinks`, nftables drops on arrival the RTP sent to every bot but a few
"watchers" per lesson, each "sink" from the moment its subscriber connection
has a port (so that the joins never have the bench receive the whole load):
the server still encrypts and sends every packet (its `sendto` goes through
the loopback path up to the input hook), but no bot process wakes up for it.
What is dropped is only media (first byte 128-191: RTP version 2) that is not
RTCP (second byte 192-223, RFC 5761): STUN (first byte 0-3) still answers the
server's ICE consent checks, DTLS (20-63) keeps the association, and the
server's sender reports still arrive. The sinks' receivers then report no new
packets (no loss either), which the server's weak-link watch reads as "too
little to tell", not as a weak link: the report shows forwarded packets
against what the fan-out predicts (packets in x receivers) to prove nothing
was held back, and the rule's counter against what it forwarded shows the
sinks' share did leave the server. The watchers process and count what they
receive, frames included, to show the forwarding is real; the bench waits for
the watchers' media only.

The rule lives in the bench's network namespace: run it as root in one of
its own (`unshare -n sh -c 'ip link set lo up && exec python -m bench.cluster ...'`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from bench.bot import Bot
from bench.nft_drop import dropped_packets, dropping, nft

TABLE = "sinks"  # bench/nft_drop.py's naming: urok_<name>_<pid>
# RTP version 2 (top bits 10), and not RTCP (packet types 192-223 in the second byte).
MEDIA_ONLY = "@th,64,8 & 0xc0 == 0x80 @th,72,8 != 192-223"


class SinkError(RuntimeError):
    pass


def check_nft() -> None:
    """Fail early, with the way to run it, where nftables cannot be used."""
    nft = shutil.which("nft")
    if nft is None:
        raise SinkError("--sinks needs nftables (apt-get install nftables)")
    listing = subprocess.run([nft, "list", "tables"], capture_output=True, text=True)
    if listing.returncode != 0:
        raise SinkError(
            "--sinks needs nft as root, in a network namespace of its own: "
            "unshare -n sh -c 'ip link set lo up && exec python -m bench.cluster --sinks ...' "
            f"({listing.stderr.strip()})"
        )


def subscriber_ports(bots: Sequence[Bot]) -> set[int]:
    """The local UDP ports of these bots' subscriber connections."""
    ports: set[int] = set()
    for bot in bots:
        found = Bot.udp_ports(bot.subscriber)
        if not found:
            raise SinkError(f"bot {bot.id} has no subscriber connection to drop media on")
        ports |= found
    return ports


class Sinks:
    """The drop rule, on a set of UDP ports that grows as sinks are added."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.bots: list[Bot] = []

    def add(self, bots: Sequence[Bot]) -> None:
        """From now on the media sent to `bots` is dropped on arrival."""
        if bots:
            listed = ", ".join(str(port) for port in sorted(subscriber_ports(bots)))
            nft([f"add element inet {self.table} ports {{ {listed} }}"])
            self.bots.extend(bots)


@contextmanager
def sinking() -> Iterator[Sinks]:
    """The table of the drop rule (its port set empty at first), removed on the way out."""
    rule = f"udp dport @ports {MEDIA_ONLY} counter"
    with dropping(TABLE, [rule], sets=("ports { type inet_service; }",)) as table:
        yield Sinks(table)


def sunk_packets() -> int:
    """Media packets dropped so far by `sinking` in this process."""
    return dropped_packets(TABLE)


async def packets_sent(bots: Sequence[Bot]) -> int:
    """RTP packets these bots' publisher connections have sent (aiortc's own stats)."""
    total = 0
    for bot in bots:
        if bot.publisher is None:
            continue
        report = await bot.publisher.getStats()
        total += sum(
            int(stats.packetsSent) for stats in report.values() if stats.type == "outbound-rtp"
        )
    return total
