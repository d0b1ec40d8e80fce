"""Simulcast in our SDP: a publisher's `a=rid` / `a=simulcast` offer, and our answer.

aiortc's SDP code knows neither attribute (it skips them) nor the RID header
extensions (RFC 8852), and its table of header extensions is shared with every
aiortc peer in the process, so it is left alone. Instead:

- `simulcast_offered` reads, per m-section of a publisher's offer, the rids it
  will send (in the order of its `a=simulcast:send`, which is our layer order:
  the call page lists its encodings from the smallest up) and the ids of the
  `rtp-stream-id` / `repaired-rtp-stream-id` extensions;
- `simulcast_answer` adds to aiortc's answer what accepts them: those two
  extmaps, `a=rid:<id> recv` for each rid and `a=simulcast:recv <ids>`. A
  browser given an answer without them sends only its first encoding. The
  extmaps are accepted on every video m-section that offers them, simulcast
  or not: Chromium stops offering an extension its last answer left out, and
  then refuses its own offer of a camera added later with simulcast ("negotiates
  simulcast but does not negotiate the RID RTP header extension");
- the forwarding receiver is told the extension ids (`header_extensions`), so
  aiortc's packet parser fills in `rtp_stream_id` / `repaired_rtp_stream_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
# RFC 8851: rid-id = 1*(alpha-numeric / "-" / "_"); we also cap the length and count.
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
MAX_LAYERS = 3


@dataclass(frozen=True)
class SimulcastOffer:
    """What one m-section of a publisher's offer says about its simulcast."""

    rids: tuple[str, ...]  # layer order: index 0 the smallest; () without simulcast
    rid_extension: int
    repaired_extension: int | None

    @property
    def simulcast(self) -> bool:
        return len(self.rids) >= 2

    def header_extensions(self) -> list[RTCRtpHeaderExtensionParameters]:
        found = [RTCRtpHeaderExtensionParameters(id=self.rid_extension, uri=RID_URI)]
        if self.repaired_extension is not None:
            found.append(
                RTCRtpHeaderExtensionParameters(id=self.repaired_extension, uri=REPAIRED_RID_URI)
            )
        return found


def _sections(sdp: str) -> list[list[str]]:
    """The session part, then one list of lines per m-section."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _attribute(lines: list[str], name: str) -> list[str]:
    prefix = f"a={name}:"
    return [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]


def _extmap_id(lines: list[str], uri: str) -> int | None:
    for value in _attribute(lines, "extmap"):
        parts = value.split()
        if len(parts) >= 2 and parts[1] == uri:
            ext_id = parts[0].split("/")[0]
            return int(ext_id) if ext_id.isdigit() else None
    return None


def _send_rids(lines: list[str]) -> tuple[str, ...]:
    """The rids of `a=simulcast:send ...` that `a=rid:<id> send` declares (first of
    each alternative, a paused `~` rid included: it may start later)."""
    declared = set()
    for value in _attribute(lines, "rid"):
        parts = value.split()
        if len(parts) >= 2 and parts[1] == "send":
            declared.add(parts[0])
    for value in _attribute(lines, "simulcast"):
        parts = value.split()
        if len(parts) < 2 or parts[0] != "send":
            continue
        rids = [choice.split(",")[0].lstrip("~") for choice in parts[1].split(";")]
        wanted = tuple(r for r in rids if r in declared and _RID.match(r))
        if len(set(wanted)) == len(wanted):
            return wanted[:MAX_LAYERS]
    return ()


def simulcast_offered(offer: str) -> dict[str, SimulcastOffer]:
    """A publisher's offer: each video m-section that offers the rid header extension,
    by mid, with the rids it sends when two or more (simulcast), else none."""
    found = {}
    for lines in _sections(offer)[1:]:
        if not lines[0].startswith("m=video"):
            continue
        mids = _attribute(lines, "mid")
        rid_ext = _extmap_id(lines, RID_URI)
        if not mids or rid_ext is None:
            continue
        rids = _send_rids(lines)
        found[mids[0]] = SimulcastOffer(
            rids if len(rids) >= 2 else (), rid_ext, _extmap_id(lines, REPAIRED_RID_URI)
        )
    return found


def simulcast_answer(answer: str, offered: dict[str, SimulcastOffer]) -> str:
    """Our answer to a publisher, accepting the simulcast of `offered` (simulcast_offered)."""
    if not offered:
        return answer
    out: list[str] = []
    for lines in _sections(answer):
        mids = _attribute(lines, "mid")
        offer = offered.get(mids[0]) if mids else None
        if offer is None or not lines[0].startswith("m=video") or "a=recvonly" not in lines:
            out.extend(lines)
            continue
        added = [f"a=extmap:{e.id} {e.uri}" for e in offer.header_extensions()]
        if offer.simulcast:
            added += [f"a=rid:{rid} recv" for rid in offer.rids]
            added.append(f"a=simulcast:recv {';'.join(offer.rids)}")
        at = lines.index(f"a=mid:{mids[0]}") + 1
        out.extend([*lines[:at], *(a for a in added if a not in lines), *lines[at:]])
    return "\r\n".join(out) + "\r\n"
