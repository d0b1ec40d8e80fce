"""`video_quality` over the real WebSocket: the subscriber's consumer takes the layer.

Bots publish without simulcast (aiortc cannot send it), so the choice is kept
but there is one layer to forward; tests/browser/test_simulcast.py sees the
decoded size change with a Chromium publisher.
"""

from __future__ import annotations

from bench.bot import Bot
from bench.media import PatternVideoTrack
from signalling.keys import CALLS
from tests.live import running_server


async def test_a_subscriber_chooses_the_quality_of_a_camera() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        student = Bot(server.base_url, await server.token(lesson, "s-1", "Иван", "student"))
        try:
            await teacher.connect()
            await teacher.publish([(PatternVideoTrack((200, 30, 30)), "camera")])
            await student.connect()
            await student.wait_track(teacher.id, "video")
            call = server.app[CALLS].get(lesson)
            assert call is not None
            camera = call.participants[teacher.id].producers["camera"]
            subscriber = call.participants[student.id].subscriber
            assert subscriber is not None
            [consumer] = [c for c in subscriber.consumers if c.producer is camera]
            assert consumer.layers.preferred is None  # the highest, by default

            for quality, layer in (("low", 0), ("medium", 1), ("high", 2)):
                await student.send(
                    {
                        "type": "video_quality",
                        "participant_id": teacher.id,
                        "source": "camera",
                        "quality": quality,
                    }
                )
                await student.request({"type": "ping"}, lambda m: m["type"] == "pong")
                assert consumer.layers.preferred == layer
            # One layer to forward: whatever is asked, that one goes on.
            assert camera.layer_count == 1 and consumer.layers.layer == 0

            error = await student.request(
                {
                    "type": "video_quality",
                    "participant_id": "p_nobody",
                    "source": "camera",
                    "quality": "low",
                },
                lambda m: False,
            )
            assert error["type"] == "error" and error["code"] == "unknown_participant"
            error = await student.request(
                {
                    "type": "video_quality",
                    "participant_id": teacher.id,
                    "source": "camera",
                    "quality": "best",
                },
                lambda m: False,
            )
            assert error["code"] == "bad_message"
        finally:
            await student.leave()
            await teacher.leave()
