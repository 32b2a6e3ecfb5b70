"""Forms for the storage page. Paths are checked again by the storage adapter, which is the authority
on what stays inside the user's space; these forms give the early, readable messages."""

from __future__ import annotations

import unicodedata

from django import forms

from orchestration.storage.base import hidden_character_message

MAX_PATH = 4096


def check_name(value: str) -> str:
    """One file or folder name (no folders in it)."""
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise forms.ValidationError("Enter a name.")
    if "/" in value or "\\" in value:
        raise forms.ValidationError("A name cannot contain '/' or '\\'.")
    if value in (".", ".."):
        raise forms.ValidationError("'.' and '..' are not allowed as names.")
    hidden = hidden_character_message(value)
    if hidden:
        raise forms.ValidationError(hidden)
    if len(value.encode()) > 255:
        raise forms.ValidationError("That name is too long (255 bytes at most).")
    return value


def _path_field(label: str = "Path", required: bool = True) -> forms.CharField:
    return forms.CharField(label=label, max_length=MAX_PATH, required=required, strip=False)


class MkdirForm(forms.Form):
    folder = _path_field("In folder", required=False)
    name = forms.CharField(
        label="Folder name",
        max_length=255,
        widget=forms.TextInput(attrs={"class": "form-control", "placeholder": "New folder name"}),
    )

    def clean_name(self) -> str:
        return check_name(self.cleaned_data["name"])

    def target(self) -> str:
        folder = self.cleaned_data.get("folder", "").rstrip("/")
        return f"{folder}/{self.cleaned_data['name']}" if folder else self.cleaned_data["name"]


class UploadForm(forms.Form):
    """The query string of a raw upload (or the fields of the no-JavaScript form)."""

    folder = _path_field("In folder", required=False)
    name = forms.CharField(max_length=255)
    overwrite = forms.BooleanField(required=False)

    def clean_name(self) -> str:
        return check_name(self.cleaned_data["name"])

    def target(self) -> str:
        folder = self.cleaned_data.get("folder", "").rstrip("/")
        return f"{folder}/{self.cleaned_data['name']}" if folder else self.cleaned_data["name"]


class MoveForm(forms.Form):
    path = _path_field()
    dest = forms.CharField(
        label="New path",
        max_length=MAX_PATH,
        help_text="Relative to your storage space, e.g. results/cat.fits. Folders must exist.",
        widget=forms.TextInput(attrs={"class": "form-control mono", "autocomplete": "off"}),
    )

    def clean_dest(self) -> str:
        dest = self.cleaned_data["dest"].strip().strip("/")
        if not dest:
            raise forms.ValidationError("Enter the new path.")
        for part in dest.split("/"):
            check_name(part)
        return unicodedata.normalize("NFC", dest)


class DeleteForm(forms.Form):
    path = _path_field()
    recursive = forms.BooleanField(required=False)
