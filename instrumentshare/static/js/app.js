// Small page behaviours, kept out of inline attributes so the content security policy can forbid those.
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) {
    field.form.requestSubmit ? field.form.requestSubmit() : field.form.submit();
  }
});

// Navigation: fold the entries into a menu when they do not fit on one line (measured, not guessed:
// the number of entries depends on the person's roles and the language).
function fitNavigation() {
  const nav = document.querySelector("header nav");
  if (!nav) return;
  const open = nav.classList.contains("open");
  nav.classList.remove("collapsed", "open");
  // Pico's lists reach a little past the nav's edges (negative margins): compare each list with its
  // own content, and the whole with the header's box, not pixel for pixel.
  const crowded = [...nav.children].some((list) => list.scrollWidth > list.clientWidth + 1)
    || nav.scrollWidth > nav.clientWidth + 40;
  if (crowded) {
    nav.classList.add("collapsed");
    if (open) nav.classList.add("open");
  }
  const toggle = nav.querySelector("[data-nav-toggle]");
  if (toggle) toggle.setAttribute("aria-expanded", nav.classList.contains("open") ? "true" : "false");
}
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-nav-toggle]");
  if (!toggle) return;
  const nav = toggle.closest("nav");
  nav.classList.toggle("open");
  toggle.setAttribute("aria-expanded", nav.classList.contains("open") ? "true" : "false");
});
window.addEventListener("resize", fitNavigation);

// Each table of the page scrolls sideways in its own box when it is wider than the page, so the page
// itself never does (tables shown as cards on a phone fit anyway).
function boxTables(root) {
  root.querySelectorAll("main table").forEach((table) => {
    if (table.parentElement.classList.contains("table-scroll") || table.closest(".fc")) return;
    const box = document.createElement("div");
    box.className = "table-scroll";
    table.replaceWith(box);
    box.appendChild(table);
  });
}
document.addEventListener("DOMContentLoaded", () => boxTables(document));
document.addEventListener("htmx:afterSwap", () => boxTables(document));
document.addEventListener("DOMContentLoaded", fitNavigation);

// A header checkbox [data-select-all=NAME] ticks every checkbox named NAME in its table.
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-select-all]");
  if (!all) return;
  const table = all.closest("table");
  table.querySelectorAll(`input[type=checkbox][name="${all.dataset.selectAll}"]`).forEach((box) => {
    box.checked = all.checked;
  });
});

// details[data-open-wide] are open on a wide screen and folded on a phone (search filters before the
// results); a page part swapped by htmx keeps the state the person left them in.
const wide = window.matchMedia("(min-width: 769px)");
const foldState = new Map();
function unfoldWide() {
  document.querySelectorAll("details[data-open-wide]").forEach((details) => {
    if (details.id && foldState.has(details.id)) details.open = foldState.get(details.id);
    else if (wide.matches) details.open = true;
  });
  foldState.clear();
}
document.addEventListener("DOMContentLoaded", unfoldWide);
document.addEventListener("htmx:beforeSwap", () => {
  document.querySelectorAll("details[data-open-wide][id]").forEach((details) => foldState.set(details.id, details.open));
});
document.addEventListener("htmx:afterSwap", unfoldWide);
