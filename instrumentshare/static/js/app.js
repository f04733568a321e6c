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
document.addEventListener("DOMContentLoaded", fitNavigation);
