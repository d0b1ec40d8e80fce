#!/usr/bin/env bash
# The whole suite in two pytest processes side by side (run by scripts/test.sh inside
# its network namespace): the tests that measure in real time (marked `realtime` in
# tests/conftest.py) one after another at normal priority, and the rest beside them
# at a lower priority, so a measurement is never starved by a functional test
# (without CAP_SYS_NICE, as Chromium would otherwise raise its own processes' priority
# back). The rest's output is shown when both have finished. With arguments (a file, -k ...),
# one plain pytest run instead.
set -uo pipefail
pytest=(.venv/bin/python -m pytest -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
  exec "${pytest[@]}" "$@"
fi
log=$(mktemp /tmp/urok-tests-rest.XXXXXX)
trap 'rm -f "$log"' EXIT
UROK_LINKS_BLOCK=1 setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice \
  nice -n 10 "${pytest[@]}" -m "not realtime" >"$log" 2>&1 &
rest=$!
echo "== tests that measure in real time (the rest runs beside them; its output follows)"
"${pytest[@]}" -m realtime
realtime=$?
wait "$rest"
others=$?
echo "== the rest"
cat "$log"
echo "== realtime: exit $realtime; the rest: exit $others"
[ "$realtime" = 0 ] && [ "$others" = 0 ]
