/*
 * Live machine status for the admin, from the staff socket /ws/live/ (devices/consumers.py).
 *
 * Pages mark what a message may change with data attributes (devices/admin.py renders them):
 *   data-device-id="42" data-live="online|state|temperature|last_seen|bins"
 *   data-live="fleet"   the header's "online / total" counter, refreshed from its data-url; its
 *                       data-socket-origin names the socket's origin when it is not the page's
 * and operations/admin/:
 *   data-live="alarms"  the sidebar's active alarm counts, refreshed from its data-url on alarm.*;
 *                       a new critical alarm also shows a notice (toast)
 *   data-live="job" data-job-id="7"          a background job's progress (job.progress, or polled)
 *   data-live="batch" data-batch-id="3"      a command batch's per-state counts (batch/command.updated)
 *   data-live="command" data-command-id="…"  a remote command's status (command.updated)
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

  function markRange(element, value) {
    var low = Number(element.dataset.rangeMin);
    var high = Number(element.dataset.rangeMax);
    var inRange = value === null || value === undefined || isNaN(low) || (value >= low && value <= high);
    element.dataset.inRange = inRange ? "true" : "false";
    if (inRange) element.removeAttribute("title");
    else element.title = element.dataset.outOfRangeTitle || "";
  }

  function updateTemperature(deviceId, value) {
    elements(deviceId, "temperature").forEach(function (element) {
      setText(element, temperatureText(value));
      markRange(element, value);
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

  // --- Operations: alarms, background jobs, command batches (operations/admin/) -----------------

  var ALARM_REFRESH_DELAY_MS = 500;
  var BATCH_REFRESH_DELAY_MS = 700;
  var JOB_POLL_MS = 4000;
  var TOAST_MS = 20000;
  var FINISHED_JOB = { succeeded: true, failed: true, canceled: true };

  var alarmTimer = null;
  var batchTimers = {};
  var jobPoller = null;

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      });
  }

  function parsed(text) {
    try {
      return JSON.parse(text || "{}");
    } catch (error) {
      return {};
    }
  }

  function alarmBadges() {
    return document.querySelectorAll('[data-live="alarms"][data-url]');
  }

  function scheduleAlarmRefresh() {
    if (alarmTimer !== null || !alarmBadges().length) return;
    alarmTimer = setTimeout(function () {
      alarmTimer = null;
      refreshAlarms();
    }, ALARM_REFRESH_DELAY_MS);
  }

  function refreshAlarms() {
    alarmBadges().forEach(function (badge) {
      getJson(badge.dataset.url)
        .then(function (counts) {
          if (!counts) return;
          badge.querySelectorAll("[data-severity]").forEach(function (element) {
            var value = counts[element.dataset.severity];
            if (value === undefined) return;
            element.dataset.count = String(value);
            setText(element, String(value));
          });
        })
        .catch(function () {});
    });
  }

  function toastContainer() {
    var container = document.getElementById("cs-toasts");
    if (!container) {
      container = document.createElement("div");
      container.id = "cs-toasts";
      container.className = "cs-toasts";
      container.setAttribute("aria-live", "assertive");
      document.body.appendChild(container);
    }
    return container;
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // One click from the toast: the staff API's acknowledge, as the signed-in user (session + CSRF).
  function acknowledgeAlarm(urlTemplate, alarmId) {
    var url = urlTemplate.replace("/0/", "/" + encodeURIComponent(alarmId) + "/");
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    })
      .then(function (response) {
        return response.ok;
      })
      .catch(function () {
        return false;
      });
  }

  function showCriticalAlarm(alarm) {
    var badge = alarmBadges()[0];
    if (!badge) return;
    var types = parsed(badge.dataset.typeLabels);
    var toast = document.createElement("div");
    toast.className = "cs-toast";
    toast.setAttribute("role", "alert");
    toast.dataset.alarmId = String(alarm.id);

    var icon = document.createElement("span");
    icon.className = "material-symbols-outlined cs-toast-icon";
    icon.textContent = "warning";
    var body = document.createElement("div");
    body.className = "cs-toast-body";
    var title = document.createElement("strong");
    title.textContent = (badge.dataset.toastTitle || "Critical alarm") + ": " + (types[alarm.type] || alarm.type);
    var message = document.createElement("span");
    message.textContent = alarm.message || "";
    body.appendChild(title);
    body.appendChild(message);
    var open = document.createElement("a");
    open.className = "cs-toast-open";
    open.href = (badge.dataset.alarmUrl || "").replace("/0/", "/" + encodeURIComponent(alarm.id) + "/");
    open.textContent = badge.dataset.openLabel || "Open";
    var acknowledge = null;
    if (badge.dataset.acknowledgeUrl) {
      acknowledge = document.createElement("button");
      acknowledge.type = "button";
      acknowledge.className = "cs-toast-acknowledge";
      acknowledge.textContent = badge.dataset.acknowledgeLabel || "Acknowledge";
      acknowledge.addEventListener("click", function () {
        acknowledge.disabled = true;
        acknowledgeAlarm(badge.dataset.acknowledgeUrl, alarm.id).then(function (ok) {
          if (!ok) {
            acknowledge.disabled = false;
            return;
          }
          acknowledge.textContent = badge.dataset.acknowledgedLabel || "Acknowledged";
          toast.dataset.acknowledged = "true";
          scheduleAlarmRefresh();
          window.setTimeout(function () {
            toast.remove();
          }, 1500);
        });
      });
    }
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "cs-toast-dismiss";
    dismiss.setAttribute("aria-label", badge.dataset.dismissLabel || "Dismiss");
    dismiss.textContent = "\u00d7";
    dismiss.addEventListener("click", function () {
      toast.remove();
    });

    toast.appendChild(icon);
    toast.appendChild(body);
    toast.appendChild(open);
    if (acknowledge) toast.appendChild(acknowledge);
    toast.appendChild(dismiss);
    toastContainer().appendChild(toast);
    window.setTimeout(function () {
      toast.remove();
    }, TOAST_MS);
  }

  function renderJob(element, job) {
    var labels = parsed(element.dataset.labels);
    var progress = Math.max(0, Math.min(100, Number(job.progress) || 0));
    element.dataset.status = job.status;
    var bar = element.querySelector(".cs-progress");
    if (bar) bar.setAttribute("aria-valuenow", String(progress));
    var fill = element.querySelector(".cs-progress-fill");
    if (fill) fill.style.width = progress + "%";
    var percent = element.querySelector(".cs-job-percent");
    if (percent) setText(percent, progress + "%");
    var status = element.querySelector(".cs-job-status");
    if (status) setText(status, labels[job.status] || job.status);
    var link = element.querySelector(".cs-job-download");
    if (link) link.hidden = !(job.status === "succeeded" && job.download_url);
    if (FINISHED_JOB[job.status] && element.dataset.reloadWhenFinished === "true") {
      element.dataset.reloadWhenFinished = "false";
      window.location.reload();  // the page shows what the job made (a material import's preview)
    }
  }

  function updateJob(job) {
    document.querySelectorAll('[data-live="job"][data-job-id="' + String(job.id) + '"]').forEach(function (element) {
      renderJob(element, job);
    });
  }

  function unfinishedJobs() {
    return Array.prototype.filter.call(
      document.querySelectorAll('[data-live="job"][data-status-url]'),
      function (element) {
        return !FINISHED_JOB[element.dataset.status];
      }
    );
  }

  // Progress also comes by polling: without Redis a worker's events never reach this server's sockets.
  function watchJobs() {
    if (jobPoller !== null || !unfinishedJobs().length) return;
    jobPoller = window.setInterval(function () {
      var pending = unfinishedJobs();
      if (!pending.length) {
        window.clearInterval(jobPoller);
        jobPoller = null;
        return;
      }
      pending.forEach(function (element) {
        getJson(element.dataset.statusUrl)
          .then(function (job) {
            if (job) renderJob(element, job);
          })
          .catch(function () {});
      });
    }, JOB_POLL_MS);
  }

  function scheduleBatchRefresh(batchId) {
    var key = String(batchId);
    if (batchTimers[key] || !document.querySelector('[data-live="batch"][data-batch-id="' + key + '"]')) return;
    batchTimers[key] = setTimeout(function () {
      delete batchTimers[key];
      refreshBatch(key);
    }, BATCH_REFRESH_DELAY_MS);
  }

  function refreshBatch(batchId) {
    document.querySelectorAll('[data-live="batch"][data-batch-id="' + batchId + '"][data-url]').forEach(function (element) {
      getJson(element.dataset.url)
        .then(function (summary) {
          if (!summary) return;
          var total = summary.total || 1;
          Object.keys(summary.counts || {}).forEach(function (status) {
            var count = summary.counts[status];
            var segment = element.querySelector('.cs-batch-segment[data-status="' + status + '"]');
            if (segment) segment.style.width = (count * 100) / total + "%";
            var legend = element.querySelector('.cs-batch-count[data-status="' + status + '"]');
            if (legend) {
              legend.dataset.count = String(count);
              var number = legend.querySelector("b");
              if (number) setText(number, String(count));
            }
          });
        })
        .catch(function () {});
    });
  }

  function updateCommand(command) {
    document.querySelectorAll('[data-live="command"][data-command-id="' + String(command.id) + '"]').forEach(function (element) {
      var labels = parsed(element.dataset.labels);
      element.dataset.status = command.status;
      setText(element, labels[command.status] || command.status);
    });
  }

  function refreshRolloutStages(element, rollout) {
    (rollout.stages || []).forEach(function (stage) {
      var row = element.querySelector('.cs-rollout-stage[data-stage="' + stage.index + '"]');
      if (!row) return;
      row.querySelectorAll(".cs-rollout-count").forEach(function (cell) {
        var name = cell.dataset.status;
        var value = name === "stage_status" ? stage.status : stage[name];
        var number = cell.querySelector("b");
        if (number && value !== undefined) setText(number, String(value));
      });
    });
  }

  // A rollout's health per package version: rows are redrawn (a version may appear), cells flash on change.
  function refreshRolloutHealth(element, rollout) {
    var body = element.querySelector(".cs-rollout-health-rows");
    if (!body || !rollout.health) return;
    rollout.health.forEach(function (health, position) {
      var row = body.querySelector('.cs-rollout-health-row[data-version="' + CSS.escape(health.version) + '"]');
      if (!row) {
        row = document.createElement("tr");
        row.className = "cs-rollout-health-row";
        row.dataset.version = health.version;
        for (var i = 0; i < 6; i += 1) row.appendChild(document.createElement("td"));
        body.appendChild(row);
      }
      var sales = Object.keys(health.sales).map(function (currency) {
        return currency + " " + health.sales[currency];
      });
      var name = (health.version || body.dataset.none) + (position === 0 ? " (" + body.dataset.this + ")" : "");
      var rate = health.failed_brew_rate_pct === null ? "\u2014" : String(health.failed_brew_rate_pct) + " %";
      [name, health.machines, health.orders, sales.join(", ") || "\u2014", health.failed_brews, rate].forEach(
        function (value, column) {
          setText(row.children[column], String(value));
        }
      );
    });
  }

  function refreshRollout(rolloutId) {
    var elements = document.querySelectorAll('[data-live="rollout"][data-rollout-id="' + String(rolloutId) + '"][data-url]');
    if (!elements.length) return;
    getJson(elements[0].dataset.url) // the stages and the health come from the same detail
      .then(function (reply) {
        var rollout = reply && reply.data; // the API's envelope
        if (!rollout) return;
        elements.forEach(function (element) {
          if (element.classList.contains("cs-rollout-health")) refreshRolloutHealth(element, rollout);
          else refreshRolloutStages(element, rollout);
        });
      })
      .catch(function () {});
  }

  handlers["rollout.updated"] = function (data) {
    refreshRollout(data.id);
  };
  handlers["alarm.opened"] = function (data) {
    scheduleAlarmRefresh();
    if (data.severity === "critical") showCriticalAlarm(data);
  };
  handlers["alarm.cleared"] = scheduleAlarmRefresh;
  handlers["alarm.acknowledged"] = scheduleAlarmRefresh;
  handlers["job.progress"] = updateJob;
  handlers["batch.updated"] = function (data) {
    scheduleBatchRefresh(data.id);
  };
  handlers["command.updated"] = function (data) {
    updateCommand(data);
    if (data.batch_id) scheduleBatchRefresh(data.batch_id);
  };

  // --- The dashboard (the admin's home page): its figures again from the API as the fleet moves -----

  var DASHBOARD_EVENTS = {
    "orders.created": true,
    "device.status": true,
    "device.bins": true,
    "alarm.opened": true,
    "alarm.cleared": true,
    "alarm.acknowledged": true,
    "rollout.updated": true,
  };
  var dashboardTimer = null;

  function figureOf(data, path) {
    return path.split(".").reduce(function (value, key) {
      return value === null || value === undefined ? value : value[key];
    }, data);
  }

  function renderSalesList(element, figures, withTicket) {
    element.textContent = "";
    (figures.length ? figures : [{ amount: "0", currency: "", orders: 0 }]).forEach(function (figure) {
      var line = document.createElement("p");
      var amount = document.createElement("span");
      amount.className = "text-3xl font-semibold";
      amount.textContent = figure.amount;
      line.appendChild(amount);
      line.appendChild(document.createTextNode(" " + figure.currency + " · " + figure.orders));
      if (withTicket && figure.average_ticket) line.appendChild(document.createTextNode(" · " + figure.average_ticket));
      element.appendChild(line);
    });
    flash(element);
  }

  function refreshDashboard() {
    document.querySelectorAll('[data-live="dashboard"][data-url]').forEach(function (element) {
      getJson(element.dataset.url)
        .then(function (reply) {
          var data = reply && reply.data;
          if (!data) return;
          element.querySelectorAll("[data-figure]").forEach(function (figure) {
            var value = figureOf(data, figure.dataset.figure);
            if (value !== undefined && value !== null) setText(figure, String(value));
          });
          element.querySelectorAll("[data-figure-list]").forEach(function (list) {
            var name = list.dataset.figureList;
            if (Array.isArray(data[name])) renderSalesList(list, data[name], name === "sales");
          });
        })
        .catch(function () {});
    });
  }

  // The charts and tables are drawn from the page the server renders (one mapping, in
  // operations/admin/dashboard.py): fetch this page again and move their data over, keeping each
  // Chart.js chart (and its colours) rather than drawing it again.
  function cssColour(value) {
    if (typeof value !== "string" || value.indexOf("var(") !== 0) return value;
    return getComputedStyle(document.documentElement).getPropertyValue(value.slice(4, -1)).trim();
  }

  function moveChartData(canvas, fresh) {
    var chart = window.Chart && window.Chart.getChart ? window.Chart.getChart(canvas) : null;
    var data = parsed(fresh.dataset.value);
    if (!chart || !data.datasets) return;
    chart.data.labels = data.labels;
    chart.data.datasets = data.datasets.map(function (dataset) {
      var kept = chart.data.datasets.filter(function (old) {
        return old.label === dataset.label;
      })[0];
      if (kept) {
        kept.data = dataset.data;
        return kept;
      }
      ["backgroundColor", "borderColor"].forEach(function (name) {
        if (dataset[name]) dataset[name] = cssColour(dataset[name]);
      });
      return dataset;
    });
    chart.update();
  }

  function refreshDashboardParts() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (part) {
          var name = part.dataset.livePart;
          var freshPart = fresh.querySelector('[data-live-part="' + name + '"]');
          if (!freshPart) return;
          var canvas = part.querySelector("canvas.chart");
          var freshCanvas = freshPart.querySelector("canvas.chart");
          if (canvas && freshCanvas) {
            moveChartData(canvas, freshCanvas);
          } else if (!canvas && !freshCanvas && part.innerHTML !== freshPart.innerHTML) {
            part.innerHTML = freshPart.innerHTML;
            flash(part);
          }
        });
      })
      .catch(function () {});
  }

  function scheduleDashboardRefresh() {
    if (dashboardTimer !== null || !document.querySelector('[data-live="dashboard"]')) return;
    dashboardTimer = setTimeout(function () {
      dashboardTimer = null;
      refreshDashboard();
      refreshDashboardParts();
    }, 1500);
  }

  // The socket's origin: settings.LIVE_WS_ORIGIN when /ws/ is served apart (daphne on its own port),
  // else this page's.
  function socketOrigin() {
    var holder = document.querySelector("[data-socket-origin]");
    if (holder && holder.dataset.socketOrigin) return holder.dataset.socketOrigin;
    return (window.location.protocol === "https:" ? "wss" : "ws") + "://" + window.location.host;
  }

  function connect() {
    var socket = new WebSocket(socketOrigin() + "/ws/live/");
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
      if (DASHBOARD_EVENTS[message.type]) scheduleDashboardRefresh();
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
    watchJobs();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
