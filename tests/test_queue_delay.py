"""rooms/queue_delay.py: a link's queue judged growing by the round trips its receiver
reports: the floor, the threshold, samples in a row, the longest of a sample."""

from __future__ import annotations

from rooms.queue_delay import CutDrain, QueueDelay, QueueDelaySettings


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


def test_a_first_cut_that_left_a_queue_full_from_the_start_full_was_not_enough() -> None:
    """The test bed's 1 Mbit/s link, full from the first second (130-140 ms): a first cut
    that kept two videos drained it to ~1 ms two samples on; one that kept three left
    it at 130-140 ms, and they froze."""
    drain = CutDrain()
    assert not drain.undrained(None, 0.138, 0.138, 1.0)  # the cut is taken on this one
    assert not drain.undrained(1.0, 0.140, 0.138, 2.0)  # its reports: of before the cut
    assert drain.undrained(1.0, 0.139, 0.138, 3.0)  # of after it: as full
    assert drain.rtt_at_cut == 0.138
    drain = CutDrain()
    drain.undrained(None, 0.138, 0.138, 1.0)
    drain.undrained(1.0, 0.141, 0.138, 2.0)
    assert not drain.undrained(1.0, 0.001, 0.138, 3.0)  # drained: the cut was enough
    # Three kept at the link's edge: half way drained, then filling again.
    drain = CutDrain()
    drain.undrained(None, 0.143, 0.138, 1.0)
    drain.undrained(1.0, 0.139, 0.138, 2.0)
    assert drain.undrained(1.0, 0.074, 0.138, 3.0)


def test_with_the_links_usual_round_trip_known_the_queue_left_is_judged() -> None:
    drain = CutDrain()
    drain.undrained(None, 0.080, 0.001, 10.0)  # 79 ms of queue at the cut
    assert drain.undrained(10.0, 0.050, 0.001, 12.0)  # half of it left
    drain = CutDrain()
    drain.undrained(None, 0.080, 0.001, 10.0)
    assert not drain.undrained(10.0, 0.030, 0.001, 12.0)  # mostly drained
    # A round trip of the link's own (no queue at the cut) says nothing.
    drain = CutDrain()
    drain.undrained(None, 0.021, 0.001, 10.0)
    assert not drain.undrained(10.0, 0.021, 0.001, 12.0)


def test_a_far_link_never_seen_empty_costs_one_step_at_most() -> None:
    """120 ms of its own round trip, no queue: its first cut (on loss) reads as left
    full; the next cut is not judged so."""
    drain = CutDrain()
    drain.undrained(None, 0.120, 0.120, 1.0)
    assert drain.undrained(1.0, 0.120, 0.120, 3.0)  # one step too many
    assert not drain.undrained(3.0, 0.120, 0.120, 5.0)  # the second cut
    assert drain.cuts == 2
