// tunasync status page: optional extras over a page that works without JavaScript.
// - the search box filters rows as one types (the form still submits without it);
// - the page refreshes itself: it asks again with its ETag every 10 s (a 304 costs the
//   manager nothing) and swaps in the parts marked data-live;
// - on a running job's page, the log follows live (Server-Sent Events).
(function () {
  "use strict";
  var REFRESH_MS = 10000;
  var MAX_LOG_CHARS = 2000000;
  var etag = document.documentElement.getAttribute("data-etag");

  function applySearch() {
    var box = document.getElementById("q");
    var table = document.getElementById("jobs");
    if (!box || !table) return;
    var words = box.value.trim().toLowerCase();
    var shown = 0;
    var rows = table.tBodies[0] ? table.tBodies[0].rows : [];
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var text = (row.getAttribute("data-name") + " " + row.getAttribute("data-upstream")).toLowerCase();
      var keep = words === "" || text.indexOf(words) !== -1;
      row.hidden = !keep;
      if (keep) shown++;
    }
    var none = document.getElementById("none");
    if (none) none.hidden = shown !== 0;
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var parts = document.querySelectorAll("[data-live]");
    for (var i = 0; i < parts.length; i++) {
      var name = parts[i].getAttribute("data-live");
      var next = fresh.querySelector('[data-live="' + name + '"]');
      if (next) parts[i].replaceWith(document.importNode(next, true));
    }
    var stamp = fresh.getElementById("updated");
    var here = document.getElementById("updated");
    if (stamp && here) here.replaceWith(document.importNode(stamp, true));
    applySearch();
  }

  function refresh() {
    if (document.hidden) return schedule();
    var headers = {};
    if (etag) headers["If-None-Match"] = etag;
    fetch(location.href, { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status !== 200) return;
        etag = response.headers.get("ETag") || etag;
        return response.text().then(swap);
      })
      .catch(function () {})
      .then(schedule);
  }

  function schedule() {
    window.setTimeout(refresh, REFRESH_MS);
  }

  function followLog() {
    var pane = document.getElementById("log");
    if (!pane || !pane.getAttribute("data-follow") || !window.EventSource) return;
    var source = new EventSource(pane.getAttribute("data-follow"));
    var first = true;
    source.onmessage = function (event) {
      var atEnd = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
      if (first) {
        pane.textContent = "";
        first = false;
      }
      var text = pane.textContent + event.data + "\n";
      if (text.length > MAX_LOG_CHARS) text = text.slice(text.length - MAX_LOG_CHARS);
      pane.textContent = text;
      if (atEnd) pane.scrollTop = pane.scrollHeight;
    };
    source.addEventListener("end", function () {
      source.close();
      var note = document.getElementById("following");
      if (note) note.textContent = "the run ended";
    });
    source.onerror = function () {
      source.close();
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("q");
    if (box) box.addEventListener("input", applySearch);
    applySearch();
    followLog();
    schedule();
  });
})();
