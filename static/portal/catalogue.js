// Catalogue preview: a CCD image with its sources as SVG ellipses, zoom (wheel) and pan (drag),
// stretch/contrast, click a source -> its table row (the server finds the page), row -> source.
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const svg = viewer.querySelector("svg");
  const image = svg.querySelector("image");
  const layer = svg.querySelector("g.ellipses");
  const NS = "http://www.w3.org/2000/svg";
  const ccdMap = JSON.parse(document.getElementById("ccd-map").textContent); // ccd number -> HDU
  const control = (name) => document.querySelector(`[data-control="${name}"]`);
  const label = document.querySelector('[data-testid="viewer-ccd"]');
  const info = document.querySelector('[data-testid="selected-source"]');
  let doc = null; // sources.json of the CCD shown
  let view = { x: 0, y: 0, w: 1, h: 1 };
  let selected = null;

  function setView(v) {
    view = v;
    svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  }

  function imageUrl() {
    const q = new URLSearchParams({ stretch: control("stretch").value, contrast: control("contrast").value });
    return `${doc.image}?${q}`;
  }

  async function loadCcd(hdu, then) {
    const url = viewer.dataset.sources.replace(/\/0\/sources\.json$/, `/${hdu}/sources.json`);
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    doc = await response.json();
    image.setAttribute("width", doc.width);
    image.setAttribute("height", doc.height);
    image.setAttribute("href", imageUrl());
    layer.replaceChildren();
    for (const s of doc.sources) {
      const e = document.createElementNS(NS, "ellipse");
      e.setAttribute("cx", s.x);
      e.setAttribute("cy", s.y);
      e.setAttribute("rx", s.a);
      e.setAttribute("ry", s.b);
      e.setAttribute("transform", `rotate(${-s.t} ${s.x} ${s.y})`);
      e.dataset.number = s.n;
      if (s.f) e.classList.add("flagged");
      const title = document.createElementNS(NS, "title");
      title.textContent = `NUMBER ${s.n} · MAG_AUTO ${s.m} · FLAGS ${s.f}`;
      e.appendChild(title);
      layer.appendChild(e);
    }
    selected = null;
    info.textContent = `${doc.sources.length} sources on ${doc.name}`;
    label.textContent = doc.name;
    control("ccd").value = String(hdu);
    document.querySelectorAll(".ccd-box").forEach((b) => b.classList.toggle("selected", b.dataset.hdu === String(hdu)));
    setView({ x: 0, y: 0, w: doc.width, h: doc.height });
    viewer.dataset.hdu = hdu;
    if (then) then();
  }

  function highlight(number, centre) {
    if (selected) selected.classList.remove("sel");
    selected = layer.querySelector(`ellipse[data-number="${number}"]`);
    if (!selected) return;
    selected.classList.add("sel");
    layer.appendChild(selected); // drawn last, on top
    const s = doc.sources.find((x) => x.n === Number(number));
    info.textContent = `Source ${s.n} on ${doc.name}: MAG_AUTO ${s.m}, FLAGS ${s.f}`;
    if (centre) {
      const w = Math.min(view.w, doc.width / 4), h = (w * view.h) / view.w;
      setView({ x: s.x - w / 2, y: s.y - h / 2, w, h });
    }
  }

  function showRow(number) {
    const table = document.getElementById("cat-table");
    const form = table.querySelector("form");
    const params = new URLSearchParams(new FormData(form));
    params.set("ccd", doc.ccd);
    params.set("focus", number);
    htmx.ajax("GET", `${table.dataset.base}?${params}`, { target: "#cat-table", swap: "outerHTML" });
  }

  // -- zoom and pan ---------------------------------------------------------------------------------
  function toImage(evt) {
    const pt = svg.createSVGPoint();
    pt.x = evt.clientX;
    pt.y = evt.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }

  viewer.addEventListener("wheel", (evt) => {
    if (!doc) return;
    evt.preventDefault();
    const p = toImage(evt);
    const k = evt.deltaY < 0 ? 0.8 : 1.25;
    const w = Math.min(Math.max(view.w * k, 20), doc.width * 2), f = w / view.w;
    setView({ x: p.x - (p.x - view.x) * f, y: p.y - (p.y - view.y) * f, w, h: view.h * f });
  }, { passive: false });

  let drag = null;
  viewer.addEventListener("pointerdown", (evt) => {
    if (evt.target.tagName === "ellipse") return;
    drag = { x: evt.clientX, y: evt.clientY, view: { ...view }, moved: false };
    viewer.setPointerCapture(evt.pointerId);
  });
  viewer.addEventListener("pointermove", (evt) => {
    if (!drag) return;
    const scale = view.w / svg.getBoundingClientRect().width;
    const dx = (evt.clientX - drag.x) * scale, dy = (evt.clientY - drag.y) * scale;
    drag.moved = drag.moved || Math.abs(dx) + Math.abs(dy) > 2;
    viewer.classList.add("dragging");
    setView({ ...drag.view, x: drag.view.x - dx, y: drag.view.y - dy });
  });
  const endDrag = () => { drag = null; viewer.classList.remove("dragging"); };
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);
  viewer.addEventListener("dblclick", () => doc && setView({ x: 0, y: 0, w: doc.width, h: doc.height }));

  layer.addEventListener("click", (evt) => {
    const e = evt.target.closest("ellipse");
    if (!e) return;
    highlight(e.dataset.number, false);
    showRow(e.dataset.number);
  });

  // -- controls, mosaic and table ----------------------------------------------------------------------
  control("ccd").addEventListener("change", (evt) => loadCcd(evt.target.value));
  control("stretch").addEventListener("change", () => doc && image.setAttribute("href", imageUrl()));
  control("contrast").addEventListener("change", () => doc && image.setAttribute("href", imageUrl()));
  control("ellipses").addEventListener("change", (evt) => viewer.classList.toggle("no-ellipses", !evt.target.checked));
  control("reset").addEventListener("click", () => doc && setView({ x: 0, y: 0, w: doc.width, h: doc.height }));
  document.querySelectorAll(".ccd-box").forEach((box) =>
    box.addEventListener("click", (evt) => {
      evt.preventDefault();
      loadCcd(box.dataset.hdu);
      const table = document.getElementById("cat-table");
      const ccd = Object.keys(ccdMap).find((k) => String(ccdMap[k]) === box.dataset.hdu);
      htmx.ajax("GET", `${table.dataset.base}?ccd=${ccd}`, { target: "#cat-table", swap: "outerHTML" });
    })
  );

  document.addEventListener("click", (evt) => {
    const row = evt.target.closest("tr.src-row");
    if (!row) return;
    document.querySelectorAll("tr.src-row.focused").forEach((r) => r.classList.remove("focused"));
    row.classList.add("focused");
    const hdu = ccdMap[row.dataset.ccd];
    if (hdu === undefined) return;
    if (String(hdu) === viewer.dataset.hdu) highlight(row.dataset.number, true);
    else loadCcd(hdu, () => highlight(row.dataset.number, true));
  });

  document.body.addEventListener("htmx:afterSwap", () => {
    const row = document.querySelector("tr.src-row.focused");
    if (row) row.scrollIntoView({ block: "nearest" });
  });

  if (viewer.dataset.first) loadCcd(viewer.dataset.first);
})();
