// Vigil's pages work without this file; it only adds conveniences. It never writes
// markup: values stay text (textContent only), and it loads nothing.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll("input.pick");
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = all.checked;
    });
  }
  var filters = document.getElementById("filters");
  if (filters) {
    var selects = filters.querySelectorAll("select");
    for (var j = 0; j < selects.length; j++) {
      selects[j].addEventListener("change", function () { filters.submit(); });
    }
  }
  var bulk = document.getElementById("bulk");
  if (bulk) {
    bulk.addEventListener("submit", function (event) {
      if (!bulk.querySelector("input.pick:checked")) {
        event.preventDefault();
        var note = document.getElementById("bulk-note") || document.createElement("span");
        note.id = "bulk-note";
        note.className = "error";
        note.textContent = " select alerts first";
        bulk.querySelector(".bulk").appendChild(note);
      }
    });
  }
});
