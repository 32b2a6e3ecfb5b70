"""The storage page: browse, upload (streamed), download, create folders, move, delete, previews.

Every path comes from the request as a path inside the user's own space; `storage_for(user)` only
reaches that space and its adapter refuses anything that would leave it. Local storage is called in
the request; VOSpace is too (listing is one request per 500 entries), and when it is slow or down the
page says so instead of waiting on retries (the adapter turns the client's retries off).
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orchestration import backends
from orchestration.backends import storage_for
from orchestration.storage.base import (
    AlreadyExists,
    InvalidPath,
    Node,
    Storage,
    StorageError,
    StorageUnavailable,
)
from orchestration.storage_usage import refresh_usage
from portal.forms.storage import DeleteForm, MkdirForm, MoveForm, UploadForm
from portal.request_body import request_body
from portal.storage_preview import (
    looks_like_text,
    preview_kind,
    read_fits,
    read_table_head,
    read_text,
    thumbnail_png,
)
from portal.templatetags.names import plain_name

log = logging.getLogger(__name__)
SORTS = {"name", "size", "modified"}


def _storage(request: HttpRequest) -> Storage:
    return storage_for(request.user)


def _browse_url(path: str) -> str:
    return reverse("storage_browse", args=[path]) if path else reverse("storage")


def _file_url(path: str) -> str:
    return reverse("storage_file", args=[path])


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _refused(request: HttpRequest, exc: StorageError, back: str = "") -> HttpResponse:
    """Show the adapter's message and go back to a folder that exists (the top one by default)."""
    messages.error(request, str(exc))
    if isinstance(exc, InvalidPath) or ".." in back.split("/"):
        back = ""  # a path that is not valid has no folder to go back to: the top one
    return redirect(_browse_url(back))


def _breadcrumbs(path: str) -> list[tuple[str, str]]:
    crumbs = [("My storage", reverse("storage"))]
    parts = path.split("/") if path else []
    for i, part in enumerate(parts):
        crumbs.append((part, _browse_url("/".join(parts[: i + 1]))))
    return crumbs


def _sorted(nodes: list[Node], sort: str) -> list[Node]:
    key = sort.lstrip("-")
    if key == "size":
        nodes.sort(key=lambda n: (not n.is_dir, n.size, n.name.casefold()))
    elif key == "modified":
        nodes.sort(key=lambda n: (not n.is_dir, n.modified, n.name.casefold()))
    else:
        nodes.sort(key=lambda n: (not n.is_dir, n.name.casefold(), n.name))
    if sort.startswith("-"):
        # Folders stay first whichever way the files are sorted.
        folders = [n for n in nodes if n.is_dir][::-1]
        nodes = folders + [n for n in nodes if not n.is_dir][::-1]
    return nodes


# -- pages ---------------------------------------------------------------------------------------------
@login_required
@require_GET
def browse(request: HttpRequest, path: str = "") -> HttpResponse:
    sort = request.GET.get("sort", "name")
    if sort.lstrip("-") not in SORTS:
        sort = "name"
    try:
        storage = _storage(request)
        node = storage.info(path)
        if not node.is_dir:
            return redirect(_file_url(node.path))
        nodes = storage.list(node.path)
    except StorageError as exc:
        if path:
            return _refused(request, exc, _parent(path) if not isinstance(exc, StorageUnavailable) else "")
        status = 503 if isinstance(exc, StorageUnavailable) else 400
        failed = {"error": str(exc), "breadcrumbs": _breadcrumbs(""), "path": "", "page": None}
        return render(request, "storage/browse.html", failed, status=status)
    page = Paginator(_sorted(nodes, sort), settings.STORAGE_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {
            "node": n,
            "url": _browse_url(n.path) if n.is_dir else _file_url(n.path),
            "download": None if n.is_dir else reverse("storage_download", args=[n.path]),
        }
        for n in page.object_list
    ]
    usage = getattr(request.user, "storage_usage", None)
    if usage is None and not backends.storage_is_remote():
        refresh_usage(request.user, storage)  # first visit: measure once
        usage = getattr(request.user, "storage_usage", None)
    ctx: dict[str, Any] = {
        "path": node.path,
        "breadcrumbs": _breadcrumbs(node.path),
        "page": page,
        "rows": rows,
        "total": len(nodes),
        "sort": sort,
        "usage": usage,
        "mkdir_form": MkdirForm(initial={"folder": node.path}),
        "max_bytes": settings.STORAGE_UPLOAD_MAX_BYTES,
        "remote": backends.storage_is_remote(),
    }
    return render(request, "storage/browse.html", ctx)


@login_required
@require_GET
def file_detail(request: HttpRequest, path: str) -> HttpResponse:
    try:
        storage = _storage(request)
        node = storage.info(path)
        if node.is_dir:
            return redirect(_browse_url(node.path))
        kind = preview_kind(node.name)
        ctx: dict[str, Any] = {"node": node, "kind": kind, "breadcrumbs": _breadcrumbs(node.path)}
        ctx["download"] = reverse("storage_download", args=[node.path])
        if kind == "fits":
            if node.size > settings.STORAGE_PREVIEW_MAX_BYTES:
                ctx["too_big"] = filesizeformat(settings.STORAGE_PREVIEW_MAX_BYTES)
            else:
                with storage.open_read(node.path) as fh:
                    ctx["fits"] = read_fits(fh)
                if ctx["fits"].image_hdu is not None:
                    ctx["thumbnail"] = reverse("storage_thumbnail", args=[node.path])
        elif kind == "catalogue":
            ctx["catalogue_url"] = reverse("catalogue_preview", args=[node.path])
            with storage.open_read(node.path) as fh:
                ctx["table"] = read_table_head(fh, node.name)
                if ctx["table"] is None:
                    fh.seek(0)
                    ctx["text"] = read_text(fh, node.size)
        elif node.size <= settings.STORAGE_PREVIEW_MAX_BYTES or not backends.storage_is_remote():
            # (VOSpace reads fetch the whole file first, so big files get no preview there)
            with storage.open_read(node.path) as fh:
                if kind == "text" or looks_like_text(fh):
                    ctx["text"] = read_text(fh, node.size)
    except StorageError as exc:
        return _refused(request, exc, "" if isinstance(exc, StorageUnavailable) else _parent(path))
    return render(request, "storage/file.html", ctx)


@login_required
@require_GET
def thumbnail(request: HttpRequest, path: str) -> HttpResponse:
    try:
        storage = _storage(request)
        node = storage.info(path)
        if node.is_dir or node.size > settings.STORAGE_PREVIEW_MAX_BYTES:
            return HttpResponse("No thumbnail for this file.", status=404, content_type="text/plain")
        with storage.open_read(node.path) as fh:
            png = thumbnail_png(fh)
    except StorageError as exc:
        return HttpResponse(str(exc), status=404, content_type="text/plain")
    if png is None:
        return HttpResponse("This file has no image to show.", status=404, content_type="text/plain")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
@require_GET
def download(request: HttpRequest, path: str) -> HttpResponseBase:
    try:
        storage = _storage(request)
        node = storage.info(path)
        stream = storage.open_read(node.path)
    except StorageError as exc:
        return _refused(request, exc, _parent(path))
    # Control characters cannot go in a header; Django encodes the rest (filename*=utf-8''...).
    safe_name = "".join(c if c.isprintable() else "_" for c in node.name) or "download"
    response = FileResponse(
        stream, as_attachment=True, filename=safe_name, content_type="application/octet-stream"
    )
    response.block_size = 1024 * 1024  # Django's 4 KB default costs a lot of CPU per GB
    return response


# -- changes -------------------------------------------------------------------------------------------
def _upload_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"ok": False, "error": message}, status=status)


@csrf_exempt  # checked below, after the size check, so an oversized body is never parsed or stored
@login_required
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    limit = settings.STORAGE_UPLOAD_MAX_BYTES
    multipart = request.content_type == "multipart/form-data"
    if length > limit + (64 * 1024 if multipart else 0):  # multipart adds a little framing
        message = f"The file is larger than the {filesizeformat(limit)} upload limit."
        if multipart:
            messages.error(request, message)
            return redirect(_browse_url(request.GET.get("folder", "")))
        return _upload_error(message, 413)
    return _upload_checked(request, length, multipart)


@csrf_protect
def _upload_checked(request: HttpRequest, length: int, multipart: bool) -> HttpResponse:
    limit = settings.STORAGE_UPLOAD_MAX_BYTES
    if multipart:
        # The no-JavaScript form: Django spools the file to disk (never memory) before this runs.
        sent = request.FILES.get("file")
        form = UploadForm({**request.POST.dict(), "name": sent.name if sent else ""})
        if sent is None or not form.is_valid():
            messages.error(request, "Choose a file to upload." if sent is None else _first_error(form))
            return redirect(_browse_url(request.POST.get("folder", "")))
        try:
            node = _storage(request).upload(
                form.target(), cast(BinaryIO, sent), limit, form.cleaned_data["overwrite"]
            )
        except StorageError as exc:
            return _refused(request, exc, form.cleaned_data["folder"])
        refresh_usage(request.user)
        messages.success(request, f"Uploaded {node.name} ({filesizeformat(node.size)}).")
        return redirect(_browse_url(form.cleaned_data["folder"]))
    if length < 0:
        return _upload_error("The upload must say how long it is (Content-Length).", 411)
    form = UploadForm(request.GET)
    if not form.is_valid():
        return _upload_error(_first_error(form), 400)
    try:
        storage = _storage(request)
        body = cast(BinaryIO, request_body(request, length))
        node = storage.upload(form.target(), body, limit, form.cleaned_data["overwrite"])
    except StorageError as exc:
        status = (
            409 if isinstance(exc, AlreadyExists) else 503 if isinstance(exc, StorageUnavailable) else 400
        )
        return _upload_error(str(exc), status)
    refresh_usage(request.user, storage)
    return JsonResponse({"ok": True, "name": node.name, "path": node.path, "size": node.size})


def _first_error(form: Any) -> str:
    for field, errors in form.errors.items():
        label = "" if field == "__all__" else f"{form.fields[field].label or field}: "
        return f"{label}{errors[0]}"
    return "The request was not valid."


@login_required
@require_POST
def mkdir(request: HttpRequest) -> HttpResponse:
    form = MkdirForm(request.POST)
    folder = request.POST.get("folder", "")
    if not form.is_valid():
        messages.error(request, _first_error(form))
        return redirect(_browse_url(folder))
    try:
        node = _storage(request).mkdir(form.target())
    except StorageError as exc:
        return _refused(request, exc, folder if not isinstance(exc, StorageUnavailable) else "")
    messages.success(request, f"Folder '{node.name}' created.")
    return redirect(_browse_url(form.cleaned_data["folder"]))


def _acted_on(request: HttpRequest) -> str:
    """The path a move or delete acts on. The pages' forms send it in the query string, where it
    arrives as it is: a browser sends a form field's line breaks as CR LF, so a name made outside the
    portal with a line feed in it would not be found from the field."""
    if "path" in request.GET:
        return request.GET["path"]
    return request.POST.get("path", "") if request.method == "POST" else ""


@login_required
@require_http_methods(["GET", "POST"])
def move(request: HttpRequest) -> HttpResponse:
    path = _acted_on(request)
    try:
        storage = _storage(request)
        node = storage.info(path or "")
    except StorageError as exc:
        return _refused(request, exc)
    form = MoveForm(request.POST or None, initial={"path": node.path, "dest": node.path})
    if request.method == "POST" and form.is_valid():
        try:
            moved = storage.move(node.path, form.cleaned_data["dest"])
        except StorageError as exc:
            form.add_error("dest", str(exc))
        else:
            messages.success(request, f"Moved '{plain_name(node.path)}' to '{plain_name(moved.path)}'.")
            return redirect(_browse_url(_parent(moved.path)))
    folders = [n.path for n in _safe_list(storage, _parent(node.path)) if n.is_dir and n.path != node.path]
    ctx = {
        "action": "move",
        "node": node,
        "form": form,
        "folders": folders,
        "breadcrumbs": _breadcrumbs(node.path),
    }
    return render(request, "storage/action.html", ctx)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest) -> HttpResponse:
    path = _acted_on(request)
    try:
        storage = _storage(request)
        node = storage.info(path or "")
        if not node.path:
            raise StorageError("Your top folder cannot be deleted.")
    except StorageError as exc:
        return _refused(request, exc)
    count = _safe_count(storage, node) if node.is_dir else 0
    must_confirm = False
    if request.method == "POST":
        form = DeleteForm(request.POST)
        if form.is_valid():
            if node.is_dir and count and not form.cleaned_data["recursive"]:
                must_confirm = True
            else:
                try:
                    # Not recursive unless confirmed: files may have arrived since the count.
                    recursive = node.is_dir and bool(form.cleaned_data["recursive"])
                    storage.delete(node.path, recursive=recursive)
                except StorageError as exc:
                    return _refused(request, exc, _parent(node.path))
                refresh_usage(request.user, storage)
                messages.success(request, f"Deleted '{plain_name(node.path)}'.")
                return redirect(_browse_url(_parent(node.path)))
    ctx = {"action": "delete", "node": node, "count": count, "breadcrumbs": _breadcrumbs(node.path)}
    ctx["must_confirm"] = must_confirm
    return render(request, "storage/action.html", ctx, status=400 if must_confirm else 200)


def _safe_list(storage: Storage, path: str) -> list[Node]:
    try:
        return storage.list(path)
    except StorageError:
        return []  # only suggestions for the move form: the move itself reports real errors


def _safe_count(storage: Storage, node: Node) -> int:
    try:
        return storage.count(node.path)
    except StorageError:
        return -1  # unknown: the confirmation then asks as for a non-empty folder
