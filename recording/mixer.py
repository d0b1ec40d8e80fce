"""Audio mixing on a wall-clock timeline: int32 accumulation in a ring, clipped to int16."""

from __future__ import annotations

import numpy as np


class AudioMixer:
    """Sources add samples at absolute positions (samples since the recording started);
    `read_until()` hands out the mix in order, with silence wherever nobody spoke.

    Positions before the read head are too late (dropped), positions further ahead than
    the ring holds are refused; both are counted.
    """

    def __init__(self, rate: int, channels: int, capacity_s: float = 4.0) -> None:
        self.rate = rate
        self.channels = channels
        size = 1
        while size < capacity_s * rate:
            size <<= 1
        self._size = size
        self._ring = np.zeros((size, channels), dtype=np.int32)
        self._read = 0  # absolute position of the next sample to hand out
        self.late_samples = 0
        self.refused_samples = 0

    @property
    def position(self) -> int:
        """Absolute position of the next sample `read_until()` returns."""
        return self._read

    @property
    def capacity(self) -> int:
        return self._size

    def add(self, position: int, samples: np.ndarray) -> int:
        """Mix `samples` (n x channels int16) in at `position`; returns how many were used."""
        count = samples.shape[0]
        if count == 0:
            return 0
        skip = self._read - position
        if skip >= count:
            self.late_samples += count
            return 0
        if skip > 0:
            samples = samples[skip:]
            position = self._read
            self.late_samples += skip
        else:
            skip = 0
        count = samples.shape[0]
        if position + count > self._read + self._size:
            self.refused_samples += count
            return 0
        start = position % self._size
        first = min(count, self._size - start)
        self._ring[start : start + first] += samples[:first]
        if first < count:
            self._ring[: count - first] += samples[first:]
        return count

    def read_until(self, position: int) -> np.ndarray:
        """The mix from the read head up to (not including) `position`, as int16."""
        count = position - self._read
        if count <= 0:
            return np.zeros((0, self.channels), dtype=np.int16)
        out = np.empty((count, self.channels), dtype=np.int16)
        done = 0
        while done < count:
            start = (self._read + done) % self._size
            n = min(count - done, self._size - start)
            chunk = self._ring[start : start + n]
            np.clip(chunk, -32768, 32767, out=chunk)
            out[done : done + n] = chunk
            chunk[:] = 0
            done += n
        self._read = position
        return out
