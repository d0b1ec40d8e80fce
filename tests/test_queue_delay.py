"""rooms/queue_delay.py: a link's queue judged growing by the round trips its receiver
reports: the floor, the threshold, samples in a row, the longest of a sample."""

from __future__ import annotations

from rooms.queue_delay import QueueDelay, QueueDelaySettings


def test_round_trips_well_above_their_floor_say_the_queue_grows() -> None:
    queue = QueueDelay()
    assert queue.observe(0.150, 0.0) is False  # the first: no floor to compare with yet
    assert queue.observe(0.002, 1.0) is False
    assert queue.floor == 0.002
    assert queue.observe(0.015, 2.0) is False and queue.rising  # 13 ms of queue: not yet
    assert queue.observe(0.030, 3.0) is True and queue.run == 1
    assert queue.observe(0.060, 4.0) is True and queue.run == 2
    assert queue.observe(0.003, 5.0) is False and queue.run == 0  # drained


def test_no_round_trip_in_a_sample_says_nothing() -> None:
    queue = QueueDelay()
    queue.observe(0.002, 0.0)
    queue.observe(0.050, 1.0)
    assert queue.building and queue.run == 1
    assert queue.observe(None, 2.0) is False and queue.run == 0 and not queue.peaked


def test_the_floor_is_of_the_last_seconds_only() -> None:
    queue = QueueDelay(QueueDelaySettings(floor_seconds=10.0))
    queue.observe(0.002, 0.0)
    for t in range(1, 12):  # a link whose round trip is 40 ms now (another route)
        queue.observe(0.040, float(t))
    assert queue.floor == 0.040
    assert queue.observe(0.045, 12.0) is False


def test_the_longest_round_trip_of_a_sample_counts_from_further_above() -> None:
    queue = QueueDelay()
    queue.observe(0.002, 0.0)
    queue.observe(0.002, 1.0, peak=0.025)  # one late report: not a queue
    assert not queue.peaked and not queue.building
    queue.observe(0.003, 2.0, peak=0.080)  # one stream's round trip grew by 78 ms
    assert queue.peaked and not queue.building
