#!/usr/bin/env bash
# The whole suite in two pytest processes side by side (run by scripts/test.sh inside
# its network namespace): the browser tests and the tests that measure in real time
# (marked `browser` and `realtime` in tests/conftest.py) one after another at normal
# priority, and the rest (Python only) beside them at a lower priority, so that a
# measurement or a browser is never starved by a functional test.
# Two things would undo a plain `nice`: Chromium raises its own processes' priority
# back (so the rest runs without CAP_SYS_NICE), and Playwright starts each browser in
# a session of its own, which the kernel schedules as a group of its own
# (autogroup) whatever its processes' nice values (so a browser the rest starts, as a
# bench may, goes through a wrapper that gives its group nice 10 too). The rest's
# output is shown when both have finished. With arguments (a file, -k ...), one
# plain pytest run instead.
set -uo pipefail
pytest=(.venv/bin/python -m pytest -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
  exec "${pytest[@]}" "$@"
fi
scratch=$(mktemp -d /tmp/urok-tests-rest.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
log="$scratch/output"
browser="$scratch/chromium"
printf '#!/bin/sh\necho 10 > /proc/self/autogroup 2>/dev/null\nexec %s "$@"\n' \
  "${UROK_CHROMIUM:-/usr/bin/chromium}" >"$browser"
chmod +x "$browser"
UROK_LINKS_BLOCK=1 UROK_CHROMIUM="$browser" setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice \
  nice -n 10 "${pytest[@]}" -m "not realtime and not browser" >"$log" 2>&1 &
rest=$!
echo "== browsers and real-time measurements (the rest runs beside them; its output follows)"
"${pytest[@]}" -m "realtime or browser" --durations=30
realtime=$?
wait "$rest"
others=$?
echo "== the rest"
cat "$log"
echo "== browsers and real time: exit $realtime; the rest: exit $others"
[ "$realtime" = 0 ] && [ "$others" = 0 ]
