/* Draws the oversight dashboard's charts with Chart.js (vendored). Each <canvas data-chart="key">
   has its data in a <script type="application/json" id="chart-data-key"> written by the server:
   {kind, labels, datasets: [{label, data}], horizontal, percent}. No inline script, no CDN. */
(function () {
  "use strict";

  var PALETTE = ["#1f6feb", "#e8710a", "#2da44e", "#a371f7", "#cf222e", "#6e7781"];

  function axisLabel(percent) {
    return percent ? function (value) { return value + "%"; } : undefined;
  }

  function draw(canvas) {
    var source = document.getElementById("chart-data-" + canvas.dataset.chart);
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var spec = JSON.parse(source.textContent);
    var valueAxis = spec.horizontal ? "x" : "y";
    var scales = {};
    scales[valueAxis] = { beginAtZero: true, ticks: { callback: axisLabel(spec.percent) } };
    new window.Chart(canvas, {
      type: spec.kind,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (dataset, index) {
          var colour = PALETTE[index % PALETTE.length];
          return { label: dataset.label, data: dataset.data, backgroundColor: colour, borderColor: colour };
        })
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: scales,
        plugins: { legend: { display: spec.datasets.length > 1 } }
      }
    });
    canvas.dataset.drawn = "true";
  }

  function drawAll() {
    if (typeof window.Chart !== "undefined") {
      // The page's own font stack, so Chinese labels use the same (CJK-capable) fonts as the tables.
      window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
    }
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
