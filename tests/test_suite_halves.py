"""The whole-suite run's split (tests/conftest.py, scripts/test.sh) names real modules."""

from pathlib import Path

from tests.conftest import REALTIME_MODULES

ROOT = Path(__file__).resolve().parent.parent


def test_every_realtime_module_exists() -> None:
    missing = sorted(name for name in REALTIME_MODULES if not (ROOT / name).is_file())
    assert not missing, missing
