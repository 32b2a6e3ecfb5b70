"""Catalogue tasks: fetch an image, extract its CCDs in parallel, merge, store and render previews.

- ``catalogue_run`` (an Operation): fetches the input into the catalogue's work folder, validates it,
  records one CatalogueCcd row per CCD and sends one ``extract_catalogue_ccd`` task per CCD; it then
  waits (without holding a worker) until every CCD is done, merges, writes every format to the user's
  storage and renders the mosaic. Every step checks what is already there, so a rerun never duplicates.
- ``extract_catalogue_ccd``: one CCD on one worker; claims its row with a conditional update and writes
  its rows, a downsampled copy of the image, the default PNG and the sources JSON (the preview cache).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from orchestration import backends
from orchestration.catalogue import textcols
from orchestration.catalogue.errors import CatalogueInputError
from orchestration.catalogue.extract import (
    ExtractionParams,
    build_catalogue,
    ccd_number,
    extract_ccd,
    tune_malloc,
)
from orchestration.catalogue.fitsread import read_ccd
from orchestration.catalogue.formats import PROVENANCE_SUFFIX, SUFFIXES, write_all
from orchestration.catalogue.render import ccd_png, downsample, mosaic_layout, render_mosaic
from orchestration.catalogue.validate import CcdInfo, validate_image
from orchestration.errors import TransientError, UserFacingError, Wait, portal_fault
from orchestration.operations import Progress, operation_reference, run_operation
from orchestration.storage.base import NotFound, Storage, makedirs
from orchestration.storage_usage import refresh_usage
from portal.models import Catalogue, CatalogueCcd, Operation
from portal.models.catalogues import input_path, preview_path, rows_path, text_path

log = logging.getLogger(__name__)

PREVIEW_MAX_SIZE = 1024  # px, the longer side of a CCD preview
CCD_LEASE = timedelta(minutes=5)  # a CCD "running" this long without news is sent again
POLL_SECONDS = 1.0
ELLIPSE_SCALE = 3.0  # ellipses drawn at 3 x A/B (close to the Kron aperture), as SExtractor check images


@worker_process_init.connect
def _tune_worker(**_: Any) -> None:
    """Each worker process reuses the same ~40 MB arrays per CCD: keep them in the heap (~15% faster)."""
    tune_malloc()


# ---------------------------------------------------------------------------- work files


def _save_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see half a file


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def sources_json(rows: np.ndarray, shape: tuple[int, int]) -> dict[str, Any]:
    """Ellipses in image pixels with the origin top left (SVG), for the page's overlay (whole columns
    at a time: a CCD has thousands of sources)."""
    ny = shape[0]
    names = rows.dtype.names or ()
    n = len(rows)

    def column(name: str, default: float) -> np.ndarray:
        return rows[name].astype(np.float64) if name in names else np.full(n, default)

    a = column("A_IMAGE", 2.0) * ELLIPSE_SCALE
    b = column("B_IMAGE", np.nan) * ELLIPSE_SCALE
    b = np.where(np.isnan(b), a, b)
    cols = {
        "n": rows["NUMBER"].astype(np.int64).tolist(),
        "x": np.round(rows["X_IMAGE"].astype(np.float64) - 0.5, 2).tolist(),
        "y": np.round(ny - (rows["Y_IMAGE"].astype(np.float64) - 0.5), 2).tolist(),
        "a": np.round(np.maximum(a, 3.0), 2).tolist(),
        "b": np.round(np.maximum(b, 3.0), 2).tolist(),
        "t": np.round(column("THETA_IMAGE", 0.0), 1).tolist(),
        "m": np.round(rows["MAG_AUTO"].astype(np.float64), 3).tolist(),
        "f": (rows["FLAGS"].astype(np.int64) if "FLAGS" in names else np.zeros(n, np.int64)).tolist(),
    }
    keys = list(cols)
    out = [dict(zip(keys, values, strict=True)) for values in zip(*cols.values(), strict=True)]
    return {"width": shape[1], "height": ny, "sources": out}


# ---------------------------------------------------------------------------- inputs


def _fetch(cat: Catalogue, target: Path) -> None:
    part = target.with_name("fetch.part")
    if cat.source == Catalogue.ARCHIVE:
        fetched = backends.archive_for(cat.owner).fetch(cat.source_ref, part)
        os.replace(fetched, target)
    elif cat.source == Catalogue.STORAGE:
        with backends.storage_for(cat.owner).open_read(cat.source_ref) as src, part.open("wb") as dest:
            shutil.copyfileobj(src, dest, 1024 * 1024)
        os.replace(part, target)
    else:  # an upload is saved by the view before the operation starts; without it there is nothing
        raise UserFacingError("The uploaded file is no longer on the server; please upload it again.")


# ---------------------------------------------------------------------------- the operation


def _set_state(cat: Catalogue, state: str, **fields: Any) -> None:
    Catalogue.objects.filter(pk=cat.pk).update(state=state, **fields)
    cat.state = state


def _record_ccds(cat: Catalogue, ccds: list[CcdInfo]) -> None:
    rows = [
        CatalogueCcd(
            catalogue=cat,
            hdu_index=c.index,
            ccd=ccd_number(c.name, max(c.index - 1, 0)),
            name=c.name[:70],
            ny=c.shape[0],
            nx=c.shape[1],
        )
        for c in ccds
    ]
    CatalogueCcd.objects.bulk_create(rows, ignore_conflicts=True)  # a rerun keeps the existing rows
    Catalogue.objects.filter(pk=cat.pk).update(n_ccds=len(ccds))


def dispatch_ccd(ccd_id: int) -> None:
    """Send one CCD to a worker (tests replace this to run it in-process)."""
    extract_catalogue_ccd.apply_async(args=[ccd_id])


def _send_ccds(cat: Catalogue) -> int:
    """Send the CCDs never sent, and again those whose worker went quiet; each claimed once."""
    now = timezone.now()
    sendable = Q(dispatched__isnull=True) | Q(state=CatalogueCcd.RUNNING, updated__lt=now - CCD_LEASE)
    sendable |= Q(state=CatalogueCcd.PENDING, dispatched__lt=now - CCD_LEASE)
    sent = 0
    for ccd_id in cat.ccd_rows.filter(sendable).values_list("pk", flat=True):
        if CatalogueCcd.objects.filter(sendable, pk=ccd_id).update(dispatched=now):
            transaction.on_commit(functools.partial(dispatch_ccd, ccd_id))
            sent += 1
    return sent


def catalogue_run(op: Operation, progress: Progress) -> None:
    cat = Catalogue.objects.select_related("owner").filter(pk=op.params["catalogue"], owner=op.owner).first()
    if cat is None:
        raise UserFacingError("This catalogue has been deleted.")
    if cat.state == Catalogue.DONE:
        return
    try:
        _run(cat, progress)
    except (Wait, TransientError):
        raise  # called again later; the catalogue stays active
    except CatalogueInputError as exc:
        message = _users_name(cat, str(exc))
        _fail(cat, message)
        raise UserFacingError(message) from None
    except UserFacingError as exc:
        _fail(cat, str(exc))
        raise
    except Exception:
        _fail(cat, portal_fault(operation_reference(op)))  # run_operation logs it with this reference
        raise


def _run(cat: Catalogue, progress: Progress) -> None:
    cat.work_dir.mkdir(parents=True, exist_ok=True)
    image = input_path(cat)
    if not image.is_file():
        _set_state(cat, Catalogue.FETCHING)
        progress(2, f"Fetching {cat.name}")
        _fetch(cat, image)
    ccds = validate_image(image, settings.CATALOGUE_MAX_DECOMPRESSED_BYTES, settings.CATALOGUE_MAX_CCD_PIXELS)
    params = ExtractionParams.from_dict(cat.params)
    if cat.state != Catalogue.EXTRACTING:
        _record_ccds(cat, ccds)
        _set_state(cat, Catalogue.EXTRACTING)
    _send_ccds(cat)
    failed = cat.ccd_rows.filter(state=CatalogueCcd.FAILED).first()
    if failed is not None:
        raise UserFacingError(f"CCD {failed.name}: {_users_name(cat, failed.error)}")
    done = cat.ccd_rows.filter(state=CatalogueCcd.DONE).count()
    if done < len(ccds):
        message = f"Extracting: {done} of {len(ccds)} CCDs done"
        progress(5 + int(85 * done / len(ccds)), message)
        raise Wait(POLL_SECONDS, message)
    progress(92, "Merging and writing the catalogue")
    _set_state(cat, Catalogue.MERGING)
    _merge_and_store(cat, image, params, ccds, progress)
    progress(100, f"{cat.n_sources} sources in {len(ccds)} CCDs")


def _users_name(cat: Catalogue, message: str) -> str:
    """Messages name the file the worker read, the catalogue's own copy: show the user's name instead."""
    return message.replace(f"{input_path(cat).name}:", f"{cat.source_ref.rsplit('/', 1)[-1]}:")


def _fail(cat: Catalogue, message: str) -> None:
    _set_state(cat, Catalogue.FAILED, error=message[:2000], finished=timezone.now())


def _output_paths(cat: Catalogue, stem: str) -> dict[str, str]:
    names = {fmt: f"{stem}{suffix}" for fmt, suffix in SUFFIXES.items()}
    names["provenance"] = f"{stem}{PROVENANCE_SUFFIX}"
    return {fmt: f"{cat.output_dir}/{n}" if cat.output_dir else n for fmt, n in names.items()}


def _exists(storage: Storage, path: str) -> bool:
    try:
        storage.info(path)
    except NotFound:
        return False
    return True


def _reserve_outputs(cat: Catalogue, storage: Storage) -> dict[str, str]:
    """Storage paths that belong to this catalogue alone: named after the image (1056215p.cat), or
    1056215p-2.cat, -3... when another catalogue of the user has that name or any file is already
    there (an earlier run's, a batch job's, an upload): a run never overwrites files it does not own.
    Kept on the catalogue (stem and outputs) before anything is written, so a retried task writes
    the same files again."""
    if cat.outputs:
        return dict(cat.outputs)
    base = cat.stem
    for n in range(1, 10_000):
        suffix = "" if n == 1 else f"-{n}"
        stem = base[: 200 - len(suffix)] + suffix
        paths = _output_paths(cat, stem)
        if any(_exists(storage, p) for p in paths.values()):
            continue
        with transaction.atomic():
            # One reservation at a time per user: lock the owner's row.
            get_user_model().objects.select_for_update().get(pk=cat.owner_id)
            others = Catalogue.objects.filter(owner_id=cat.owner_id).exclude(pk=cat.pk)
            taken = {
                p for outputs in others.values_list("outputs", flat=True) for p in (outputs or {}).values()
            }
            if taken.intersection(paths.values()):
                continue
            Catalogue.objects.filter(pk=cat.pk).update(stem=stem, outputs=paths)
        cat.stem, cat.outputs = stem, paths
        return paths
    raise UserFacingError(
        f"No free name for the catalogue of {base} in {cat.output_dir or 'your top folder'}."
    )


def _merge_and_store(
    cat: Catalogue, image: Path, params: ExtractionParams, ccds: list[CcdInfo], progress: Progress
) -> None:
    """Each progress step also renews the operation's lease, so a long merge is never started twice."""
    parts = {c.index: np.load(rows_path(cat, c.index), allow_pickle=False) for c in ccds}
    catalogue = build_catalogue(image, params, ccds, parts, texts={c.index: _ccd_texts(cat, c) for c in ccds})
    catalogue.provenance["input"] = f"{cat.source}:{cat.source_ref}"
    catalogue.provenance["portal_catalogue"] = cat.key
    _save_atomic(rows_path(cat), _npy_bytes(catalogue.rows))
    out_dir = cat.work_dir / "out"
    storage = backends.storage_for(cat.owner)
    makedirs(storage, cat.output_dir)
    outputs = _reserve_outputs(cat, storage)
    files = write_all(catalogue, out_dir, cat.stem)
    for c in ccds:  # joined into the files: the CCDs' own text is not needed any more
        for fmt in ("ascii_head", "csv"):
            text_path(cat, c.index, fmt).unlink(missing_ok=True)
    progress(95, "Storing the catalogue")
    for fmt, path in files.items():
        with path.open("rb") as fh:
            storage.upload(outputs[fmt], fh, None, overwrite=True)  # names reserved for this catalogue
    refresh_usage(cat.owner, storage)
    progress(98, "Drawing the focal plane")
    counts = {name: n for _, name, _, n in catalogue.ccds}
    mosaic = render_mosaic(
        image,
        counts,
        max_size=1200,
        preview=lambda c: _cached_preview(cat, c),  # no second decoding of the exposure
        max_decompressed_bytes=settings.CATALOGUE_MAX_DECOMPRESSED_BYTES,
        max_ccd_pixels=settings.CATALOGUE_MAX_CCD_PIXELS,
    )
    _save_atomic(cat.work_dir / "mosaic.png", mosaic)
    layout = mosaic_layout(image, ccds)
    for box in layout:
        box["count"] = counts.get(box["name"], 0)
    _save_atomic(cat.work_dir / "mosaic.json", json.dumps(layout).encode())
    cat.n_sources = len(catalogue)
    _set_state(
        cat,
        Catalogue.DONE,
        outputs=outputs,
        n_sources=len(catalogue),
        provenance=catalogue.provenance,
        finished=timezone.now(),
        error="",
    )
    image.unlink(missing_ok=True)  # previews are cached; the input copy (up to ~0.7 GB) is not needed


def _ccd_texts(cat: Catalogue, ccd: CcdInfo) -> dict[str, bytes]:
    """The text formats' rows its task made (a format missing is formatted by the merge)."""
    texts = {}
    for fmt in ("ascii_head", "csv"):
        with contextlib.suppress(OSError):
            texts[fmt] = text_path(cat, ccd.index, fmt).read_bytes()
    return texts


def _cached_preview(cat: Catalogue, ccd: CcdInfo) -> np.ndarray | None:
    """The downsampled CCD its task cached, for the mosaic (None: the mosaic decodes that CCD)."""
    try:
        return np.load(preview_path(cat, ccd.index, "small.npy"), allow_pickle=False)  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- one CCD


@shared_task(acks_late=True, ignore_result=True)
def extract_catalogue_ccd(ccd_id: int) -> str:
    now = timezone.now()
    claimable = Q(state=CatalogueCcd.PENDING) | Q(state=CatalogueCcd.RUNNING, updated__lt=now - CCD_LEASE)
    if not CatalogueCcd.objects.filter(claimable, pk=ccd_id).update(
        state=CatalogueCcd.RUNNING, updated=now, attempts=F("attempts") + 1
    ):
        return "not claimable"
    row = CatalogueCcd.objects.select_related("catalogue").get(pk=ccd_id)
    cat = row.catalogue
    started = time.monotonic()
    try:
        outcome = _extract_and_record(cat, row, started)
    finally:
        _wake_if_last(cat)
    return outcome


def _extract_and_record(cat: Catalogue, row: CatalogueCcd, started: float) -> str:
    ccd_id = row.pk
    try:
        n = _extract_one(cat, row)
    except CatalogueInputError as exc:
        CatalogueCcd.objects.filter(pk=ccd_id).update(state=CatalogueCcd.FAILED, error=str(exc)[:2000])
        return "failed"
    except MemoryError:
        CatalogueCcd.objects.filter(pk=ccd_id).update(
            state=CatalogueCcd.FAILED, error="The worker ran out of memory on this CCD."
        )
        return "failed"
    except Exception:
        reference = f"ccd-{ccd_id}"
        log.exception("catalogue %s CCD %s crashed: reference %s", cat.pk, row.name, reference)
        CatalogueCcd.objects.filter(pk=ccd_id).update(
            state=CatalogueCcd.FAILED, error=portal_fault(reference)
        )
        return "crashed"
    CatalogueCcd.objects.filter(pk=ccd_id).update(
        state=CatalogueCcd.DONE,
        n_sources=n,
        seconds=round(time.monotonic() - started, 2),
        error="",
        updated=timezone.now(),
    )
    return "done"


def _wake_if_last(cat: Catalogue) -> None:
    """The last CCD to end wakes the catalogue's operation at once, so merging starts now rather than
    at its next poll (safe: a waiting operation is resumed by one call only)."""
    open_states = [CatalogueCcd.PENDING, CatalogueCcd.RUNNING]
    if cat.operation_id and not CatalogueCcd.objects.filter(catalogue=cat, state__in=open_states).exists():
        run_operation.apply_async(args=[cat.operation_id])


def _extract_one(cat: Catalogue, row: CatalogueCcd) -> int:
    params = ExtractionParams.from_dict(cat.params)
    data, header = read_ccd(input_path(cat), row.hdu_index, max_pixels=settings.CATALOGUE_MAX_CCD_PIXELS)
    factor = max(1, math.ceil(max(data.shape) / PREVIEW_MAX_SIZE))
    small = downsample(data, factor)  # before extraction, which subtracts the background in place
    rows = extract_ccd(data, header, params, ccd=row.ccd, ext_number=row.hdu_index)
    del data
    _save_atomic(preview_path(cat, row.hdu_index, "small.npy"), _npy_bytes(small.astype(np.float32)))
    _save_atomic(preview_path(cat, row.hdu_index, "png"), ccd_png(small))
    doc = sources_json(rows, (row.ny, row.nx))
    _save_atomic(preview_path(cat, row.hdu_index, "json"), json.dumps(doc).encode())
    for fmt, text in textcols.text_formats(rows).items():  # here, in parallel, not in the merge
        _save_atomic(text_path(cat, row.hdu_index, fmt), text)
    _save_atomic(rows_path(cat, row.hdu_index), _npy_bytes(rows))  # last: its presence means done
    return len(rows)
