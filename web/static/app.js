// Live updates: poll the page's JSON endpoint (body[data-poll]) every few seconds while the tab is visible.
(function () {
  "use strict";
  var INTERVAL = 3000;
  var timer = null;
  var ended = false;
  var url = document.body.getAttribute("data-poll");

  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }

  function link(href, text, title, className) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    if (title) a.title = title;
    if (className) a.className = className;
    return a;
  }

  function shortHash(h) { return h.length > 17 ? h.slice(0, 10) + "\u2026" + h.slice(-6) : h; }

  function linkValue(el) {
    var a = el.querySelector("a");
    return a ? (a.title || a.textContent.trim()) : el.textContent.trim();
  }

  // the same markup as the templates' macros: a credential links to its page, a hash to the search for it
  var LIVE_CELLS = [
    { attr: "data-job-credential", field: "credential_id", current: linkValue,
      render: function (v) { return link("/credentials/" + encodeURIComponent(v), v); } },
    { attr: "data-job-tx", field: "tx_hash", current: linkValue,
      render: function (v) { return link("/search?q=" + encodeURIComponent(v), shortHash(v), v, "mono"); } },
    { attr: "data-job-error", field: "error_message", current: function (el) { return el.textContent.trim(); },
      render: function (v) { return document.createTextNode(v); } }
  ];

  function renderAlerts(alerts) {
    var box = document.getElementById("alerts");
    if (!box || !alerts) return;
    box.textContent = "";
    alerts.forEach(function (a) {
      var div = document.createElement("div");
      div.className = "banner banner-" + a.kind;
      var title = document.createElement("strong");
      title.textContent = a.title;
      div.appendChild(title);
      div.appendChild(document.createTextNode(" " + a.message));
      box.appendChild(div);
    });
  }

  function apply(data) {
    renderAlerts(data.alerts);
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var v = get(data, el.getAttribute("data-live"));
      if (v !== undefined && v !== null) el.textContent = typeof v === "number" ? v.toLocaleString() : v;
    });
    document.querySelectorAll("[data-live-width]").forEach(function (el) {
      var v = get(data, el.getAttribute("data-live-width"));
      if (typeof v === "number") el.style.width = v + "%";
    });
    // an element shown only while its number is above zero (e.g. "Retry all N failed…")
    document.querySelectorAll("[data-live-show]").forEach(function (el) {
      var v = get(data, el.getAttribute("data-live-show"));
      if (typeof v === "number") el.hidden = v <= 0;
    });
    if (data.jobs) {
      document.querySelectorAll("[data-job-state]").forEach(function (el) {
        var job = data.jobs[el.getAttribute("data-job-state")];
        if (job) { el.textContent = job.state; el.className = "state state-" + job.state; }
      });
      // credential, transaction and error cells: rebuilt (links included) when their value changed
      LIVE_CELLS.forEach(function (cell) {
        document.querySelectorAll("[" + cell.attr + "]").forEach(function (el) {
          var job = data.jobs[el.getAttribute(cell.attr)];
          if (!job) return;
          var v = job[cell.field] == null ? "" : String(job[cell.field]);
          if (cell.current(el) === v) return;
          el.textContent = "";
          if (v) el.appendChild(cell.render(v));
        });
      });
    }
    var status = document.getElementById("live-status");
    if (status) status.textContent = "updated " + new Date().toLocaleTimeString();
  }

  function poll() {
    timer = null;
    if (document.visibilityState !== "visible") return;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) {  // the session ended (logout elsewhere, idle, password change): stop asking
          ended = true;
          var status = document.getElementById("live-status");
          if (status) status.textContent = "your session has ended: reload the page to log in again";
        }
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) apply(data); })
      .catch(function () {
        var status = document.getElementById("live-status");
        if (status) status.textContent = "live updates paused: server unreachable";
      })
      .then(schedule);
  }

  function schedule() {
    if (!ended && timer === null && document.visibilityState === "visible") timer = setTimeout(poll, INTERVAL);
  }

  // widths are set here, not in style attributes: the Content-Security-Policy allows no inline styles
  document.querySelectorAll("[data-width]").forEach(function (el) {
    el.style.width = parseFloat(el.getAttribute("data-width")) + "%";
  });

  if (url) {
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") { if (timer === null) poll(); }
      else if (timer !== null) { clearTimeout(timer); timer = null; }
    });
    schedule();
  }

  // "select all" checkbox of the job table
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name=job_ids]").forEach(function (c) { c.checked = box.checked; });
    });
  });
})();
