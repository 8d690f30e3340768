// Live updates: poll the page's JSON endpoint (body[data-poll]) every few seconds while the tab is visible.
(function () {
  "use strict";
  var INTERVAL = 3000;
  var timer = null;
  var url = document.body.getAttribute("data-poll");

  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }

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
    if (data.jobs) {
      document.querySelectorAll("[data-job-state]").forEach(function (el) {
        var job = data.jobs[el.getAttribute("data-job-state")];
        if (job) { el.textContent = job.state; el.className = "state state-" + job.state; }
      });
      // credential, transaction and error cells of rows whose content changed since the page was rendered
      [["data-job-credential", "credential_id"], ["data-job-tx", "tx_hash"], ["data-job-error", "error_message"]]
        .forEach(function (pair) {
          document.querySelectorAll("[" + pair[0] + "]").forEach(function (el) {
            var job = data.jobs[el.getAttribute(pair[0])];
            if (!job) return;
            var v = job[pair[1]] == null ? "" : String(job[pair[1]]);
            if (el.textContent.trim() !== v && !(pair[1] === "tx_hash" && v && el.title === v)) {
              if (pair[1] === "tx_hash" && v) { el.title = v; el.textContent = v.slice(0, 10) + "…" + v.slice(-6); }
              else el.textContent = v;
            }
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
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () {
        var status = document.getElementById("live-status");
        if (status) status.textContent = "live updates paused: server unreachable";
      })
      .then(schedule);
  }

  function schedule() {
    if (timer === null && document.visibilityState === "visible") timer = setTimeout(poll, INTERVAL);
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
