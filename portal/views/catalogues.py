"""Catalogue pages: run one (archive, storage, upload) or many, follow the CCDs, preview and download.

Views read the database and the catalogue's cached work files (written by the tasks); images and
files are addressed by catalogue id, CCD and format, never by a path from the request. The one
exception is a catalogue in the user's own storage, which the storage adapter resolves and confines.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from orchestration.archive import LocalArchive
from orchestration.backends import storage_for
from orchestration.catalogue.errors import CatalogueInputError
from orchestration.catalogue.extract import Catalogue as CatalogueRows
from orchestration.catalogue.formats import TABLEDATA_SUFFIX, read_catalogue, write_votable
from orchestration.catalogue.render import ccd_png
from orchestration.catalogue.validate import validate_image
from orchestration.operations import start_operation
from orchestration.storage.base import NotFound, StorageError
from orchestration.storage_usage import refresh_usage
from portal.catalogue_table import plots, table_context
from portal.forms.catalogues import ManyObservationsForm, NewCatalogueForm
from portal.models import Catalogue, CatalogueCcd
from portal.models.catalogues import input_path, preview_path, rows_path

CATALOGUES_PER_PAGE = 20
STORAGE_CATALOGUE_MAX_BYTES = 512 * 1024**2


def get_catalogue_for_user(request: HttpRequest, pk: int) -> Catalogue:
    return get_object_or_404(Catalogue.objects.for_user(request.user), pk=pk)


# ---------------------------------------------------------------------------- starting runs


def _start(request: HttpRequest, cat: Catalogue) -> Catalogue:
    """Record the catalogue and its operation together; the operation is sent on commit."""
    cat.owner = request.user  # type: ignore[assignment]  # login_required: never anonymous
    cat.project = getattr(request, "project", None)
    cat.save()
    op = start_operation(
        owner=request.user,
        project=cat.project,
        kind="catalogue_run",
        title=f"Catalogue of {cat.name}",
        target=f"catalogue:{cat.pk}",
        params={"catalogue": cat.pk},
    )
    Catalogue.objects.filter(pk=cat.pk).update(operation=op)
    return cat


def _storage_file_problem(user: Any, path: str) -> str:
    """Why the storage path cannot be an input image (checked now, not minutes later), or ''."""
    try:
        node = storage_for(user).info(path)
    except NotFound:
        return f"There is no '{path}' in your storage."
    except StorageError as exc:
        return str(exc)
    return f"'{path}' is a folder: give the path of an image file." if node.is_dir else ""


def _stem(name: str) -> str:
    for suffix in (".fits.fz", ".fits.gz", ".fits", ".fit", ".fts", ".fz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "catalogue"
    return name or "catalogue"


def _archive_catalogue(observation: str, params: dict[str, Any]) -> Catalogue:
    name = _stem(observation.rsplit("/", 1)[-1].split(":")[-1])
    return Catalogue(
        name=name,
        source=Catalogue.ARCHIVE,
        source_ref=observation,
        params=params,
        output_dir="catalogues",
        stem=name,
    )


def _archive_choices() -> list[str]:
    if settings.ARCHIVE_BACKEND != "local":
        return []
    return [_stem(uri.rsplit("/", 1)[1]) for uri in LocalArchive(settings.ARCHIVE_DIR).available()][:200]


def _save_upload(sent: Any) -> tuple[Path | None, str]:
    """Move the spooled upload into the work area and check it (headers only) before any work."""
    folder = Path(settings.CATALOGUE_WORK_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha256(os.urandom(16)).hexdigest()[:24]}.fits"
    with target.open("wb") as dest:
        for chunk in sent.chunks(1024 * 1024):
            dest.write(chunk)
    try:
        validate_image(target, settings.CATALOGUE_MAX_DECOMPRESSED_BYTES, settings.CATALOGUE_MAX_CCD_PIXELS)
    except CatalogueInputError as exc:
        target.unlink(missing_ok=True)
        return None, str(exc).replace(target.name, Path(sent.name).name)
    return target, ""


@csrf_exempt  # checked inside, after the size check, so an oversized body is never parsed or stored
@login_required
@require_http_methods(["GET", "POST"])
def catalogue_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.CATALOGUE_UPLOAD_MAX_BYTES
        if length > limit + 64 * 1024:
            problem = f"The file is larger than the {filesizeformat(limit)} upload limit."
            return _new_page(request, NewCatalogueForm(initial={"source": "upload"}), 413, problem)
    return _catalogue_new_checked(request)


def _again_initial(request: HttpRequest) -> dict[str, Any]:
    """The form filled in from an earlier catalogue (``?again=<id>``): its image and parameters."""
    try:
        pk = int(request.GET.get("again", ""))
    except ValueError:
        return {}
    cat = get_catalogue_for_user(request, pk)
    initial: dict[str, Any] = {
        name: value for name, value in cat.params.items() if name in NewCatalogueForm.PARAMETER_NAMES
    }
    autoparams = initial.get("PHOT_AUTOPARAMS")
    if isinstance(autoparams, list | tuple):
        initial["PHOT_AUTOPARAMS"] = ", ".join(f"{v:g}" for v in autoparams)
    initial["source"] = cat.source
    if cat.source == Catalogue.ARCHIVE:
        initial["observation"] = cat.source_ref
    elif cat.source == Catalogue.STORAGE:
        initial["storage_path"] = cat.source_ref
    return initial


def _new_page(
    request: HttpRequest, form: NewCatalogueForm, status: int = 200, problem: str = "", note: str = ""
) -> HttpResponse:
    ctx = {
        "problem": problem,
        "note": note,
        "form": form,
        "archive_choices": _archive_choices(),
        "upload_limit": settings.CATALOGUE_UPLOAD_MAX_BYTES,
    }
    return render(request, "catalogues/new.html", ctx, status=status)


@csrf_protect
def _catalogue_new_checked(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        initial = _again_initial(request)
        note = (
            "Uploads are not kept after their catalogue is made: choose the file again to run it with these "
            "parameters."
            if initial.get("source") == Catalogue.UPLOAD
            else ""
        )
        return _new_page(request, NewCatalogueForm(initial=initial or None), note=note)
    form = NewCatalogueForm(request.POST, request.FILES or None)
    if not form.is_valid() or form.params is None:
        return _new_page(request, form, 400)
    data, params = form.cleaned_data, form.params.to_dict()
    if data["source"] == "archive":
        cat = _archive_catalogue(data["observation"], params)
    elif data["source"] == "storage":
        path = data["storage_path"]
        problem = _storage_file_problem(request.user, path)
        if problem:
            form.add_error("storage_path", problem)
            return _new_page(request, form, 400)
        folder, _, name = path.rpartition("/")
        cat = Catalogue(
            name=name[:200],  # storage names may be longer than the column
            source=Catalogue.STORAGE,
            source_ref=path,
            params=params,
            output_dir=folder,
            stem=_stem(name)[:200],
        )
    else:
        saved, problem = _save_upload(data["upload"])
        if saved is None:
            form.add_error("upload", problem)
            return _new_page(request, form, 400)
        name = Path(data["upload"].name).name[:200]
        cat = Catalogue(
            name=name,
            source=Catalogue.UPLOAD,
            source_ref=name,
            params=params,
            output_dir="catalogues",
            stem=_stem(name),
        )
        # In place before the operation is sent (on commit), so the worker finds it.
        cat.work_dir.mkdir(parents=True, exist_ok=True)
        os.replace(saved, input_path(cat))
    with transaction.atomic():
        _start(request, cat)
    messages.success(request, f"Catalogue of {cat.name} started.")
    return redirect("catalogue_detail", pk=cat.pk)


@login_required
@require_http_methods(["GET", "POST"])
def catalogue_many(request: HttpRequest) -> HttpResponse:
    form = ManyObservationsForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and form.params is not None:
        params = form.params.to_dict()
        with transaction.atomic():
            for observation in form.cleaned_data["observations"]:
                _start(request, _archive_catalogue(observation, params))
        n = len(form.cleaned_data["observations"])
        messages.success(request, f"{n} catalogue{'s' if n != 1 else ''} started, one per observation.")
        return redirect("catalogues")
    status = 400 if request.method == "POST" else 200
    return render(request, "catalogues/many.html", {"form": form}, status=status)


# ---------------------------------------------------------------------------- watching


def _with_progress(cats: list[Catalogue]) -> list[Catalogue]:
    rows = (
        CatalogueCcd.objects.filter(catalogue__in=[c.pk for c in cats])
        .values("catalogue")
        .annotate(done=Count("id", filter=Q(state=CatalogueCcd.DONE)))
        .order_by()
    )
    done = {r["catalogue"]: r["done"] for r in rows}
    for c in cats:
        c.ccds_done = done.get(c.pk, 0)  # type: ignore[attr-defined]
        c.percent = round(100 * c.ccds_done / c.n_ccds) if c.n_ccds else 0  # type: ignore[attr-defined]
    return cats


@login_required
@require_GET
def catalogue_list(request: HttpRequest) -> HttpResponse:
    cats = Catalogue.objects.for_user(request.user)
    page = Paginator(cats, CATALOGUES_PER_PAGE).get_page(request.GET.get("page"))
    rows = _with_progress(list(page.object_list))
    ctx = {
        "page": page,
        "catalogues": rows,
        "polling": any(c.is_active for c in rows),
        "formats": Catalogue.FORMATS,
    }
    template = "catalogues/_list.html" if request.headers.get("HX-Request") else "catalogues/list.html"
    return render(request, template, ctx)


@login_required
@require_GET
def catalogue_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cat = get_catalogue_for_user(request, pk)
    ccds = list(cat.ccd_rows.all())
    _with_progress([cat])
    if request.headers.get("HX-Request"):
        if not cat.is_active:  # finished: show the whole preview page
            return HttpResponse(status=204, headers={"HX-Refresh": "true"})
        return render(request, "catalogues/_progress.html", {"cat": cat, "ccds": ccds})
    ctx: dict[str, Any] = {"cat": cat, "ccds": ccds, "formats": Catalogue.FORMATS}
    if cat.state == Catalogue.DONE:
        rows = _rows_of(cat)
        layout_file = cat.work_dir / "mosaic.json"
        ctx["layout"] = json.loads(layout_file.read_text()) if layout_file.is_file() else []
        ctx.update(plots(rows))
        ctx["table"] = table_context(request, rows, reverse("catalogue_rows", args=[cat.pk]))
        first = next((c for c in ccds if c.state == CatalogueCcd.DONE), None)
        ctx["first_ccd"] = first
        ctx["ccd_map"] = {c.ccd: c.hdu_index for c in ccds}  # table rows name CCDs, images are HDUs
    return render(request, "catalogues/detail.html", ctx)


@login_required
@require_http_methods(["GET", "POST"])
def catalogue_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Forget a finished catalogue and its cached previews; its stored files only when asked."""
    cat = get_catalogue_for_user(request, pk)
    busy = cat.is_active or cat.ccd_rows.filter(state=CatalogueCcd.RUNNING).exists()
    if busy:
        messages.error(
            request, f"The catalogue of {cat.name} is still running; delete it when it has finished."
        )
        return redirect("catalogue_detail", pk=cat.pk)
    # Names are reserved before anything is written: only a finished catalogue's files are surely its own.
    done = cat.state == Catalogue.DONE
    stored = [path for path in cat.outputs.values() if isinstance(path, str)] if done else []
    if request.method == "GET":
        return render(request, "catalogues/delete.html", {"cat": cat, "stored": stored})
    problems = []
    if request.POST.get("files") == "on" and stored:
        storage = storage_for(request.user)
        for path in stored:
            try:
                storage.delete(path)
            except NotFound:
                pass  # already gone: nothing to do
            except StorageError as exc:
                problems.append(str(exc))
        refresh_usage(request.user, storage)
    if problems:  # the record stays, so the user can try again and nothing is half forgotten
        messages.error(request, "The stored files could not all be deleted: " + " ".join(problems))
        return redirect("catalogue_detail", pk=cat.pk)
    name, work_dir = cat.name, cat.work_dir
    cat.delete()
    shutil.rmtree(work_dir, ignore_errors=True)
    kept = " Its files in your storage are kept." if stored and request.POST.get("files") != "on" else ""
    messages.success(request, f"Catalogue of {name} deleted.{kept}")
    return redirect("catalogues")


# ---------------------------------------------------------------------------- previews


def _rows_of(cat: Catalogue) -> np.ndarray:
    path = rows_path(cat)
    if cat.state != Catalogue.DONE or not path.is_file():
        raise Http404("This catalogue has no rows yet.")
    return np.load(path, allow_pickle=False)


def _ccd_for(cat: Catalogue, hdu: int) -> CatalogueCcd:
    return get_object_or_404(cat.ccd_rows, hdu_index=hdu, state=CatalogueCcd.DONE)


@login_required
@require_GET
def catalogue_mosaic(request: HttpRequest, pk: int) -> FileResponse:
    cat = get_catalogue_for_user(request, pk)
    path = cat.work_dir / "mosaic.png"
    if not path.is_file():
        raise Http404("The mosaic is not ready.")
    return FileResponse(path.open("rb"), content_type="image/png")


@login_required
@require_GET
def catalogue_ccd_image(request: HttpRequest, pk: int, hdu: int) -> HttpResponse | FileResponse:
    """A CCD's preview: the cached PNG, or re-stretched from its cached downsampled image."""
    cat = get_catalogue_for_user(request, pk)
    _ccd_for(cat, hdu)
    stretch = request.GET.get("stretch", "linear")
    try:
        contrast = float(request.GET.get("contrast", "0.25"))
    except ValueError:
        contrast = math.nan
    if stretch == "linear" and contrast == 0.25:
        path = preview_path(cat, hdu, "png")
        if path.is_file():
            return FileResponse(path.open("rb"), content_type="image/png")
    small = preview_path(cat, hdu, "small.npy")
    if not small.is_file():
        raise Http404("This preview is not ready.")
    if not math.isfinite(contrast):
        return HttpResponse("contrast must be a number", status=400, content_type="text/plain")
    try:
        png = ccd_png(np.load(small, allow_pickle=False), stretch, contrast)
    except CatalogueInputError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return HttpResponse(png, content_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@login_required
@require_GET
def catalogue_ccd_sources(request: HttpRequest, pk: int, hdu: int) -> HttpResponse:
    cat = get_catalogue_for_user(request, pk)
    ccd = _ccd_for(cat, hdu)
    path = preview_path(cat, hdu, "json")
    if not path.is_file():
        raise Http404("This preview is not ready.")
    doc = json.loads(path.read_bytes())
    doc.update(
        ccd=ccd.ccd,
        name=ccd.name,
        hdu=hdu,
        image=reverse("catalogue_ccd_image", args=[cat.pk, hdu]),
    )
    return JsonResponse(doc)


@login_required
@require_GET
def catalogue_rows(request: HttpRequest, pk: int) -> HttpResponse:
    cat = get_catalogue_for_user(request, pk)
    rows = _rows_of(cat)
    table = table_context(request, rows, reverse("catalogue_rows", args=[cat.pk]))
    return render(request, "catalogues/_table.html", {"table": table})


@login_required
@require_GET
def catalogue_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse | FileResponse:
    """One output format, found from the catalogue (never from a path in the request). The VOTable is
    BINARY2; ``?serialization=tabledata`` gives it as TABLEDATA, written on its first download from
    the catalogue's rows and kept (written to a temporary name, then renamed)."""
    cat = get_catalogue_for_user(request, pk)
    if fmt not in Catalogue.FORMATS or cat.state != Catalogue.DONE:
        raise Http404("No such file.")
    suffix, content_type = Catalogue.FORMATS[fmt]
    serialization = request.GET.get("serialization", "binary2")
    if serialization not in ("binary2", "tabledata") or (serialization == "tabledata" and fmt != "votable"):
        return HttpResponse(
            "serialization must be binary2 or tabledata (VOTable only)", status=400, content_type="text/plain"
        )
    if serialization == "tabledata":
        path = cat.work_dir / "out" / f"{cat.stem}{TABLEDATA_SUFFIX}"
        if not path.is_file():
            rows = _rows_of(cat)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_votable(CatalogueRows(rows=rows, provenance=dict(cat.provenance)), path, "tabledata")
            except OSError:
                message = "The TABLEDATA VOTable cannot be written on the server just now; try again later."
                return HttpResponse(message, status=503, content_type="text/plain")
    else:
        path = cat.work_dir / "out" / f"{cat.stem}{suffix}"
    if not path.is_file():
        raise Http404("This file is no longer on the server; it is in your storage.")
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=path.name, content_type=content_type
    )
    response.block_size = 1024 * 1024
    return response


# ---------------------------------------------------------------------------- a catalogue in storage


def _load_stored(request: HttpRequest, path: str) -> tuple[np.ndarray, str]:
    """Rows of a catalogue file in the user's storage, converted once and cached by name, size and date."""
    storage = storage_for(request.user)
    node = storage.info(path)
    if node.is_dir:
        raise CatalogueInputError(f"{node.name} is a folder, not a catalogue.")
    if node.size > STORAGE_CATALOGUE_MAX_BYTES:
        raise CatalogueInputError(
            f"{node.name} is larger than {filesizeformat(STORAGE_CATALOGUE_MAX_BYTES)}."
        )
    key = hashlib.sha256(f"{request.user.pk}\0{node.path}\0{node.size}\0{node.modified}".encode()).hexdigest()
    folder = Path(settings.CATALOGUE_WORK_DIR) / "opened"
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / f"{key[:32]}.npy"
    if cached.is_file():
        return np.load(cached, allow_pickle=False), node.name
    suffix = "".join(Path(node.name).suffixes)[-40:]  # the reader goes by the extension; the name may be long
    local = folder / f"{key[:32]}-{os.getpid()}{suffix}"
    try:
        with storage.open_read(node.path) as src, local.open("wb") as dest:
            shutil.copyfileobj(src, dest, 1024 * 1024)
        rows = read_catalogue(local).rows
    finally:
        local.unlink(missing_ok=True)
    tmp = cached.with_name(cached.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, rows, allow_pickle=False)
    os.replace(tmp, cached)
    return rows, node.name


@login_required
@require_GET
def catalogue_preview(request: HttpRequest, path: str) -> HttpResponse:
    """A catalogue file from storage (e.g. a source-extractor .cat of a batch job): table and plots."""
    base = reverse("catalogue_preview", kwargs={"path": path})
    try:
        rows, name = _load_stored(request, path)
    except (CatalogueInputError, StorageError) as exc:
        ctx: dict[str, Any] = {"path": path, "name": path.rsplit("/", 1)[-1], "problem": str(exc)}
        return render(request, "catalogues/stored.html", ctx, status=400)
    table = table_context(request, rows, base)
    if request.headers.get("HX-Request"):
        return render(request, "catalogues/_table.html", {"table": table})
    ctx = {"path": path, "name": name, "table": table, "n_rows": len(rows), **plots(rows)}
    return render(request, "catalogues/stored.html", ctx)
