"""The emulated links (bench/links.py): rate, loss and counters hold, on real sockets.

A UDP receiver runs on a test host (its own namespace); the test sends to it from
the server side, through the shaped link.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from bench.links import LinkSpec, Testbed

# Counts datagrams for `seconds` after the first, then prints {"packets", "bytes", "span"}.
RECEIVER = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 40000))
s.settimeout(3)
print("ready", flush=True)
n = size = 0
first = last = None
try:
    while True:
        data = s.recv(2000)
        last = time.monotonic()
        first = first or last
        n += 1
        size += len(data)
except socket.timeout:
    pass
print(json.dumps({"packets": n, "bytes": size, "span": (last or 0) - (first or 0)}))
"""


def _blast(address: str, count: int, size: int, interval: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        start = time.monotonic()
        for i in range(count):
            s.sendto(bytes(size), (address, 40000))
            delay = start + (i + 1) * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _receive(bed: Testbed, spec: LinkSpec, count: int, size: int, interval: float) -> dict:
    host = bed.add_host(spec)
    receiver = subprocess.Popen(
        host.command([sys.executable, "-c", RECEIVER, host.address]),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "ready"
    _blast(host.address, count, size, interval)
    out, _ = receiver.communicate(timeout=30)
    result = json.loads(out)
    result["counters"] = host.counters()
    return result


def test_rate_limits_what_reaches_the_host() -> None:
    with Testbed() as bed:
        # 2,000 x 1,000 B in 1 s is 16 Mbit/s offered to a 2 Mbit/s link with a 100 ms queue.
        shaped = _receive(bed, LinkSpec(rate_kbit=2000), 2000, 1000, 0.0005)
        control = _receive(bed, LinkSpec(), 2000, 1000, 0.0005)
    assert control["packets"] == 2000
    rate_kbit = shaped["bytes"] * 8 / 1000 / max(shaped["span"], 0.001)
    assert 1500 < rate_kbit < 2500, shaped
    # The queue holds ~100 ms: most of the offered burst is dropped by it.
    assert shaped["packets"] < 700, shaped
    # The counter is what the server sent, before the queue dropped any.
    assert shaped["counters"].packets_to_host == 2000
    assert shaped["counters"].dropped_to_host == 0


def test_random_loss_and_its_counter() -> None:
    with Testbed() as bed:
        result = _receive(bed, LinkSpec(loss_percent=10), 3000, 200, 0.0002)
    lost = 3000 - result["packets"]
    assert 180 < lost < 420, result  # 10 % of 3,000, binomial spread ~16
    assert result["counters"].dropped_to_host == lost
    assert result["counters"].packets_to_host == 3000


def test_shape_changes_in_place_and_keeps_counting() -> None:
    with Testbed() as bed:
        host = bed.add_host(LinkSpec(loss_percent=50))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(200):
                s.sendto(b"x", (host.address, 40001))
            host.shape(LinkSpec())
            for _ in range(100):
                s.sendto(b"x", (host.address, 40001))
        counters = host.counters()
    assert counters.packets_to_host == 300
    assert 50 < counters.dropped_to_host < 150


def test_names_are_removed_on_exit() -> None:
    with Testbed() as bed:
        host = bed.add_host()
        name = host.name
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in listed.split()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert bed.table.name not in tables


def test_executable_runs_on_the_host() -> None:
    with Testbed() as bed:
        host = bed.add_host()
        wrapper = host.executable("/usr/sbin/ip")
        shown = subprocess.run([str(wrapper), "-o", "addr"], capture_output=True, text=True)
    assert host.address in shown.stdout
    assert host.gateway not in shown.stdout


def test_the_udp_path_is_cut_whole_or_for_old_server_ports_only() -> None:
    with Testbed() as bed:
        cut = _receive(bed, LinkSpec(udp_dropped=True), 200, 100, 0.0005)
        host = bed.add_host(LinkSpec(server_udp_ports_dropped=(40100,)))
        receiver = subprocess.Popen(
            host.command([sys.executable, "-c", RECEIVER, host.address]),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        for port, count in ((40100, 100), (40101, 30)):  # an old connection's port, a new one
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host.gateway, port))
                for _ in range(count):
                    s.sendto(b"x" * 10, (host.address, 40000))
                    time.sleep(0.001)
        out, _ = receiver.communicate(timeout=30)
    assert cut["packets"] == 0 and cut["counters"].packets_to_host == 200
    assert json.loads(out)["packets"] == 30
