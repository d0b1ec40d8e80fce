"""The aiortc/aioice patch module: pinned internals and ICE host addresses."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

import sfu.aiortc_hooks
import sfu.aiortc_receiver
from sfu.aiortc_hooks import (
    PINNED_INTERNALS,
    FastRtpPath,
    check_pinned_internals,
    restrict_host_addresses,
)
from sfu.ice import rtc_configuration

ROOT = Path(__file__).resolve().parents[1]
# Private names that the hooks modules define themselves (not aiortc's or aioice's).
OWN_PRIVATE_NAMES = {"_send_remb"} | set(FastRtpPath.__slots__)


def _private_names(node: ast.AST) -> set[str]:
    """Single-underscore attribute names read, set or defined as methods under `node`."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            names.add(sub.attr)
        elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(sub.name)
        elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
            names.add(sub.target.id)  # class-level declarations of aiortc's attributes
        elif isinstance(sub, ast.Call) and getattr(sub.func, "id", None) == "mangled":
            _, owner, name = sub.args  # mangled(obj, Owner, "name") reads _Owner__name
            assert isinstance(owner, ast.Name) and isinstance(name, ast.Constant)
            names.add(f"_{owner.id}__{name.value}")
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


async def test_pinned_internals_are_all_present() -> None:
    assert await check_pinned_internals() == []


def test_every_private_name_the_hooks_use_is_pinned() -> None:
    body = [
        node
        for module in (sfu.aiortc_hooks, sfu.aiortc_receiver)
        for node in ast.parse(inspect.getsource(module)).body
    ]
    classes = [n for n in body if isinstance(n, ast.ClassDef)]
    functions = [n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    used: set[str] = set()
    for node in classes + functions:
        used |= _private_names(node)
    # Module-level helpers of our own are functions, not attributes: they are not used here.
    used -= {f.name for f in functions}
    # RtpPacket._data is checked by what JitterBuffer does with it (test below).
    pinned = {name for _, name in PINNED_INTERNALS} | {"_data"}
    assert used - pinned - OWN_PRIVATE_NAMES == set(), "add them to PINNED_INTERNALS"
    # And the list names nothing the module has stopped using.
    assert pinned - used == set()


@pytest.mark.parametrize(
    ("owner", "name"), PINNED_INTERNALS, ids=[f"{o.__name__}.{n}" for o, n in PINNED_INTERNALS]
)
async def test_a_missing_internal_is_reported(
    owner: type, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    defining = next((c for c in owner.__mro__ if name in vars(c)), None)
    if defining is not None:  # a method or class attribute
        monkeypatch.delattr(defining, name)
    else:  # set on each instance by the constructor
        original_init = owner.__init__

        def init_without(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            delattr(self, name)

        monkeypatch.setattr(owner, "__init__", init_without)
    assert await check_pinned_internals() == [f"{owner.__name__}.{name}"]


async def test_a_jitter_buffer_that_no_longer_joins_packet_data_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def frame_from_payloads(self: JitterBuffer, sequence_number: int) -> JitterFrame | None:
        return JitterFrame(data=b"payloads, not _data", timestamp=0)

    monkeypatch.setattr(JitterBuffer, "_remove_frame", frame_from_payloads)
    assert await check_pinned_internals() == ["JitterBuffer frames from RtpPacket._data"]


def test_no_private_aiortc_name_is_used_outside_the_hooks() -> None:
    """Outside sfu/aiortc_hooks.py, aiortc_receiver.py and aiortc_fast_receive.py, code
    reads private attributes of `self` only."""
    offenders = []
    for package in ("sfu", "recording", "breakout"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name in ("aiortc_hooks.py", "aiortc_receiver.py", "aiortc_fast_receive.py"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                    continue
                if node.attr.startswith("__") and node.attr.endswith("__"):
                    continue
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert offenders == []


async def test_gathers_only_on_configured_addresses_with_no_stun_server() -> None:
    restrict_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        hosts = re.findall(
            r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ (\S+)",
            pc.localDescription.sdp,
            re.MULTILINE,
        )
        assert hosts and {h for h, _ in hosts} == {"127.0.0.1"}
        assert {t for _, t in hosts} == {"host"}  # no server-reflexive: no STUN asked
        gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
        assert gatherer._connection.stun_server is None
    finally:
        await pc.close()


def test_address_family_filter() -> None:
    restrict_host_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
    finally:
        restrict_host_addresses(["127.0.0.1"])
