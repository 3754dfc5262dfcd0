/*
 * Live machine status for the admin, from the staff socket /ws/live/ (devices/consumers.py).
 *
 * Pages mark what a message may change with data attributes (devices/admin.py renders them):
 *   data-device-id="42" data-live="online|state|temperature|last_seen|bins"
 *   data-live="fleet"   the header's "online / total" counter, refreshed from its data-url
 * No dependencies; loaded on every admin page through UNFOLD["SCRIPTS"].
 */
(function () {
  "use strict";

  var MAX_BACKOFF_MS = 30000;
  var RELATIVE_TIME_REFRESH_MS = 30000;
  var FLEET_REFRESH_DELAY_MS = 1500;

  var attempts = 0;
  var knownOnline = {};
  var fleetTimer = null;

  function labels() {
    var node = document.getElementById("coffeeshop-live-labels");
    if (!node) return { states: {} };
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return { states: {} };
    }
  }

  function elements(deviceId, field) {
    return document.querySelectorAll(
      '[data-device-id="' + String(deviceId) + '"][data-live="' + field + '"]'
    );
  }

  function flash(element) {
    element.classList.remove("cs-flash");
    void element.offsetWidth; // restart the animation
    element.classList.add("cs-flash");
  }

  function setText(element, text) {
    if (element.textContent !== text) {
      element.textContent = text;
      flash(element);
    }
  }

  function relativeTime(iso) {
    var seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    var lang = document.documentElement.lang || undefined;
    if (!window.Intl || !Intl.RelativeTimeFormat) return new Date(iso).toLocaleString(lang);
    var format = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
    var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) {
        return format.format(Math.round(seconds / units[i][1]), units[i][0]);
      }
    }
    return format.format(seconds, "second");
  }

  function temperatureText(value) {
    return value === null || value === undefined ? "\u2013" : Number(value).toFixed(1) + " \u00b0C";
  }

  function binTitle(bin) {
    return "#" + bin.index + " " + bin.material + " " + Math.round(bin.level_pct) + "% (" +
      Number(bin.remaining) + "/" + Number(bin.capacity) + " " + bin.unit + ")";
  }

  function renderBins(element, bins) {
    element.textContent = "";
    if (!bins.length) {
      element.textContent = "\u2013";
      return;
    }
    bins.forEach(function (bin) {
      var bar = document.createElement("span");
      bar.className = "cs-bin";
      bar.dataset.low = bin.is_low ? "true" : "false";
      bar.title = binTitle(bin);
      var fill = document.createElement("span");
      fill.className = "cs-bin-fill";
      fill.style.height = Math.round(bin.level_pct) + "%";
      bar.appendChild(fill);
      element.appendChild(bar);
    });
    flash(element);
  }

  function updateOnline(deviceId, isOnline) {
    elements(deviceId, "online").forEach(function (element) {
      element.dataset.online = isOnline ? "true" : "false";
      var text = isOnline
        ? element.dataset.labelOnline || "Online"
        : element.dataset.labelOffline || "Offline";
      setText(element, text);
    });
    if (knownOnline[deviceId] !== isOnline) scheduleFleetRefresh();
    knownOnline[deviceId] = isOnline;
  }

  function updateState(deviceId, state) {
    var names = labels().states || {};
    elements(deviceId, "state").forEach(function (element) {
      element.dataset.state = state;
      setText(element, names[state] || state);
    });
  }

  function updateTemperature(deviceId, value) {
    elements(deviceId, "temperature").forEach(function (element) {
      setText(element, temperatureText(value));
    });
  }

  function updateLastSeen(deviceId, iso) {
    if (!iso) return;
    elements(deviceId, "last_seen").forEach(function (element) {
      element.setAttribute("datetime", iso);
      element.title = new Date(iso).toLocaleString(document.documentElement.lang || undefined);
      element.textContent = relativeTime(iso);
    });
  }

  function updateBins(deviceId, bins) {
    elements(deviceId, "bins").forEach(function (element) {
      renderBins(element, bins);
    });
  }

  function refreshRelativeTimes() {
    document.querySelectorAll('[data-live="last_seen"][datetime]').forEach(function (element) {
      element.textContent = relativeTime(element.getAttribute("datetime"));
    });
  }

  function scheduleFleetRefresh() {
    if (fleetTimer !== null || !document.querySelector('[data-live="fleet"]')) return;
    fleetTimer = setTimeout(function () {
      fleetTimer = null;
      refreshFleet();
    }, FLEET_REFRESH_DELAY_MS);
  }

  function refreshFleet() {
    document.querySelectorAll('[data-live="fleet"][data-url]').forEach(function (element) {
      fetch(element.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (counts) {
          if (!counts) return;
          var template = element.dataset.template || "%(online)s / %(total)s";
          setText(element, template.replace("%(online)s", counts.online).replace("%(total)s", counts.total));
        })
        .catch(function () {});
    });
  }

  var handlers = {
    "device.status": function (data) {
      if (data.is_online !== undefined) updateOnline(data.id, data.is_online);
      if (data.state !== undefined) updateState(data.id, data.state);
      if (data.temperature_c !== undefined) updateTemperature(data.id, data.temperature_c);
      if (data.last_seen_at !== undefined) updateLastSeen(data.id, data.last_seen_at);
      if (data.bins) updateBins(data.id, data.bins);
    },
    "device.readings": function (data) {
      (data.devices || []).forEach(function (reading) {
        updateTemperature(reading.id, reading.temperature_c);
        updateLastSeen(reading.id, reading.last_seen_at);
      });
    },
    "device.bins": function (data) {
      updateBins(data.id, data.bins || []);
    },
  };

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss" : "ws";
    var socket = new WebSocket(scheme + "://" + window.location.host + "/ws/live/");
    socket.addEventListener("open", function () {
      attempts = 0;
      document.documentElement.dataset.liveSocket = "connected";
    });
    socket.addEventListener("message", function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      var handle = handlers[message.type];
      if (handle && message.data) handle(message.data);
    });
    socket.addEventListener("close", function () {
      document.documentElement.dataset.liveSocket = "disconnected";
      var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempts));
      attempts += 1;
      window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
    });
  }

  function start() {
    // Only signed-in pages carry live elements (the header counter is on every one of them).
    if (!document.querySelector("[data-live]") || !("WebSocket" in window)) return;
    document.querySelectorAll('[data-live="online"][data-device-id]').forEach(function (element) {
      knownOnline[element.dataset.deviceId] = element.dataset.online === "true";
    });
    connect();
    window.setInterval(refreshRelativeTimes, RELATIVE_TIME_REFRESH_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
