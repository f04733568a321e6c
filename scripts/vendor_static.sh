#!/bin/sh
# Refresh the vendored front-end assets from the npm registry (run by a developer, not at run
# time: the service never fetches anything from a CDN). Versions are pinned here.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent htmx.org@2.0.8 @picocss/pico@2.1.1 >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
DEST="$ROOT/instrumentshare/static/vendor"
cp htmx.org-2.0.8/package/dist/htmx.min.js htmx.org-2.0.8/package/LICENSE "$DEST/htmx/"
cp picocss-pico-2.1.1/package/css/pico.min.css picocss-pico-2.1.1/package/LICENSE.md "$DEST/pico/"
echo "vendored into $DEST"

# --- bookings: FullCalendar (MIT), the week calendars of the booking pages ---------------------
# The standard bundle's global build (timegrid, daygrid, list, interaction) and its licence.
FULLCALENDAR_VERSION=6.1.21
npm pack --silent "fullcalendar@$FULLCALENDAR_VERSION" >/dev/null
mkdir -p "fullcalendar-$FULLCALENDAR_VERSION"
tar xzf "fullcalendar-$FULLCALENDAR_VERSION.tgz" -C "fullcalendar-$FULLCALENDAR_VERSION"
FULLCALENDAR_DEST="$ROOT/bookings/static/vendor/fullcalendar"
mkdir -p "$FULLCALENDAR_DEST"
cp "fullcalendar-$FULLCALENDAR_VERSION/package/index.global.min.js" \
   "fullcalendar-$FULLCALENDAR_VERSION/package/LICENSE.md" "$FULLCALENDAR_DEST/"
echo "vendored FullCalendar $FULLCALENDAR_VERSION into $FULLCALENDAR_DEST"

# --- Chart.js for the oversight dashboard (its source-map comment is dropped: the map is not shipped) ---
npm pack --silent chart.js@4.6.1 >/dev/null
mkdir -p chart.js-4.6.1 && tar xzf chart.js-4.6.1.tgz -C chart.js-4.6.1
mkdir -p "$ROOT/oversight/static/vendor/chart.js"
sed '$d' chart.js-4.6.1/package/dist/chart.umd.js > "$ROOT/oversight/static/vendor/chart.js/chart.umd.js"
cp chart.js-4.6.1/package/LICENSE.md "$ROOT/oversight/static/vendor/chart.js/"
echo "vendored Chart.js into oversight/static/vendor/chart.js"
