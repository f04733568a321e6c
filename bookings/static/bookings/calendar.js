/* The week calendars of the booking pages, drawn with the vendored FullCalendar.
 *
 * Times are the instrument's (or the lab's) wall-clock times. FullCalendar is given the named
 * zone without a time zone plugin, so it draws the wall-clock times the server sends (ISO 8601
 * with the zone's offset) as they are, and sends wall-clock times back (start/end of the range,
 * the selection): the server does all the zone arithmetic. Booked times carry their UTC instants
 * too, so a viewer elsewhere sees them in their own zone on hover.
 */
(function () {
  "use strict";

  function readConfig(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function pad(number) {
    return String(number).padStart(2, "0");
  }

  // FullCalendar's dates in a named zone without a plugin hold the wall-clock time in their UTC fields.
  function wallClock(date) {
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate()) + "T" +
      pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes());
  }

  // The current wall-clock time in a zone, so "today" and the now line are right for the instrument.
  function nowIn(zone) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    }).formatToParts(new Date()).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + "T" + parts.hour + ":" + parts.minute + ":" + parts.second;
  }

  function viewerZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function inViewerZone(iso) {
    return new Date(iso).toLocaleString(document.documentElement.lang || undefined, {
      weekday: "short", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false
    });
  }

  function showViewerZone(instrumentZone) {
    var holder = document.getElementById("viewer-zone");
    var zone = viewerZone();
    if (!holder || !zone) {
      return;
    }
    holder.querySelector("[data-testid=viewer-zone]").textContent = zone;
    holder.hidden = false;
    var differs = holder.querySelector(".zone-differs");
    if (differs && nowIn(zone).slice(0, 16) !== nowIn(instrumentZone).slice(0, 16)) {
      differs.hidden = false;
    }
  }

  function minutes(count) {
    return pad(Math.floor(count / 60)) + ":" + pad(count % 60) + ":00";
  }

  function baseOptions(config) {
    var texts = config.texts;
    return {
      initialView: "timeGridWeek",
      timeZone: config.timeZone,
      locale: config.locale,
      firstDay: 1,
      initialDate: config.initialDate,
      now: function () { return nowIn(config.timeZone); },
      nowIndicator: true,
      allDaySlot: false,
      height: "auto",
      headerToolbar: { left: "prev,next today", center: "title", right: "timeGridWeek,timeGridDay,listWeek" },
      buttonText: { today: texts.today, week: texts.week, day: texts.day, list: texts.list },
      // The hints read out for the arrows and view buttons (English in FullCalendar without its locales).
      buttonHints: { prev: texts.previous, next: texts.next, today: texts.todayHint },
      viewHint: function (buttonText) { return buttonText; },
      allDayText: texts.allDay,
      noEventsText: texts.noEvents,
      slotLabelFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
      eventTimeFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
      dayHeaderFormat: { weekday: "short", month: "numeric", day: "numeric" },
      eventDidMount: function (info) {
        var props = info.event.extendedProps;
        if (props.utcStart) {
          var label = (props.state ? props.state + " · " : "") + texts.yourTime + " (" + viewerZone() + "): " +
            inViewerZone(props.utcStart) + " – " + inViewerZone(props.utcEnd);
          info.el.setAttribute("title", label);
        }
      }
    };
  }

  function failure(element, texts) {
    return function () {
      var note = document.createElement("p");
      note.className = "message message-error";
      note.setAttribute("role", "alert");
      note.textContent = texts.loadError;
      element.parentNode.insertBefore(note, element);
    };
  }

  // outcome: "pending" while the server decides, then "moved" or "refused".
  function showStatus(text, outcome) {
    var status = document.getElementById("move-status");
    if (!status) {
      return;
    }
    status.textContent = text;
    status.className = "message " + (outcome === "refused" ? "message-error" : "message-success");
    status.setAttribute("data-outcome", outcome);
    status.hidden = false;
  }

  function moveBooking(info, config, calendar) {
    var url = info.event.extendedProps.moveUrl;
    if (!url) {
      info.revert();
      return;
    }
    var body = new URLSearchParams();
    body.set("start", wallClock(info.event.start));
    body.set("end", wallClock(info.event.end));
    showStatus(config.texts.moving, "pending");
    fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": config.csrfToken, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
    }).then(function (result) {
      if (!result.ok) {
        info.revert();
      }
      showStatus(result.answer.detail || config.texts.moveFailed, result.ok ? "moved" : "refused");
      calendar.refetchEvents();
    }).catch(function () {
      info.revert();
      showStatus(config.texts.moveFailed, "refused");
    });
  }

  function instrumentCalendar(element, config) {
    var calendar;
    var freeList = document.getElementById("free-list");
    var shownWeek = freeList ? freeList.getAttribute("data-week") : null;
    // The list's own week links (htmx) move the calendar along, and the calendar's buttons the list.
    document.body.addEventListener("htmx:afterSwap", function () {
      var list = document.getElementById("free-list");
      var week = list ? list.getAttribute("data-week") : null;
      if (calendar && week && week !== shownWeek) {
        shownWeek = week;
        calendar.gotoDate(week);
      }
    });
    var options = baseOptions(config);
    Object.assign(options, {
      slotDuration: minutes(config.slotMinutes),
      snapDuration: minutes(config.slotMinutes),
      slotMinTime: config.slotMinTime,
      slotMaxTime: config.slotMaxTime,
      events: { url: config.eventsUrl, failure: failure(element, config.texts) },
      selectable: config.selectable,
      selectMirror: true,
      // Only free time can be selected: free intervals are background events of the group "free".
      selectConstraint: "free",
      select: function (info) {
        var end = info.end;
        var shortest = config.minMinutes * 60000;
        if (end - info.start < shortest) {
          end = new Date(info.start.getTime() + shortest);
        }
        window.location.assign(config.newUrl + "&start=" + encodeURIComponent(wallClock(info.start)) +
          "&end=" + encodeURIComponent(wallClock(end)));
      },
      // The booker's own open bookings are editable (the server says which): dragging or resizing one
      // posts the new times to the same checks as the form; a refusal puts the block back.
      editable: false,
      eventDrop: function (info) { moveBooking(info, config, calendar); },
      eventResize: function (info) { moveBooking(info, config, calendar); },
      datesSet: function (info) {
        var monday = wallClock(info.start).slice(0, 10);
        var url = new URL(window.location.href);
        url.searchParams.set("date", monday);
        window.history.replaceState(null, "", url);
        if (freeList && window.htmx && monday !== shownWeek) {
          shownWeek = monday;
          window.htmx.ajax("GET", config.freeListUrl + "?date=" + monday, { target: "#free-list", swap: "outerHTML" });
        }
      }
    });
    calendar = new FullCalendar.Calendar(element, options);
    calendar.render();
    showViewerZone(config.timeZone);
    element.setAttribute("data-ready", "true");
    return calendar;
  }

  function labCalendar(element, config) {
    var options = baseOptions(config);
    Object.assign(options, {
      slotMinTime: "06:00:00",
      slotMaxTime: "23:00:00",
      events: { url: config.eventsUrl, failure: failure(element, config.texts) }
    });
    var calendar = new FullCalendar.Calendar(element, options);
    calendar.render();
    element.setAttribute("data-ready", "true");
    return calendar;
  }

  function start() {
    var element = document.getElementById("calendar");
    var config = readConfig("calendar-config");
    if (element && config) {
      instrumentCalendar(element, config);
    }
    var labElement = document.getElementById("lab-calendar");
    var labConfig = readConfig("lab-calendar-config");
    if (labElement && labConfig) {
      labCalendar(labElement, labConfig);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
