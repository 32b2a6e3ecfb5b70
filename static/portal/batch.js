// Line numbers for the script editor: a gutter kept in step with the textarea's lines and scroll.
(function () {
  document.querySelectorAll("[data-editor]").forEach(function (editor) {
    var gutter = editor.querySelector(".code-gutter");
    var area = editor.querySelector("textarea");
    if (!gutter || !area) return;
    function number() {
      var lines = area.value.split("\n").length;
      var out = [];
      for (var i = 1; i <= lines; i++) out.push(i);
      gutter.textContent = out.join("\n");
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", number);
    area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
    area.addEventListener("keydown", function (e) {
      if (e.key !== "Tab" || e.shiftKey) return; // a tab in a script, not a jump to the next field
      e.preventDefault();
      var s = area.selectionStart;
      area.setRangeText("\t", s, area.selectionEnd, "end");
      number();
    });
    number();
  });
})();
