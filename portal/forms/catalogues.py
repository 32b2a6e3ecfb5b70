"""Catalogue forms: one image (archive, storage or upload) or many observation IDs, with parameters
named as in SExtractor. Forms own validation and hand plain data (ExtractionParams, IDs) to the views."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from orchestration.archive import InvalidObservation, observation_uri
from orchestration.catalogue.errors import CatalogueInputError
from orchestration.catalogue.extract import ExtractionParams
from orchestration.catalogue.sexdefaults import tutorial_defaults
from orchestration.storage.base import InvalidPath, normalize

# The tutorial's job runs source-extractor with Debian's default.sex and default.conv: so does the form.
_DEFAULTS = ExtractionParams.defaults()
SEEDS_OBSERVATIONS = "1056215p\n1056216p\n1056217p\n1056218p"


def _num(attrs: dict[str, str] | None = None) -> forms.NumberInput:
    return forms.NumberInput(
        attrs={"class": "form-control form-control-sm mono", "step": "any", **(attrs or {})}
    )


class ParametersForm(forms.Form):
    """SExtractor's names; the defaults are the tutorial's (Debian's default.sex and default.conv)."""

    DEFAULTS_FROM = tutorial_defaults().source
    FILTER_FROM = tutorial_defaults().kernel_source

    DETECT_THRESH = forms.FloatField(
        initial=_DEFAULTS.DETECT_THRESH, widget=_num(), help_text="σ above background"
    )
    DETECT_MINAREA = forms.IntegerField(initial=_DEFAULTS.DETECT_MINAREA, widget=_num(), help_text="pixels")
    DEBLEND_NTHRESH = forms.IntegerField(initial=_DEFAULTS.DEBLEND_NTHRESH, widget=_num())
    DEBLEND_MINCONT = forms.FloatField(initial=_DEFAULTS.DEBLEND_MINCONT, widget=_num())
    MAG_ZEROPOINT = forms.FloatField(initial=_DEFAULTS.MAG_ZEROPOINT, widget=_num(), help_text="mag")
    BACK_SIZE = forms.IntegerField(initial=_DEFAULTS.BACK_SIZE, widget=_num(), help_text="pixels")
    BACK_FILTERSIZE = forms.IntegerField(initial=_DEFAULTS.BACK_FILTERSIZE, widget=_num())
    PHOT_AUTOPARAMS = forms.CharField(
        initial=", ".join(f"{v:g}" for v in _DEFAULTS.PHOT_AUTOPARAMS),
        widget=forms.TextInput(attrs={"class": "form-control form-control-sm mono"}),
        help_text="Kron factor, minimum radius",
    )
    SATUR_LEVEL = forms.FloatField(
        initial=_DEFAULTS.SATUR_LEVEL, widget=_num(), help_text="ADU, if no SATURATE"
    )
    GAIN = forms.FloatField(initial=_DEFAULTS.GAIN, widget=_num(), help_text="e⁻/ADU, 0: none")
    CLEAN = forms.BooleanField(
        initial=_DEFAULTS.CLEAN,
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )
    FILTER = forms.BooleanField(
        initial=_DEFAULTS.FILTER,
        required=False,
        help_text="default.conv (3×3, FWHM 2 px)",
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )

    PARAMETER_NAMES = (
        "DETECT_THRESH",
        "DETECT_MINAREA",
        "DEBLEND_NTHRESH",
        "DEBLEND_MINCONT",
        "MAG_ZEROPOINT",
        "BACK_SIZE",
        "BACK_FILTERSIZE",
        "PHOT_AUTOPARAMS",
        "SATUR_LEVEL",
        "GAIN",
        "CLEAN",
        "FILTER",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params: ExtractionParams | None = None

    def parameter_fields(self) -> list[Any]:
        return [self[name] for name in self.PARAMETER_NAMES]

    def clean_PHOT_AUTOPARAMS(self) -> tuple[float, float]:  # noqa: N802 (SExtractor's name)
        text = self.cleaned_data["PHOT_AUTOPARAMS"]
        parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise forms.ValidationError("Give two numbers, e.g. 2.5, 3.5.") from None
        if len(values) != 2:
            raise forms.ValidationError("Give two numbers, e.g. 2.5, 3.5.")
        return values  # type: ignore[return-value]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors:
            try:
                self.params = ExtractionParams.from_dict({n: data[n] for n in self.PARAMETER_NAMES})
            except CatalogueInputError as exc:
                for problem in exc.problems or [str(exc)]:
                    self.add_error(None, problem)
        return data


MAX_OBSERVATION_CHARS = 200  # the catalogue's name and stem are kept in 200 characters


def _clip(text: str, length: int = 40) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _clean_observation(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_OBSERVATION_CHARS:
        raise forms.ValidationError(f"An observation ID is at most {MAX_OBSERVATION_CHARS} characters.")
    try:
        observation_uri(value)
    except InvalidObservation as exc:
        raise forms.ValidationError(str(exc)) from None
    return value


class NewCatalogueForm(ParametersForm):
    SOURCE_CHOICES = [
        ("archive", "Archive (observation ID)"),
        ("storage", "A file in my storage"),
        ("upload", "Upload a file"),
    ]
    source = forms.ChoiceField(
        choices=SOURCE_CHOICES,
        initial="archive",
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )
    observation = forms.CharField(
        required=False,
        max_length=MAX_OBSERVATION_CHARS,
        widget=forms.TextInput(
            attrs={"class": "form-control mono", "placeholder": "1056215p", "list": "archive-observations"}
        ),
    )
    storage_path = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.TextInput(
            attrs={"class": "form-control mono", "placeholder": "images/1056215p.fits.fz"}
        ),
    )
    upload = forms.FileField(
        required=False,
        widget=forms.ClearableFileInput(attrs={"class": "form-control", "accept": ".fits,.fz,.fit,.fts"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        source = data.get("source")
        if source == "archive":
            if not data.get("observation"):
                self.add_error("observation", "Give an observation ID, e.g. 1056215p.")
            else:
                try:
                    data["observation"] = _clean_observation(data["observation"])
                except forms.ValidationError as exc:
                    self.add_error("observation", exc)
        elif source == "storage":
            try:
                path = normalize(data.get("storage_path") or "")
            except InvalidPath as exc:
                self.add_error("storage_path", str(exc))
            else:
                if not path:
                    self.add_error("storage_path", "Give the path of an image in your storage.")
                data["storage_path"] = path
        elif source == "upload":
            sent = data.get("upload")
            if sent is None:
                self.add_error("upload", "Choose a FITS file to upload.")
            elif sent.size > settings.CATALOGUE_UPLOAD_MAX_BYTES:
                self.add_error("upload", "The file is larger than the upload limit.")
        return data


class ManyObservationsForm(ParametersForm):
    """The CANFAR tutorial's do_catalogue over a list of observation IDs: one run per ID."""

    observations = forms.CharField(
        initial=SEEDS_OBSERVATIONS,
        widget=forms.Textarea(attrs={"class": "form-control mono", "rows": 6}),
        help_text="One observation ID per line (or separated by spaces or commas).",
    )

    def clean_observations(self) -> list[str]:
        items = [p for p in re.split(r"[,\s]+", self.cleaned_data["observations"]) if p]
        if not items:
            raise forms.ValidationError("List at least one observation ID.")
        limit = settings.CATALOGUE_MAX_OBSERVATIONS
        if len(items) > limit:
            raise forms.ValidationError(f"At most {limit} observation IDs at a time ({len(items)} given).")
        unique: list[str] = []
        problems = []
        for item in items:
            try:
                clean = _clean_observation(item)
            except forms.ValidationError:
                problems.append(item)
                continue
            if clean not in unique:
                unique.append(clean)
        if problems:
            raise forms.ValidationError(
                f"Not observation IDs: {', '.join(_clip(p) for p in problems[:5])}{' …' if len(problems) > 5 else ''}"
                " (expected e.g. 1056215p or cadc:CFHT/1056215p.fits.fz)."
            )
        return unique
