// Sort the listing by a column without reloading (directories stay first, the parent link
// stays on top; names in natural order), sort it on load when the server did not, and show
// dates in the reader's time zone. Without script the column links ask the server for the
// same order.
(function () {
  var table = document.querySelector("div.list table");
  if (!table || !table.tHead || !table.tBodies.length) return;
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var letters = "NMST";
  function name(row) { return row.cells[0].textContent; }
  function num(row, c) { return Number(row.cells[c].getAttribute("data-v")) || 0; }
  function byName(a, b) {
    return name(a).localeCompare(name(b), undefined, { numeric: true, sensitivity: "base" });
  }
  function sort(c, desc) {
    var rows = Array.prototype.slice.call(body.rows);
    var top = rows.filter(function (r) { return r.classList.contains("p"); });
    rows = rows.filter(function (r) { return !r.classList.contains("p"); });
    rows.sort(function (a, b) {
      var ad = a.classList.contains("d"), bd = b.classList.contains("d");
      if (ad !== bd) return ad ? -1 : 1;
      var r = 0;
      if (c === 1 || c === 2) r = num(a, c) - num(b, c);
      else if (c === 3) r = a.cells[3].textContent.localeCompare(b.cells[3].textContent);
      if (r === 0) r = byName(a, b);
      return desc ? -r : r;
    });
    top.concat(rows).forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) {
      var on = i === c;
      if (on) heads[i].setAttribute("aria-sort", desc ? "descending" : "ascending");
      else heads[i].removeAttribute("aria-sort");
      var a = heads[i].querySelector("a");
      if (a) a.setAttribute("href", "?C=" + letters[i] + "&O=" + (on && !desc ? "D" : "A"));
    }
  }
  table.tHead.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a") : null;
    if (!a) return;
    var c = a.parentNode.cellIndex;
    var desc = heads[c].getAttribute("aria-sort") === "ascending";
    ev.preventDefault();
    sort(c, desc);
    if (window.history && history.replaceState) {
      history.replaceState(null, "", "?C=" + letters[c] + "&O=" + (desc ? "D" : "A"));
    }
  });
  // The server did not sort (dir-listing.sort = "disable"): sort here, as the query asks.
  if (!table.tHead.querySelector("th[aria-sort]")) {
    var q = /[?&;]C=([NMSTD])/.exec(location.search), o = /[?&;]O=([AD])/.exec(location.search);
    sort(q ? Math.max(0, letters.indexOf(q[1] === "D" ? "T" : q[1])) : 0, !!o && o[1] === "D");
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  var times = document.querySelectorAll("td.m time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var d = new Date(times[i].getAttribute("datetime"));
    if (isNaN(d.getTime())) continue;
    times[i].title = times[i].getAttribute("datetime");
    times[i].textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
})();
