#!/bin/sh
# The browser tests drive Debian's chromium (never a downloaded browser build).
# Install it from Debian's packages when it is missing and we may.
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "chromium is missing and cannot be installed here: browser tests will be skipped with that reason" >&2
fi
exit 0
