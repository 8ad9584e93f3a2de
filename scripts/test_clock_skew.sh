#!/usr/bin/env bash
# Run pytest with the clock moved forward (20 minutes by default) once collection is over, so that a
# token, timestamp or deadline made at import or collection time is stale when its test runs, as it is
# on a busy CI machine where a tier starts many minutes after collection. Such a test fails here.
#
# Usage: scripts/test_clock_skew.sh [pytest arguments...]   (paths relative to the repository root)
#   e.g. scripts/test_clock_skew.sh tests/unit tests/deploy -q
# Needs libfaketime (Debian/Ubuntu package 'faketime') and a C compiler (cc) for a small shim. Environment:
#   SHIPYARD_TEST_CLOCK_SKEW  how far to move the clock, in libfaketime's syntax (default +20m; >= +1m)
#   FAKETIME_LIB              the libfaketime.so.1 to preload (default: found under /usr/lib)
#   PYTEST                    the pytest to run (default .venv/bin/pytest if present, else pytest)
#   FAKETIME_SKIP_CMDS        programs whose clock is left alone (default java)
# The wall clock moves (time.time, datetime.now, and so every child process); the monotonic clock does
# not, so timeouts and deadlines measured with it still mean real seconds. tests/conftest.py's
# pytest_collection_finish hook writes the skew into the file libfaketime reads.
set -euo pipefail
cd "$(dirname "$0")/.."

skew="${SHIPYARD_TEST_CLOCK_SKEW:-+20m}"
lib="${FAKETIME_LIB:-}"
if [ -z "$lib" ]; then
  for candidate in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    if [ -f "$candidate" ]; then
      lib="$candidate"
      break
    fi
  done
fi
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
  echo "libfaketime not found: apt-get install faketime (or set FAKETIME_LIB)" >&2
  exit 2
fi
pytest="${PYTEST:-}"
if [ -z "$pytest" ]; then
  if [ -x .venv/bin/pytest ]; then pytest=.venv/bin/pytest; else pytest=pytest; fi
fi
python="$(dirname "$(command -v "$pytest")")/python"
[ -x "$python" ] || python=python3

work="$(mktemp -d "${TMPDIR:-/tmp}/shipyard-clock.XXXXXX")"
trap 'rm -rf "$work"' EXIT
clock="$work/faketime"

# Debian's libfaketime 0.9.10 garbles an absolute sleep on the monotonic clock when that clock is not
# faked, and Python >= 3.11's time.sleep is one (OSError: [Errno 22]). This shim, preloaded first, sends
# such sleeps straight to the kernel; every other call still goes through libfaketime.
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null; then
  echo "a C compiler is needed for the sleep shim (apt-get install gcc libc6-dev, or set CC)" >&2
  exit 2
fi
cat >"$work/monotonic_sleep.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*sleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem) {
    static sleep_fn next = NULL;
    if (clock == CLOCK_MONOTONIC) {
        return syscall(SYS_clock_nanosleep, clock, flags, req, rem) == 0 ? 0 : errno;
    }
    if (next == NULL) {
        next = (sleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
    }
    return next(clock, flags, req, rem);
}
C
"$cc" -shared -fPIC -O2 -o "$work/monotonic_sleep.so" "$work/monotonic_sleep.c" -ldl

faked() {
  # the file is re-read at most once a second (FAKETIME_NO_CACHE=1, a read per clock call, costs ~3x
  # the system time); the hook waits until the change is seen. The JVM (Spark's local mode) runs some
  # 30x slower under libfaketime, and its clock is not the project's: it is left alone.
  LD_PRELOAD="$work/monotonic_sleep.so:$lib${LD_PRELOAD:+:$LD_PRELOAD}" FAKETIME_TIMESTAMP_FILE="$clock" \
    FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
    FAKETIME_SKIP_CMDS="${FAKETIME_SKIP_CMDS-java}" "$@"
}

# the preload must really move Python's clock and leave its sleeps working, or this run proves nothing
echo "+1d" >"$clock"
moved="$(faked "$python" -c 'import time; time.sleep(0.01); print(int(time.time()))')"
if [ $((moved - $(date +%s))) -lt 80000 ]; then
  echo "libfaketime ($lib) does not move Python's clock: the skew check cannot run" >&2
  exit 2
fi

echo "+0" >"$clock"
status=0
SHIPYARD_TEST_CLOCK_SKEW="$skew" SHIPYARD_TEST_CLOCK_SKEW_FILE="$clock" faked "$pytest" "$@" || status=$?
if [ "$(cat "$clock")" != "$skew" ]; then
  echo "the clock was never moved (is tests/conftest.py's pytest_collection_finish hook loaded?)" >&2
  [ "$status" -ne 0 ] || status=3
fi
exit "$status"
