// Behaviour every page shares, as data attributes rather than inline handlers (the
// Content-Security-Policy allows no inline script): data-confirm asks before a form is sent,
// data-autosubmit sends a filter form when its select changes.
document.addEventListener("submit", function (e) {
  var form = e.target, question = form.dataset ? form.dataset.confirm : null;
  var button = e.submitter, asked = button && button.dataset ? button.dataset.confirm : null;
  if ((asked || question) && !window.confirm(asked || question)) e.preventDefault();
});
document.addEventListener("change", function (e) {
  if (e.target.matches && e.target.matches("select[data-autosubmit]") && e.target.form) e.target.form.requestSubmit();
});
