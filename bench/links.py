"""Emulated home links: test hosts in network namespaces, each behind its own shaped link.

This kernel has no netem, so a link is built from what it has:

- a veth pair between the namespace the caller runs in (the "server side") and a
  new named namespace (the host: a browser or a bot runs there);
- `tc tbf` on each end of the pair: rate and queue (the queue bounds the delay a
  burst can build up, like a home router's buffer);
- nftables rules on the server side: random loss in either direction
  (`numgen random mod 100 < N drop`, or per 1000 for fractions of a percent) and
  counters of what the server sent towards the host, measured before the
  shaping, i.e. what the server put on that link.

Only addresses inside 10.77.0.0/16 on these veth pairs are used (10.(77+N).0.0/16
with `UROK_LINKS_BLOCK=N`: parallel test workers share one namespace, so each takes
its own block); nothing leaves the machine. Run as root inside a namespace of its
own (the test suite runs in `unshare -n`). Namespace and table names carry the
process id, so parallel runs do not collide.

    with Testbed() as bed:
        pupil = bed.add_host(LinkSpec(rate_kbit=1500, queue_ms=100, loss_percent=3))
        pupil.command(["/usr/bin/chromium", ...])    # run something on that host
        pupil.gateway                                # the server's address on that link
        pupil.counters().bytes_to_host               # what the server sent it
        pupil.shape(LinkSpec())                      # the link recovers
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

# Burst of the token bucket: a few full-size packets, so the rate holds at
# millisecond scale (a large burst would let a keyframe through unshaped).
_MIN_BURST_BYTES = 4 * 1514


def _network() -> str:
    """The first two octets of this process's test-host addresses."""
    block = os.environ.get("UROK_LINKS_BLOCK", "0")
    if not block.isdigit() or int(block) > 99:
        raise LinkError(f"UROK_LINKS_BLOCK must be a number from 0 to 99, not {block!r}")
    return f"10.{77 + int(block)}"


def _run(argv: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LinkError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _disable_ipv6(device: str, netns: str | None) -> None:
    knob = f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6"
    if netns is None:
        Path(knob).write_text("1\n")
    else:  # /proc/sys/net is the reading process's namespace's
        _run(["ip", "netns", "exec", netns, "sh", "-c", f"echo 1 > {knob}"])


class LinkError(RuntimeError):
    """A namespace, link or rule could not be set up (not root? tool missing?)."""


@dataclass(frozen=True)
class LinkSpec:
    """One direction's rate applies to both unless up_rate_kbit is given; None: unshaped."""

    rate_kbit: int | None = None
    queue_ms: int = 100
    loss_percent: float = 0.0  # random loss towards the host (downlink)
    up_rate_kbit: int | None = None
    up_loss_percent: float = 0.0  # random loss from the host (uplink)
    # The media path cut: every UDP packet both ways, or only those of these server
    # ports (its old connections, as after a network change; new ones get through).
    udp_dropped: bool = False
    server_udp_ports_dropped: tuple[int, ...] = ()


@dataclass(frozen=True)
class Counters:
    bytes_to_host: int
    packets_to_host: int
    dropped_to_host: int  # by the random-loss rule (not by the queue)
    bytes_from_host: int
    packets_from_host: int


def _tbf(device: str, rate_kbit: int | None, queue_ms: int, netns: str | None) -> list[str]:
    prefix = ["tc", "-n", netns] if netns else ["tc"]
    if rate_kbit is None:
        return [*prefix, "qdisc", "del", "dev", device, "root"]
    burst = max(_MIN_BURST_BYTES, rate_kbit * 1000 // 8 // 100)  # >= 10 ms of the rate
    return [
        *prefix,
        "qdisc",
        "replace",
        "dev",
        device,
        "root",
        "tbf",
        "rate",
        f"{rate_kbit}kbit",
        "burst",
        str(burst),
        "latency",
        f"{queue_ms}ms",
    ]


def _up_rate(spec: LinkSpec) -> int | None:
    return spec.up_rate_kbit if spec.up_rate_kbit is not None else spec.rate_kbit


def _loss_rule(percent: float) -> str:
    """nft expression dropping `percent` % at random (to 0.1 %)."""
    per_mille = round(percent * 10)
    return f"numgen random mod 1000 < {per_mille} counter drop"


def _udp_cut(spec: LinkSpec, server_port: str = "dport") -> list[str]:
    """nft matches for the UDP this link drops (`server_port`: which side of the
    packet is the server's: its destination port arriving there, source leaving)."""
    if spec.udp_dropped:
        return ["meta l4proto udp"]
    if spec.server_udp_ports_dropped:
        ports = ", ".join(str(p) for p in sorted(spec.server_udp_ports_dropped))
        return [f"udp {server_port} {{ {ports} }}"]
    return []


class _Table:
    """One nftables table (input and output chains), rewritten whole on each change.

    Its counters survive a rewrite: they are read first and carried over."""

    def __init__(self, name: str, netns: str | None) -> None:
        self.name = name
        self._nft = ["ip", "netns", "exec", netns, "nft"] if netns else ["nft"]
        self._carried: dict[str, tuple[int, int]] = {}

    def write(self, rules: Callable[[str], list[str]]) -> None:
        self._carried = self.read()
        script = [
            f"table inet {self.name} {{}}",  # so that the delete below never fails
            f"delete table inet {self.name}",
            f"add table inet {self.name}",
            f"add chain inet {self.name} out {{ type filter hook output priority 0; }}",
            f"add chain inet {self.name} in {{ type filter hook input priority 0; }}",
            *rules(self.name),
        ]
        _run([*self._nft, "-f", "-"], stdin="\n".join(script) + "\n")

    def read(self) -> dict[str, tuple[int, int]]:
        """{comment: (packets, bytes)} of every counter, including those carried over."""
        totals = dict(self._carried)
        listed = subprocess.run(
            [*self._nft, "list", "table", "inet", self.name],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in listed.stdout.splitlines():
            if "counter packets" not in line or 'comment "' not in line:
                continue
            words = line.split()
            packets = int(words[words.index("packets") + 1])
            size = int(words[words.index("bytes") + 1])
            comment = line.split('comment "', 1)[1].split('"', 1)[0]
            old = totals.get(comment, (0, 0))
            totals[comment] = (old[0] + packets, old[1] + size)
        return totals

    def delete(self) -> None:
        subprocess.run([*self._nft, "delete", "table", "inet", self.name], capture_output=True)


class Host:
    """One test host: a named network namespace behind its own link."""

    def __init__(self, bed: Testbed, index: int) -> None:
        self.bed = bed
        self.index = index
        self.name = f"{bed.prefix}h{index}"
        self.outer_device = f"{bed.prefix}h{index}o"  # server side of the veth pair
        self.inner_device = f"{bed.prefix}h{index}i"
        self.gateway = f"{bed.network}.{index}.1"
        self.address = f"{bed.network}.{index}.2"
        self.spec = LinkSpec()
        self.table = _Table(bed.table.name, netns=self.name)

    def _create(self) -> None:
        _run(["ip", "netns", "add", self.name])
        veth = ["type", "veth", "peer", "name", self.inner_device, "netns", self.name]
        _run(["ip", "link", "add", self.outer_device, *veth])
        # IPv4 only: an IPv6 link-local address would appear a second after the link is
        # up (duplicate address detection), and a browser that starts meanwhile takes
        # that for a network change and fails its page loads (ERR_NETWORK_CHANGED).
        _disable_ipv6(self.outer_device, None)
        _disable_ipv6(self.inner_device, self.name)
        _run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.outer_device])
        _run(["ip", "link", "set", self.outer_device, "up"])
        _run(["ip", "-n", self.name, "addr", "add", f"{self.address}/24", "dev", self.inner_device])
        _run(["ip", "-n", self.name, "link", "set", self.inner_device, "up"])
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        _run(["ip", "-n", self.name, "route", "add", "default", "via", self.gateway])

    def shape(self, spec: LinkSpec) -> None:
        """Set (or change, or lift) this host's link: takes effect at once."""
        queue = spec.queue_ms
        down_rate = spec.rate_kbit
        up_rate = _up_rate(spec)
        if down_rate is not None or self.spec.rate_kbit is not None:
            _run(_tbf(self.outer_device, down_rate, queue, None))
        if up_rate is not None or _up_rate(self.spec) is not None:
            _run(_tbf(self.inner_device, up_rate, queue, self.name))
        self.spec = spec
        self.bed.table.write(self.bed.server_rules)
        self.table.write(self.host_rules)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host (its own namespace, behind its link)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def executable(self, program: str) -> Path:
        """A script that runs `program` on this host: for tools that take an executable
        path and nothing else (Playwright's executable_path)."""
        path = self.bed.directory / f"{self.name}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {program} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    def counters(self) -> Counters:
        server = self.bed.table.read()
        host = self.table.read()
        to = server.get(f"to-{self.index}", (0, 0))
        back = server.get(f"from-{self.index}", (0, 0))
        return Counters(
            bytes_to_host=to[1],
            packets_to_host=to[0],
            dropped_to_host=host.get("loss", (0, 0))[0],
            bytes_from_host=back[1],
            packets_from_host=back[0],
        )

    def server_rules(self, table: str) -> list[str]:
        """This host's rules in the server side's table: counters, and uplink loss."""
        spec = self.spec
        out = f"add rule inet {table} out ip daddr {self.address}"
        into = f"add rule inet {table} in ip saddr {self.address}"
        lines = [f'{out} counter comment "to-{self.index}"']
        lines += [f"{into} {cut} drop" for cut in _udp_cut(spec)]
        if spec.up_loss_percent > 0:
            lines.append(f'{into} {_loss_rule(spec.up_loss_percent)} comment "uploss-{self.index}"')
        lines.append(f'{into} counter comment "from-{self.index}"')
        return lines

    def host_rules(self, table: str) -> list[str]:
        # Downlink loss is applied where the packet arrives: dropping it in the
        # sender's output hook would make its sendto() fail with EPERM, which
        # no real network does.
        into = f"add rule inet {table} in ip saddr {self.gateway}"
        lines = [f"{into} {cut} drop" for cut in _udp_cut(self.spec, server_port="sport")]
        if self.spec.loss_percent > 0:
            rule = _loss_rule(self.spec.loss_percent)
            lines.append(f'{into} {rule} comment "loss"')
        return lines

    def _destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer_device], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


class Testbed:
    """The hosts of one test and their links; all removed on exit.

    Counters survive a change of a host's link."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        for tool in ("ip", "tc", "nft"):
            if shutil.which(tool) is None:
                raise LinkError(f"{tool} not found (apt-get install iproute2 nftables)")
        self.prefix = f"u{os.getpid() % 100000}"
        self.network = _network()
        self.table = _Table(f"urok_{os.getpid()}", netns=None)
        self.hosts: list[Host] = []
        self.directory = Path(tempfile.mkdtemp(prefix="urok-links-"))

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_host(self, spec: LinkSpec | None = None) -> Host:
        host = Host(self, len(self.hosts) + 1)
        self.hosts.append(host)
        try:
            host._create()
            host.shape(spec or LinkSpec())
        except LinkError:
            self.close()
            raise
        return host

    def server_rules(self, table: str) -> list[str]:
        return [line for host in self.hosts for line in host.server_rules(table)]

    def close(self) -> None:
        for host in self.hosts:
            host._destroy()
        self.hosts = []
        self.table.delete()
        shutil.rmtree(self.directory, ignore_errors=True)
