"""What each video weighs (rooms/calls/video_rates.py), measured on a real Producer fed
real RTP packets through its ForwardingReceiver (the network edge a WireRecorder)."""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

from rooms.calls.video_rates import HEADER_BYTES, WINDOW, VideoRates
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.producer import Producer
from tests.sfu_support import VP8_IN, WireRecorder, publish, rtp

PACKET = 1000  # payload bytes
MEAN_PACKETS = 36  # a second: (1000 + 20) * 8 * 36 = 293.76 kbit/s
MEAN_BPS = (PACKET + HEADER_BYTES) * 8 * MEAN_PACKETS


class Camera:
    """A producer and the packets its publisher sends, a second at a time."""

    def __init__(self, producer: Producer, receiver: ForwardingReceiver) -> None:
        self.producer, self.receiver, self.seq = producer, receiver, 0

    @classmethod
    async def start(cls) -> Camera:
        receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", WireRecorder()))  # type: ignore[arg-type]
        receiver._set_rtcp_ssrc(1111)
        await receiver.receive(RTCRtpReceiveParameters(codecs=[VP8_IN], muxId="0"))
        return cls(Producer("pr_cam", "video", receiver, {"source": "camera"}, 0.0), receiver)

    async def second(self, packets: int) -> None:
        for _ in range(packets):
            self.seq += 1
            await publish(
                self.receiver, rtp(self.seq, 90 * self.seq, b"\x10\x00" + bytes(PACKET - 2))
            )


async def test_the_figure_does_not_dip_below_the_mean_after_a_keyframe() -> None:
    """Every publisher answers a new subscriber's keyframe request at once, then sends
    little for a second: a smoothed figure alone dips to ~0.85 of the mean there, and a
    cut taken at that moment keeps a video too many on a short link."""
    camera, rates = await Camera.start(), VideoRates()
    pattern = (round(1.6 * MEAN_PACKETS), round(0.4 * MEAN_PACKETS))  # a keyframe, then not
    figures = []
    for second in range(12):
        await camera.second(pattern[second % 2])
        rates.update([camera.producer], float(second))
        figures.append(rates.bps(camera.producer.id))
    assert figures[0] == 0.0  # measured once: not yet
    steady = figures[round(WINDOW) :]
    # Never below the mean of the last WINDOW seconds (two keyframe intervals here) ...
    assert min(steady) >= 0.99 * MEAN_BPS, (min(steady), MEAN_BPS)
    # ... and after a keyframe's second no higher than the smoothed figure says.
    assert max(steady) <= 1.2 * MEAN_BPS, (max(steady), MEAN_BPS)


async def test_a_video_that_stops_is_forgotten_within_the_window() -> None:
    camera, rates = await Camera.start(), VideoRates()
    for second in range(6):
        await camera.second(MEAN_PACKETS)
        rates.update([camera.producer], float(second))
    assert abs(rates.bps(camera.producer.id) - MEAN_BPS) < 0.01 * MEAN_BPS
    for second in range(6, 6 + round(WINDOW) + 2):  # the camera sends nothing
        rates.update([camera.producer], float(second))
    assert rates.bps(camera.producer.id) < 0.1 * MEAN_BPS
    rates.update([], 20.0)  # a producer gone is forgotten
    assert rates.bps(camera.producer.id) == 0.0
