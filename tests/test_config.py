"""Settings: defaults, TOML file, UROK_* environment, and refusal of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalling.config import (
    DEMO_KEY_ID,
    DEMO_SECRET,
    ConfigError,
    IceServer,
    Integration,
    Settings,
    load_settings,
    settings_from_mapping,
)

GOOD_TOML = """
host = "0.0.0.0"
port = 9000
public_url = "https://urok.school.example"
token_grace_seconds = 600
demo_journal = false
default_language = "en"
token_issuer = "urok-prod"
token_audience = "urok-prod-call"
max_ws_message_bytes = 32768

[[integrations]]
key_id = "ejd"
secret = "0123456789abcdef0123456789abcdef"
name = "School e-journal"
origins = ["https://journal.example", "https://diary.example"]

[[integrations]]
key_id = "other"
secret = "fedcba9876543210fedcba9876543210"

[ice]
addresses = ["10.0.0.5"]
announced_address = "203.0.113.7"

[[ice.servers]]
urls = ["stun:stun.school.example:3478"]

[[ice.servers]]
urls = "turn:turn.school.example:3478"
username = "u"
credential = "p"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "urok.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_with_nothing_configured() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.demo_journal is True
    assert settings.default_language == "ru"
    assert settings.ice.addresses == ("127.0.0.1",)
    assert settings.ice.servers == ()  # never a STUN server nobody configured
    demo = settings.integration(DEMO_KEY_ID)
    assert demo is not None and demo.secret == DEMO_SECRET
    assert settings.integration("nobody") is None


def test_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD_TOML), env={})
    assert settings.host == "0.0.0.0"
    assert settings.port == 9000
    assert settings.public_url == "https://urok.school.example"
    assert settings.token_grace_seconds == 600
    assert settings.demo_journal is False
    assert settings.default_language == "en"
    assert settings.token_issuer == "urok-prod"
    assert settings.token_audience == "urok-prod-call"
    assert settings.max_ws_message_bytes == 32768
    assert settings.integrations == (
        Integration(
            key_id="ejd",
            secret="0123456789abcdef0123456789abcdef",
            name="School e-journal",
            origins=("https://journal.example", "https://diary.example"),
        ),
        Integration(key_id="other", secret="fedcba9876543210fedcba9876543210", name="other"),
    )
    # The demo integration is replaced, not kept alongside.
    assert settings.integration(DEMO_KEY_ID) is None
    assert settings.ice.addresses == ("10.0.0.5",)
    assert settings.ice.announced_address == "203.0.113.7"
    assert settings.ice.servers == (
        IceServer(urls=("stun:stun.school.example:3478",)),
        IceServer(urls=("turn:turn.school.example:3478",), username="u", credential="p"),
    )
    assert settings.ice.servers[1].to_json() == {
        "urls": ["turn:turn.school.example:3478"],
        "username": "u",
        "credential": "p",
    }
    assert settings.frame_ancestors() == (
        "'self'",
        "https://journal.example",
        "https://diary.example",
    )


def test_resume_settings(tmp_path: Path) -> None:
    assert (Settings().resume_grace_seconds, Settings().reconnect_seconds) == (20, 60)
    path = write(tmp_path, "resume_grace_seconds = 45\nreconnect_seconds = 120\n")
    settings = load_settings(path, env={})
    assert (settings.resume_grace_seconds, settings.reconnect_seconds) == (45, 120)


def test_operator_settings(tmp_path: Path) -> None:
    defaults = Settings()
    assert not defaults.metrics.enabled and defaults.log.format == "text"
    assert defaults.health.max_loop_lag_ms == 500
    text = (
        '[metrics]\ntoken = "0123456789abcdef"\nport = 9464\nhost = "0.0.0.0"\n'
        '[health]\nmax_loop_lag_ms = 250\n[log]\nformat = "json"\nlevel = "debug"\n'
    )
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.metrics.enabled
    assert (settings.metrics.token, settings.metrics.port) == ("0123456789abcdef", 9464)
    assert settings.metrics.host == "0.0.0.0"
    assert settings.health.max_loop_lag_ms == 250
    assert (settings.log.format, settings.log.level) == ("json", "DEBUG")
    # The environment: a token kept out of the file, no separate port, text logs.
    env = {"UROK_METRICS_TOKEN": "fedcba9876543210", "UROK_METRICS_PORT": "0"}
    settings = load_settings(write(tmp_path, text), env={**env, "UROK_LOG_FORMAT": "text"})
    assert (settings.metrics.token, settings.metrics.port) == ("fedcba9876543210", None)
    assert settings.log.format == "text"


def test_file_from_urok_config_env(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 9100\npublic_url = "https://x.example"\n')
    settings = load_settings(env={"UROK_CONFIG": str(path)})
    assert settings.port == 9100
    assert settings.public_url == "https://x.example"


def test_env_overrides_file(tmp_path: Path) -> None:
    env = {
        "UROK_HOST": "10.1.1.1",
        "UROK_PORT": "9443",
        "UROK_PUBLIC_URL": "https://env.example",
        "UROK_DEFAULT_LANGUAGE": "ru",
        "UROK_ICE_ADDRESSES": "10.0.0.8, 10.0.0.9",
        "UROK_ANNOUNCED_ADDRESS": "198.51.100.1",
    }
    settings = load_settings(write(tmp_path, GOOD_TOML), env=env)
    assert settings.host == "10.1.1.1"
    assert settings.port == 9443
    assert settings.public_url == "https://env.example"
    assert settings.default_language == "ru"
    assert settings.ice.addresses == ("10.0.0.8", "10.0.0.9")
    assert settings.ice.announced_address == "198.51.100.1"
    # Untouched by the environment: still from the file.
    assert settings.token_grace_seconds == 600
    assert len(settings.ice.servers) == 2
    assert settings.integration("ejd") is not None


def test_load_settings_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UROK_CONFIG", raising=False)
    monkeypatch.setenv("UROK_PORT", "8181")
    assert load_settings().port == 8181


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('port = "80"', "port"),
        ("port = -1", "port"),
        ("token_grace_seconds = 1.5", "token_grace_seconds"),
        ("host = 5", "host"),
        ("public_url = []", "public_url"),
        ('demo_journal = "yes"', "demo_journal"),
        ('default_language = "de"', "default_language"),
        ("integrations = []", "integrations"),
        ('integrations = "ejd"', "integrations"),
        ("integrations = [1]", "integration"),
        ('[[integrations]]\nsecret = "0123456789abcdef0123456789abcdef"', "key_id"),
        ('[[integrations]]\nkey_id = ""\nsecret = "0123456789abcdef0123456789abcdef"', "key_id"),
        ('[[integrations]]\nkey_id = "a"\nsecret = "short"', "32"),
        ('[[integrations]]\nkey_id = "a"', "secret"),
        (
            '[[integrations]]\nkey_id = "a"\nsecret = "0123456789abcdef0123456789abcdef"\n'
            '[[integrations]]\nkey_id = "a"\nsecret = "0123456789abcdef0123456789abcdef"',
            "twice",
        ),
        (
            '[[integrations]]\nkey_id = "a"\n'
            'secret = "0123456789abcdef0123456789abcdef"\norigins = [1]',
            "origins",
        ),
        ('ice = "x"', "ice"),
        ("[ice]\naddresses = [1]", "ice.addresses"),
        ('[ice]\nservers = "stun:x"', "ice.servers"),
        ('[[ice.servers]]\nusername = "u"', "urls"),
        ('[[ice.servers]]\nurls = ["http://stun.example"]', "stun:"),
        ("this is not toml", "cannot read config"),
        ("data_dir = 5", "data_dir"),
        ('data_dir = ""', "data_dir"),
        ('recording = "on"', "recording must be a table"),
        ("[recording]\nenabled = 1", "recording.enabled"),
        ("[recording]\nwidth = 1281", "recording.width"),
        ("[recording]\nheight = 80", "recording.height"),
        ("[recording]\nfps = 0", "recording.fps"),
        ("[recording]\nfps = true", "recording.fps"),
        ("[recording]\nmin_free_mb = -1", "recording.min_free_mb"),
        ("[recording]\nmax_concurrent = 0", "recording.max_concurrent"),
        ("[recording]\nretention_days = -1", "recording.retention_days"),
        ("[recording]\ndirectory = 5", "recording.directory"),
        ("[recording]\ncodec = 'vp9'", "unknown recording setting"),
        ('media = "fast"', "media must be a table"),
        ("[media]\nkeyframe_interval_s = 0.01", "media.keyframe_interval_s"),
        ('[media]\nkeyframe_interval_s = "1"', "media.keyframe_interval_s"),
        ("[media]\nkeyframe_interval_s = true", "media.keyframe_interval_s"),
        ("[media]\npli_storm = 1", "unknown media setting"),
        ("[media]\naudio_slots = 33", "media.audio_slots"),
        ("[media]\naudio_slots = -1", "media.audio_slots"),
        ("[media]\naudio_slots = 2.5", "media.audio_slots"),
        ("[media]\naudio_slots = true", "media.audio_slots"),
        ("[media]\nvideo_slots = 101", "media.video_slots"),
        ("[media]\nvideo_slots = -1", "media.video_slots"),
        ("[media]\nvideo_slots = 2.5", "media.video_slots"),
        ("[media]\nvideo_slots = true", "media.video_slots"),
        ('[media]\nthumbnail_frame_rate = "quarter"', "media.thumbnail_frame_rate"),
        ("[media]\nthumbnail_frame_rate = 15", "media.thumbnail_frame_rate"),
        ('[media]\ndynacast = "yes"', "media.dynacast"),
        ("[media]\ndynacast = 1", "media.dynacast"),
        ("resume_grace_seconds = -1", "resume_grace_seconds"),
        ("resume_grace_seconds = true", "resume_grace_seconds"),
        ("resume_grace_seconds = 3601", "resume_grace_seconds"),
        ('reconnect_seconds = "60"', "reconnect_seconds"),
        ('metrics = "on"', "metrics must be a table"),
        ('[metrics]\ntoken = "short"', "16 characters"),
        ("[metrics]\ntoken = 5", "metrics.token"),
        ("[metrics]\nport = 70000", "metrics.port"),
        ('[metrics]\nhost = "example.org"', "metrics.host"),
        ("[metrics]\npath = '/m'", "unknown metrics setting"),
        ("[health]\nmax_loop_lag_ms = 0", "health.max_loop_lag_ms"),
        ('[log]\nformat = "xml"', "log.format"),
        ('[log]\nlevel = "LOUD"', "log.level"),
        ('[cluster]\nnode_id = "a b"', "cluster.node_id"),
        ('[cluster]\nnode_url = "urok-2"', "cluster.node_url"),
        ("[cluster]\nheartbeat_seconds = true", "cluster.heartbeat_seconds"),
        ("[cluster]\nheartbeat_seconds = 4", "at least 2 × heartbeat_seconds"),
        ("[cluster]\nmax_streams = 0", "cluster.max_streams"),
        ("[cluster]\nmax_cpu = 0", "cluster.max_cpu"),
        ("[cluster]\nleader = true", "unknown cluster setting"),
        ('[cluster]\nsecret = "short"', "cluster.secret"),
    ],
)
def test_bad_file_values(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(write(tmp_path, text), env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(env={"UROK_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"UROK_PORT": "eighty"}, "UROK_PORT"),
        ({"UROK_PORT": "-5"}, "port"),
        ({"UROK_DEFAULT_LANGUAGE": "fr"}, "default_language"),
    ],
)
def test_bad_env_values(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(env=env)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_mapping_applies_on_top_of_base() -> None:
    base = settings_from_mapping({"port": 9000})
    settings = settings_from_mapping({"host": "0.0.0.0"}, base)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


def test_boolean_port_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, "port = true"), env={})


def test_out_of_range_port_refused() -> None:
    with pytest.raises(ConfigError):
        load_settings(env={"UROK_PORT": "70000"})


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prot"):
        load_settings(write(tmp_path, "prot = 8080"), env={})
    with pytest.raises(ConfigError, match="adresses"):
        load_settings(write(tmp_path, '[ice]\nadresses = ["127.0.0.1"]'), env={})


def test_public_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="public_url"):
        load_settings(write(tmp_path, 'public_url = "urok.example"'), env={})


def test_data_dir_and_recording_settings(tmp_path: Path) -> None:
    defaults = load_settings(env={"XDG_DATA_HOME": "/ignored"})
    assert defaults.recording.enabled and defaults.recording.fps == 15
    assert (defaults.recording.width, defaults.recording.height) == (1280, 720)
    assert defaults.recordings_dir == defaults.data_dir / "recordings"

    text = (
        'data_dir = "/srv/urok"\n[recording]\nenabled = false\nwidth = 640\nheight = 360\n'
        "fps = 10\nmin_free_mb = 50\nmax_concurrent = 2\nretention_days = 365\n"
    )
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.data_dir == Path("/srv/urok")
    assert settings.recordings_dir == Path("/srv/urok/recordings")
    assert settings.recording.enabled is False
    assert (settings.recording.width, settings.recording.height, settings.recording.fps) == (
        640,
        360,
        10,
    )
    assert settings.recording.min_free_mb == 50
    assert settings.recording.max_concurrent == 2
    assert defaults.recording.max_concurrent == 4
    assert settings.recording.retention_days == 365 and defaults.recording.retention_days == 0
    moved = load_settings(
        write(tmp_path, text + 'directory = "/mnt/video"\n'), env={"UROK_DATA_DIR": "/data"}
    )
    assert moved.data_dir == Path("/data")
    assert moved.recordings_dir == Path("/mnt/video")


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    from signalling.config import default_data_dir

    monkeypatch.setenv("XDG_DATA_HOME", "/var/lib/somewhere")
    assert default_data_dir() == Path("/var/lib/somewhere/urok")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/teacher")
    assert default_data_dir() == Path("/home/teacher/.local/share/urok")


async def test_media_keyframe_floor_reaches_the_media_engine(tmp_path: Path) -> None:
    from signalling.app import create_app
    from signalling.keys import MEDIA

    assert load_settings(env={}).media.keyframe_interval_s == 1.0
    settings = load_settings(write(tmp_path, "[media]\nkeyframe_interval_s = 2.5\n"), env={})
    assert settings.media.keyframe_interval_s == 2.5
    router = create_app(settings)[MEDIA].create_router()
    assert router.options.keyframe_interval == 2.5


async def test_audio_slots_bound_every_router_unless_off(tmp_path: Path) -> None:
    from signalling.app import create_app
    from signalling.keys import MEDIA

    assert load_settings(env={}).media.audio_slots == 6
    router = create_app(load_settings(env={}))[MEDIA].create_router()
    assert router.audio_slots is not None and router.audio_slots.settings.slots == 6
    off = load_settings(write(tmp_path, "[media]\naudio_slots = 0\n"), env={})
    assert create_app(off)[MEDIA].create_router().audio_slots is None
    settings = load_settings(write(tmp_path, "[media]\naudio_slots = 4\n"), env={})
    router = create_app(settings)[MEDIA].create_router()
    assert router.audio_slots is not None and router.audio_slots.settings.slots == 4
    config = write(tmp_path, "[media]\nkeyframe_interval_s = 2.0\n")
    settings = load_settings(config, env={"UROK_MEDIA_AUDIO_SLOTS": "0"})
    assert (settings.media.audio_slots, settings.media.keyframe_interval_s) == (0, 2.0)
    with pytest.raises(ConfigError, match="UROK_MEDIA_AUDIO_SLOTS"):
        load_settings(env={"UROK_MEDIA_AUDIO_SLOTS": "many"})


async def test_video_slots_bound_every_subscriber_unless_off(tmp_path: Path) -> None:
    from signalling.app import create_app
    from signalling.keys import MEDIA

    assert load_settings(env={}).media.video_slots == 30
    router = create_app(load_settings(env={}))[MEDIA].create_router()
    assert router.options.video_slots == 30
    off = load_settings(write(tmp_path, "[media]\nvideo_slots = 0\n"), env={})
    assert create_app(off)[MEDIA].create_router().options.video_slots == 0
    # Both bounds from the environment at once: neither replaces the other.
    env = {"UROK_MEDIA_AUDIO_SLOTS": "3", "UROK_MEDIA_VIDEO_SLOTS": "12"}
    settings = load_settings(env=env)
    assert (settings.media.audio_slots, settings.media.video_slots) == (3, 12)
    with pytest.raises(ConfigError, match="UROK_MEDIA_VIDEO_SLOTS"):
        load_settings(env={"UROK_MEDIA_VIDEO_SLOTS": "many"})


def test_cluster_section_as_in_the_readme(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    start = readme.index("[cluster]")
    section = readme[start : readme.index("\n\n", start)]
    settings = load_settings(write(tmp_path, section), env={})
    cluster = settings.cluster
    assert cluster.node_id == "urok-2"
    assert cluster.node_url == "https://urok-2.school.example"
    assert cluster.internal_url == "http://10.0.0.2:8080"
    assert (cluster.heartbeat_seconds, cluster.stale_after_seconds) == (2.0, 6.0)
    assert cluster.placement_lease_seconds == 60.0
    limits = cluster.limits
    assert (limits.max_cpu, limits.max_streams, limits.max_lessons) == (0.8, 2000, 200)
    assert load_settings(None, env={}).cluster.node_id is None


async def test_thumbnails_at_half_the_frame_rate_unless_full(tmp_path: Path) -> None:
    from signalling.app import create_app
    from signalling.keys import CALLS
    from tests.test_admission import lesson

    assert load_settings(env={}).media.thumbnail_frame_rate == "half"
    full = load_settings(write(tmp_path, '[media]\nthumbnail_frame_rate = "full"\n'), env={})
    assert full.media.thumbnail_frame_rate == "full"
    env = load_settings(env={"UROK_MEDIA_THUMBNAIL_FRAME_RATE": "full"})
    assert env.media.thumbnail_frame_rate == "full"
    with pytest.raises(ConfigError, match="thumbnail_frame_rate"):
        load_settings(env={"UROK_MEDIA_THUMBNAIL_FRAME_RATE": "fast"})
    # What the call's views are told (rooms/calls/track_views.py).
    for settings, half in ((load_settings(env={}), True), (full, False)):
        call = create_app(settings)[CALLS].get_or_create(lesson())
        assert call.views.thumbnails_half_rate is half


def test_dynacast_on_unless_off(tmp_path: Path) -> None:
    from signalling.app import create_app
    from signalling.keys import CALLS
    from tests.test_admission import lesson

    assert load_settings(env={}).media.dynacast is True
    off = load_settings(write(tmp_path, "[media]\ndynacast = false\n"), env={})
    assert off.media.dynacast is False
    assert load_settings(env={"UROK_MEDIA_DYNACAST": "0"}).media.dynacast is False
    assert load_settings(env={"UROK_MEDIA_DYNACAST": "1"}).media.dynacast is True
    with pytest.raises(ConfigError, match="UROK_MEDIA_DYNACAST"):
        load_settings(env={"UROK_MEDIA_DYNACAST": "maybe"})
    for settings, on in ((load_settings(env={}), True), (off, False)):
        call = create_app(settings)[CALLS].get_or_create(lesson())
        assert call.dynacast.enabled is on
