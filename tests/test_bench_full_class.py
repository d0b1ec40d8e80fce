"""The full-class bench (bench/full_class.py), tiny: a real server process, four aiortc
bots publishing simulcast cameras as browsers do (three VP8 layers, rids q/h/f), two of
them receiving. What arrives says which layer the server forwarded (each VP8 keyframe's
size): the three layers reach the server and each is chosen where it should be; grid
views make a pupil receive less than the same class without simulcast, and save data
less than the grid. With --sinks the other two subscribe as well and nftables drops
what the server sends them: the server's packets out are the receivers' and the
sinks' together."""

from __future__ import annotations

from tests.bench_run import bench_report


async def test_a_tiny_full_class_gets_the_layers_it_views() -> None:
    report = await bench_report(
        "bench.full_class",
        *("--no-upkeep", "--people", "4", "--receivers", "2", "--sinks", "--seconds", "3"),
        *("--warmup", "2", "--clip-seconds", "1"),
        timeout=180,
    )
    windows = {w["name"]: w for w in report["windows"]}
    grid, single = windows["grid"], windows["single"]
    audio_screen, one_video = windows["audio_screen"], windows["one_video"]
    # Each layer is forwarded where the views and modes want it: all three reached the server.
    assert grid["sizes"] == {"teacher": ["640x360"], "pupils": ["160x90"]}, grid
    assert one_video["sizes"] == {"teacher": ["320x180"], "pupils": []}, one_video
    # One 640x360 stream per camera (the server's pacers hold these receivers to their
    # estimates and may drop a keyframe's first packet: whose keyframe shows varies).
    assert set(single["sizes"]["teacher"] + single["sizes"]["pupils"]) == {"640x360"}, single
    assert audio_screen["sizes"] == {"teacher": [], "pupils": []}, audio_screen
    # Three layers come in per camera, one goes out per view.
    assert grid["packets_in_per_s"] > 1.3 * single["packets_in_per_s"], (grid, single)
    # Two of the three cameras a pupil sees are small: well under the single stream.
    assert grid["downlink_kbps_max"] < 0.75 * single["downlink_kbps_median"], (grid, single)
    for save in (audio_screen, one_video):
        assert 0 < save["downlink_kbps_max"] < 0.6 * grid["downlink_kbps_median"], (save, grid)
    # The teacher and the first pupil are sinks in the simulcast phases: half of what
    # the server forwards in grid goes to them (the teacher views two pupils small, the
    # first pupil the teacher large), none in the single phase.
    assert grid["sinks"] == 2 and single["sinks"] == 0 and single["sunk_per_s"] == 0
    received = sum(grid["packets_per_s"])
    assert grid["sunk_per_s"] > 0.3 * grid["packets_out_per_s"], grid
    assert abs(received + grid["sunk_per_s"] - grid["packets_out_per_s"]) < (
        0.1 * grid["packets_out_per_s"]
    ), grid
