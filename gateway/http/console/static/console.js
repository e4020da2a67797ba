// The live tail: audit events arrive as server-sent events and are added as table
// rows with textContent only, so nothing in an event is ever parsed as markup.
(function () {
  "use strict";
  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }
  function start() {
    var body = document.getElementById("tail");
    if (!body) { return; }
    var status = document.getElementById("tail-status");
    var source = new EventSource(body.getAttribute("data-source"));
    source.onopen = function () { status.textContent = "live"; };
    source.onerror = function () { status.textContent = "reconnecting…"; };
    source.onmessage = function (message) {
      var e = JSON.parse(message.data);
      var row = document.createElement("tr");
      var first = cell(row, "");
      var link = document.createElement("a");
      link.href = "/console/audit/" + encodeURIComponent(e.seq);
      link.textContent = String(e.seq);
      first.appendChild(link);
      cell(row, (e.ts || "").slice(0, 19).replace("T", " "));
      cell(row, e.actor);
      cell(row, (e.actor_kind || "") + (e.actor_org ? " / " + e.actor_org : ""));
      cell(row, e.action);
      cell(row, e.dataset);
      var decision = document.createElement("span");
      decision.className = "decision " + (e.decision || "");
      decision.textContent = e.decision || "";
      cell(row, "").appendChild(decision);
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > 500) { body.deleteRow(body.rows.length - 1); }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
