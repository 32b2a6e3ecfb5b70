// Storage page: upload by drag and drop (or the file picker) with a progress bar per file.
// Each file is sent as the raw request body, so the server streams it to storage in chunks.
(function () {
  const zone = document.getElementById("storage-drop");
  if (!zone) return;
  const input = document.getElementById("upload-input");
  const list = document.getElementById("upload-list");
  const maxBytes = Number(zone.dataset.maxBytes);
  let pending = 0;

  function row(file) {
    const item = document.createElement("div");
    item.className = "list-group-item upload-item";
    item.dataset.testid = "upload-item";
    item.innerHTML = '<div class="d-flex justify-content-between small"><span class="fw-semibold name"></span>' +
      '<span class="status text-muted">waiting</span></div>' +
      '<div class="progress mt-1"><div class="progress-bar" role="progressbar" style="width: 0%"></div></div>';
    item.querySelector(".name").textContent = file.name;
    list.appendChild(item);
    return item;
  }

  function finish(item, ok, text) {
    item.querySelector(".status").textContent = text;
    item.querySelector(".status").className = "status " + (ok ? "text-success" : "text-danger");
    item.querySelector(".progress-bar").classList.add(ok ? "bg-success" : "bg-danger");
    if (!ok) item.querySelector(".progress-bar").style.width = "100%";
    if (--pending === 0 && list.querySelector(".bg-success") && !list.querySelector(".bg-danger")) {
      window.setTimeout(() => window.location.reload(), 400);
    }
  }

  function send(file, item, overwrite) {
    const params = new URLSearchParams({folder: zone.dataset.folder, name: file.name});
    if (overwrite) params.set("overwrite", "on");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", zone.dataset.uploadUrl + "?" + params.toString());
    xhr.setRequestHeader("X-CSRFToken", zone.dataset.csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round(100 * e.loaded / e.total);
      item.querySelector(".progress-bar").style.width = pct + "%";
      item.querySelector(".status").textContent = pct + "%";
    };
    xhr.onload = () => {
      let reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (err) { reply = {error: "The server gave an unexpected answer."}; }
      if (xhr.status === 409 && !overwrite && window.confirm(reply.error + " Replace it?")) return send(file, item, true);
      if (xhr.status === 200) item.querySelector(".progress-bar").style.width = "100%";
      finish(item, xhr.status === 200, xhr.status === 200 ? "uploaded" : reply.error);
    };
    xhr.onerror = () => finish(item, false, "The connection failed; try again.");
    xhr.send(file);
  }

  function upload(files) {
    for (const file of files) {
      const item = row(file);
      pending++;
      if (file.size > maxBytes) finish(item, false, "Larger than the " + zone.dataset.maxLabel + " upload limit.");
      else send(file, item, false);
    }
  }

  input.addEventListener("change", () => { upload(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  zone.addEventListener("dragleave", (e) => { if (!zone.contains(e.relatedTarget)) zone.classList.remove("dragging"); });
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("dragging"); upload(e.dataTransfer.files); });
})();
