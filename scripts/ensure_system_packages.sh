#!/bin/sh
# System tools the tests use, from Debian's packages (never a downloaded binary):
#   chromium  - the browser tests (Playwright drives it; no browser download)
#   nginx     - `nginx -t` checks deploy/nginx/ so the site file cannot rot
#   faketime  - libfaketime: CI runs the suite again at a faked moment (month end, year start,
#               a holiday) so that no test depends on the day it runs
#   postgresql - the server binaries: make test starts a throwaway server of its own for the tests
#               that need PostgreSQL (the SQL forms of the charge rules checked against Python's)
#   fonts-wqy-microhei - the CJK font invoices embed (the image installs it too)
#   poppler-utils - pdffonts, pdftotext, pdftoppm: the tests read the invoices as a viewer would
#   gettext   - msgfmt, xgettext, msgattrib: the messages are extracted afresh and every one must be
#               translated (tests/test_translations.py)
#   dovecot-imapd - a real IMAP server: the tests deliver calendar replies (Decline) to a throwaway
#               mailbox and read them back as the platform does
# Installed where missing and we may (root with apt-get); otherwise the tests that need them
# are skipped with that reason.
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$missing postgresql"
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$missing fonts-wqy-microhei"
command -v pdffonts >/dev/null 2>&1 || missing="$missing poppler-utils"
command -v msgattrib >/dev/null 2>&1 || missing="$missing gettext"
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null 2>&1 || missing="$missing dovecot-imapd"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing from Debian's packages:$missing"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
        || echo "could not install$missing: the tests that need them will be skipped" >&2
else
    echo "missing$missing and cannot install here: the tests that need them will be skipped" >&2
fi
exit 0
