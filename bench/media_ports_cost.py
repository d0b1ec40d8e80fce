"""What binding media sockets in a port range costs: `python -m bench.media_ports_cost`.

`[media] udp_ports` changes only how a connection's ICE host sockets are made
(sfu/media_ports.py), once per connection; the forwarding path is untouched
(the same aioice socket and protocol per connection). This times, in one run:

- gathering: one server-side peer connection's setLocalDescription (offer with one
  audio m-section, host candidates on 127.0.0.1) with aioice's ephemeral port
  (the baseline) and with a port range;
- a full range: MediaPorts.bind when most of the range is held by other
  sockets, so each bind scans past them (the worst case an admin's mis-sized
  range gives, before it is exhausted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import time
from typing import Any

from aiortc import RTCPeerConnection

from sfu.aiortc_hooks import gather_hosts_with, restrict_host_addresses
from sfu.ice import rtc_configuration
from sfu.media_ports import MediaPorts


async def _gather_ms(ports: MediaPorts | None) -> float:
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        offer = await pc.createOffer()
        if ports is not None:
            gather_hosts_with(pc, ports.gather_hosts)
        started = time.perf_counter()
        await pc.setLocalDescription(offer)
        return (time.perf_counter() - started) * 1000
    finally:
        await pc.close()


async def gathering(rounds: int, first: int) -> dict[str, float]:
    ports = MediaPorts(first, first + 999)
    baseline, ranged = [], []
    for _ in range(rounds):  # interleaved: the machine's noise falls on both alike
        baseline.append(await _gather_ms(None))
        ranged.append(await _gather_ms(ports))
    return {
        "baseline_ms": statistics.median(baseline),
        "range_ms": statistics.median(ranged),
        "ratio": statistics.median(ranged) / statistics.median(baseline),
    }


def full_range(first: int, size: int, held: int, by_others: bool) -> dict[str, Any]:
    """µs per bind with the first `held` ports of the range in use: by other programs'
    sockets (a failed bind() each to find out, then remembered for a few seconds) or by
    this node's own connections. The first bind, and the median of 200 more."""
    timings = []
    with contextlib.ExitStack() as stack:
        ports = MediaPorts(first, first + size - 1)
        for port in range(first, first + held):
            if by_others:
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                sock.bind(("127.0.0.1", port))
            else:
                stack.enter_context(ports.bind("127.0.0.1"))
        for _ in range(201):
            ports._cursor = 0  # from the range's start: past every port in use, the worst
            started = time.perf_counter()
            sock = ports.bind("127.0.0.1")
            timings.append((time.perf_counter() - started) * 1e6)
            sock.close()
    return {
        "held": held,
        "by": "others" if by_others else "ours",
        "first_bind_us": round(timings[0], 1),
        "bind_us": round(statistics.median(timings[1:]), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--first-port", type=int, default=20000, help="a free range of 1,000")
    args = parser.parse_args(argv)
    restrict_host_addresses(["127.0.0.1"])
    results: dict[str, Any] = asyncio.run(gathering(args.rounds, args.first_port))
    results["full_range"] = [
        full_range(args.first_port, 1000, held, by_others)
        for by_others in (False, True)
        for held in (0, 500, 990)
    ]
    print(results)
    return results


if __name__ == "__main__":
    main()
