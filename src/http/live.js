// The admin page's live calls: follows /api/calls/events (server-sent events, one snapshot of
// every call per change) and re-renders the body of table#live, the same columns as the
// server's rendering (src/http/live_events.rs). Caller data goes in as text only, never as
// markup. Durations tick locally between events. Served by ivr itself; no CDN, no build step.
(function () {
  "use strict";
  var table = document.getElementById("live");
  if (!table || !table.tBodies.length || !window.EventSource) {
    return;
  }
  var body = table.tBodies[0];
  var heading = document.getElementById("live-heading");
  var columns = table.tHead ? table.tHead.rows[0].cells.length : 7;
  var calls = [];
  var receivedAt = Date.now();

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
  }

  function minutes(s) {
    var sec = s % 60;
    return Math.floor(s / 60) + ":" + (sec < 10 ? "0" : "") + sec;
  }

  function render() {
    var elapsed = Math.max(0, Math.floor((Date.now() - receivedAt) / 1000));
    var rows = document.createDocumentFragment();
    if (calls.length === 0) {
      var empty = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = columns;
      td.textContent = "No calls right now.";
      empty.appendChild(td);
      rows.appendChild(empty);
    }
    calls.forEach(function (c) {
      var row = document.createElement("tr");
      row.setAttribute("data-call-id", c.call_id);
      cell(row, c.caller);
      cell(row, c.client || "-");
      cell(row, c.called);
      cell(row, c.repeat ? "repeat" : "");
      cell(row, c.node || "-");
      cell(row, c.state_text, c.state);
      cell(row, minutes(c.duration_s + elapsed));
      rows.appendChild(row);
    });
    while (body.firstChild) {
      body.removeChild(body.firstChild);
    }
    body.appendChild(rows);
    if (heading) {
      heading.textContent = "Live calls (" + calls.length + ")";
    }
  }

  var events = new EventSource("/api/calls/events");
  events.addEventListener("calls", function (e) {
    var snapshot = JSON.parse(e.data);
    calls = snapshot.calls || [];
    receivedAt = Date.now();
    render();
  });
  // A closed stream (the session expired, the server restarted): reload, as without scripts.
  events.onerror = function () {
    if (events.readyState === EventSource.CLOSED) {
      setTimeout(function () { window.location.reload(); }, 3000);
    }
  };
  setInterval(render, 1000);
})();
