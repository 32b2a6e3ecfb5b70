// The VM list's bulk delete (select all, count, names in the dialog) and the copy buttons of a VM's page.
document.addEventListener("change", function (e) {
  if (e.target.id === "select-all") document.querySelectorAll("input[name=server]").forEach(function (c) { c.checked = e.target.checked; });
  var n = document.querySelectorAll("input[name=server]:checked").length, btn = document.getElementById("bulk-delete");
  if (btn) { btn.disabled = n === 0; btn.textContent = n ? "Delete " + n + " selected" : "Delete selected"; }
});
document.addEventListener("show.bs.modal", function () {
  var names = Array.from(document.querySelectorAll("input[name=server]:checked")).map(function (c) { return c.dataset.name; });
  var target = document.getElementById("confirm-delete-names");
  if (target) target.textContent = names.join(", ");
});
document.addEventListener("click", function (e) {
  var btn = e.target.closest("[data-copy]");
  if (!btn) return;
  var text = document.getElementById(btn.dataset.copy).textContent.trim();
  var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); }
  else { var t = document.createElement("textarea"); t.value = text; document.body.appendChild(t); t.select(); document.execCommand("copy"); t.remove(); done(); }
});
