"""Source catalogues: one row per run on one image, and one row per CCD of it.

The CCD rows are the unit of parallel work: each is claimed with a conditional ``update()`` by the
Celery task that extracts it, so a redelivered or repeated task never extracts a CCD twice at once,
and a rerun of the whole operation reuses the rows (unique per catalogue and HDU) instead of adding.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


def _new_key() -> str:
    return uuid.uuid4().hex


class CatalogueQuerySet(models.QuerySet["Catalogue"]):
    def for_user(self, user: Any) -> CatalogueQuerySet:
        return self.filter(owner=user)

    def active(self) -> CatalogueQuerySet:
        return self.filter(state__in=Catalogue.ACTIVE_STATES)


class Catalogue(models.Model):
    QUEUED, FETCHING, EXTRACTING, MERGING, DONE, FAILED = (
        "queued",
        "fetching",
        "extracting",
        "merging",
        "done",
        "failed",
    )
    STATES = [
        (QUEUED, "Queued"),
        (FETCHING, "Fetching the image"),
        (EXTRACTING, "Extracting"),
        (MERGING, "Writing"),
        (DONE, "Done"),
        (FAILED, "Failed"),
    ]
    ACTIVE_STATES = (QUEUED, FETCHING, EXTRACTING, MERGING)
    ARCHIVE, STORAGE, UPLOAD = "archive", "storage", "upload"
    SOURCES = [(ARCHIVE, "Archive"), (STORAGE, "Storage"), (UPLOAD, "Upload")]
    FORMATS = {  # download format -> (file suffix, content type)
        "ascii_head": (".cat", "text/plain"),
        "fits": (".cat.fits", "application/fits"),
        "csv": (".cat.csv", "text/csv"),
        "votable": (".cat.vot", "application/x-votable+xml"),
        "provenance": (".provenance.json", "application/json"),
    }

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="catalogues")
    project = models.ForeignKey("portal.Project", null=True, blank=True, on_delete=models.SET_NULL)
    key = models.CharField(max_length=40, unique=True, default=_new_key, editable=False)
    name = models.CharField(max_length=200, help_text="observation ID or file name")
    source = models.CharField(max_length=10, choices=SOURCES)
    source_ref = models.CharField(max_length=1000, help_text="observation ID, storage path or upload name")
    params = models.JSONField(default=dict, help_text="ExtractionParams.to_dict()")
    state = models.CharField(max_length=12, choices=STATES, default=QUEUED)
    output_dir = models.CharField(max_length=1000, help_text="storage folder the files are written to")
    stem = models.CharField(max_length=200, help_text="file name without suffix, e.g. 1056215p")
    outputs = models.JSONField(default=dict, blank=True, help_text="{format: storage path}")
    n_ccds = models.PositiveIntegerField(default=0)
    n_sources = models.PositiveIntegerField(null=True, blank=True)
    provenance = models.JSONField(default=dict, blank=True)
    operation = models.ForeignKey("portal.Operation", null=True, blank=True, on_delete=models.SET_NULL)
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)

    objects = CatalogueQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["owner", "-created"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def work_dir(self) -> Path:
        """Input copy, per-CCD results and cached previews (never addressed from a request)."""
        return Path(settings.CATALOGUE_WORK_DIR) / self.key

    @property
    def badge(self) -> str:
        return {"done": "success", "failed": "danger", "queued": "secondary"}.get(self.state, "primary")


class CatalogueCcdQuerySet(models.QuerySet["CatalogueCcd"]):
    def for_user(self, user: Any) -> CatalogueCcdQuerySet:
        return self.filter(catalogue__owner=user)


class CatalogueCcd(models.Model):
    PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
    STATES = [(PENDING, "Waiting"), (RUNNING, "Extracting"), (DONE, "Done"), (FAILED, "Failed")]

    catalogue = models.ForeignKey(Catalogue, on_delete=models.CASCADE, related_name="ccd_rows")
    hdu_index = models.PositiveSmallIntegerField()
    ccd = models.PositiveSmallIntegerField(help_text="ccdNN number (MegaCam), else the HDU order")
    name = models.CharField(max_length=70)
    ny = models.PositiveIntegerField()
    nx = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    n_sources = models.PositiveIntegerField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    dispatched = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    objects = CatalogueCcdQuerySet.as_manager()

    class Meta:
        ordering = ["catalogue", "hdu_index"]
        constraints = [
            models.UniqueConstraint(fields=["catalogue", "hdu_index"], name="catalogue_ccd_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.catalogue_id}:{self.name} ({self.state})"


# The files of a catalogue's run, in its work folder.


def input_path(cat: Catalogue) -> Path:
    return cat.work_dir / "input.fits"


def rows_path(cat: Catalogue, hdu_index: int | None = None) -> Path:
    """Merged rows (``None``) or one CCD's rows, as .npy."""
    return cat.work_dir / ("rows.npy" if hdu_index is None else f"ccd-{hdu_index}.rows.npy")


def text_path(cat: Catalogue, hdu_index: int, fmt: str) -> Path:
    """One CCD's rows in a text format ('ascii_head' or 'csv'), made by its task for the merge."""
    return cat.work_dir / f"ccd-{hdu_index}.{fmt}.txt"


def preview_path(cat: Catalogue, hdu_index: int, kind: str) -> Path:
    """kind: 'small.npy' (downsampled image), 'png' (default stretch) or 'json' (sources)."""
    return cat.work_dir / f"ccd-{hdu_index}.{kind}"
