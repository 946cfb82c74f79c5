// Tascade dashboard: draws the board's dependency links (an SVG overlay from the cards'
// positions) and redraws them whenever htmx swaps the board. No other behaviour: the pages
// stay live through htmx polling (hx-trigger="every Ns" in the templates).
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function drawLinks(board) {
    const wrap = board.closest(".board-wrap") || board.parentElement;
    let svg = wrap.querySelector("svg.links");
    if (!svg) {
      svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "links");
      wrap.appendChild(svg);
    }
    svg.replaceChildren();
    const edges = JSON.parse(board.dataset.edges || "[]");
    const origin = wrap.getBoundingClientRect();
    svg.setAttribute("width", wrap.scrollWidth);
    svg.setAttribute("height", wrap.scrollHeight);
    const cardOf = (id) => board.querySelector('.card[data-task-id="' + id + '"]');
    let drawn = 0;
    for (const [from, to, unlockOn] of edges) {
      const a = cardOf(from), b = cardOf(to);
      if (!a || !b) continue;
      const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      const left = (r) => r.left - origin.left + wrap.scrollLeft;
      const top = (r) => r.top - origin.top + wrap.scrollTop + r.height / 2;
      // Leave the prerequisite on the side facing the dependent; within one column, loop
      // out on the right.
      const y1 = top(ra), y2 = top(rb);
      let d;
      if (Math.abs(left(ra) - left(rb)) < 5) {
        const x = left(ra) + ra.width, out = 18 + Math.min(40, Math.abs(y2 - y1) / 6);
        d = `M${x},${y1} C${x + out},${y1} ${x + out},${y2} ${x},${y2}`;
      } else {
        const forward = left(rb) > left(ra);
        const x1 = forward ? left(ra) + ra.width : left(ra);
        const x2 = forward ? left(rb) : left(rb) + rb.width;
        const bend = Math.max(30, Math.abs(x2 - x1) / 2) * (forward ? 1 : -1);
        d = `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
      }
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      path.setAttribute("data-from", from);
      path.setAttribute("data-to", to);
      if (unlockOn === "integrated") path.setAttribute("class", "integrated");
      svg.appendChild(path);
      drawn += 1;
    }
    board.dataset.linksDrawn = String(drawn);
  }

  function drawAll() {
    document.querySelectorAll(".board[data-edges]").forEach(drawLinks);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
  window.addEventListener("resize", drawAll);
  window.tascadeDrawLinks = drawAll;
})();
