// Today's page reloads itself every few minutes while it is open; the page says how
// often in data-refresh-s (only today's page has it). Without JavaScript the page has a
// Refresh link instead.
(function () {
  "use strict";
  var note = document.querySelector("p.updated[data-refresh-s]");
  var seconds = note ? Number(note.getAttribute("data-refresh-s")) : 0;
  if (seconds > 0) {
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
})();
