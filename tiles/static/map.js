// Draws the planner map: the deck (layers, view, tooltip) comes as JSON in the page's
// <script type="application/json" id="deck-config"> block, never as script, so the page's
// Content-Security-Policy can allow scripts only from the server (this file and deckgl.js).
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("deck-config").textContent);
  for (const swatch of document.querySelectorAll("#legend [data-color]")) {
    swatch.style.background = swatch.dataset.color;  // CSSOM: no inline style attribute
  }
  window.riskmapDeck = createDeck({
    container: document.getElementById("deck-container"),
    jsonInput: config.deck,
    tooltip: config.tooltip,
    customLibraries: null,
    configuration: null,
  });
})();
