"""Forms for the VM pages: they validate and hand plain data to the views."""

from __future__ import annotations

import re
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from django import forms
from django.conf import settings
from django.utils import timezone

from orchestration.cloud.readiness import cloud_config, foreign_packages, package_family
from portal.models import Flavor, Image, KeyPair, Quota, Server, shared_from

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
LINUX_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")


def _name_field(label: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=63,
        help_text=help_text,
        widget=forms.TextInput(attrs={"class": "form-control", "autocomplete": "off"}),
    )


def _check_name(value: str, what: str) -> str:
    value = value.strip()
    if not NAME_RE.match(value):
        raise forms.ValidationError(
            f"Use letters, digits, '.', '_' or '-' for the {what} (up to 63 characters, starting with a letter "
            "or digit)."
        )
    return value


class KeyPairForm(forms.Form):
    name = _name_field("Key pair name", "A name you will recognise, e.g. laptop-2024.")
    public_key = forms.CharField(
        label="Public key",
        max_length=16384,
        help_text="Paste the contents of your public key file, e.g. ~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub.",
        widget=forms.Textarea(
            attrs={
                "class": "form-control mono",
                "rows": 4,
                "spellcheck": "false",
                "placeholder": "ssh-ed25519 AAAA... you@laptop",
            }
        ),
    )

    def __init__(self, *args: Any, existing: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing = existing or set()

    def clean_name(self) -> str:
        name = _check_name(self.cleaned_data["name"], "key pair name")
        if name in self.existing:
            raise forms.ValidationError(f"You already have a key pair named {name}.")
        return name

    def clean_public_key(self) -> str:
        text = " ".join(self.cleaned_data["public_key"].split())
        if "PRIVATE KEY" in text:
            raise forms.ValidationError("This is a private key. Never share it: paste the .pub file instead.")
        invalid = forms.ValidationError(
            "This is not a valid SSH public key. It should be one line starting with ssh-ed25519, "
            "ssh-rsa or ecdsa-sha2-nistp256, as in your ~/.ssh/*.pub file."
        )
        try:
            serialization.load_ssh_public_key(text.encode())
        except (ValueError, TypeError):
            raise invalid from None
        except UnsupportedAlgorithm:
            if text.split(" ", 1)[0] in (
                "ssh-dss",
                "sk-ssh-ed25519@openssh.com",
                "sk-ecdsa-sha2-nistp256@openssh.com",
            ):
                raise forms.ValidationError(
                    "This key type is not supported; use an ed25519 or RSA key."
                ) from None
            raise invalid from None
        return text


class LaunchForm(forms.Form):
    name = _name_field("Name", "With a count above 1, VMs are named name-1, name-2, ...")
    source = forms.ChoiceField(label="Boot source", widget=forms.Select(attrs={"class": "form-select"}))
    flavor = forms.ChoiceField(label="Flavor", widget=forms.Select(attrs={"class": "form-select"}))
    key_name = forms.ChoiceField(
        label="Key pair", required=False, widget=forms.Select(attrs={"class": "form-select"})
    )
    count = forms.IntegerField(
        label="Count",
        min_value=1,
        max_value=20,
        initial=1,
        widget=forms.NumberInput(attrs={"class": "form-control"}),
    )
    prepare_for_batch = forms.BooleanField(
        label="Prepare for batch",
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
        help_text="Creates your CADC user on the VM, sets up /mnt/scratch and installs the packages below.",
    )
    packages = forms.CharField(
        label="Packages",
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"class": "form-control mono"}),
    )
    launch_anyway = forms.BooleanField(
        label="Launch anyway",
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
    )

    def __init__(self, *args: Any, project: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project, self.user = project, user
        images = list(Image.objects.filter(project=project, status="active").order_by("-created_at"))
        self.images = {i.external_id: i for i in images}
        self.shared_from = shared_from(project)
        self.warnings: list[str] = []

        def snapshot_label(i: Image) -> str:
            label = f"{i.name} ({i.created_at:%Y-%m-%d})" if i.created_at else i.name
            owner = self.shared_from.get(i.external_id)
            return f"{label} · shared from {owner}" if owner else label

        self.fields["source"].choices = [  # type: ignore[attr-defined]
            ("Images", [(i.external_id, i.name) for i in images if not i.is_snapshot]),
            ("Instance snapshots", [(i.external_id, snapshot_label(i)) for i in images if i.is_snapshot]),
        ]
        self.flavors = {f.external_id: f for f in Flavor.objects.filter(project=project)}
        self.fields["flavor"].choices = [(f.external_id, f.label) for f in self.flavors.values()]  # type: ignore[attr-defined]
        keys = list(KeyPair.objects.filter(project=project, owner=user, pending=False).order_by("-created"))
        key_choices = [(k.name, f"{k.name} ({k.sha256_fingerprint or k.fingerprint})") for k in keys]
        self.fields["key_name"].choices = key_choices + [("", "No key pair (console only)")]  # type: ignore[attr-defined]
        if keys and not self.is_bound:
            self.initial["key_name"] = keys[0].name
        default = next((f for f in self.flavors.values() if f.name == "c2-7.5gb-31"), None)
        if default and not self.is_bound:
            self.initial["flavor"] = default.external_id
        ubuntu = newest_ubuntu(images)
        if ubuntu and not self.is_bound and not self.initial.get("source"):
            self.initial["source"] = ubuntu.external_id
        if not self.is_bound:
            self.initial["packages"] = settings.BATCH_PACKAGES_DEFAULT
            self.initial["name"] = f"{user.username}-vm-{timezone.now():%m%d}"

    def clean_name(self) -> str:
        return _check_name(self.cleaned_data["name"], "VM name")

    def live_warnings(self, data: Any) -> list[str]:
        """The warnings for the choices made so far (the form need not be complete or valid)."""
        if not data.get("prepare_for_batch"):
            return []
        packages = str(data.get("packages", "")).replace(",", " ").split()
        return batch_warnings(
            self.images.get(str(data.get("source", ""))),
            self.flavors.get(str(data.get("flavor", ""))),
            [p for p in packages if PACKAGE_RE.match(p)],
        )

    def clean_packages(self) -> list[str]:
        packages = self.cleaned_data["packages"].replace(",", " ").split()
        bad = [p for p in packages if not PACKAGE_RE.match(p)]
        if bad:
            raise forms.ValidationError(f"Not a package name: {', '.join(bad)}")
        return packages

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        flavor = self.flavors.get(data.get("flavor", ""))
        image = self.images.get(data.get("source", ""))
        count = data.get("count") or 1
        if flavor and image and image.min_disk_gb > flavor.disk_gb:
            self.add_error("flavor", f"{image.name} needs a root disk of at least {image.min_disk_gb} GB.")
        if flavor:
            quota = Quota.objects.filter(project=self.project).first()
            refusal = quota.launch_refusal(count, flavor.vcpus, flavor.ram_mb) if quota else ""
            if refusal:
                raise forms.ValidationError(refusal)
        name = data.get("name")
        if name:
            names = [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]
            taken = Server.objects.filter(project=self.project, name__in=names).values_list("name", flat=True)
            if taken:
                self.add_error("name", f"A VM named {', '.join(taken)} already exists in this project.")
        if data.get("prepare_for_batch") and not LINUX_USER_RE.match(self.user.username):
            self.add_error(
                "prepare_for_batch", f"Your username {self.user.username!r} is not a valid Linux user name."
            )
        if data.get("prepare_for_batch"):
            self.warnings = batch_warnings(image, flavor, data.get("packages") or [])
        if self.warnings and not data.get("launch_anyway"):
            self.add_error(
                "launch_anyway", "Check the warnings above; tick “Launch anyway” to launch as it is."
            )
        return data

    def user_data(self) -> str:
        if not self.cleaned_data.get("prepare_for_batch"):
            return ""
        key = KeyPair.objects.filter(
            project=self.project, owner=self.user, name=self.cleaned_data.get("key_name") or ""
        ).first()
        return cloud_config(
            self.user.username, self.cleaned_data["packages"], key.public_key if key else None
        )


def newest_ubuntu(images: list[Image]) -> Image | None:
    """The tutorial's boot source: the newest canfar-ubuntu image (by date, then by version in the name)."""
    ubuntu = [i for i in images if not i.is_snapshot and i.name.startswith("canfar-ubuntu")]
    return max(ubuntu, key=lambda i: (i.created_at.timestamp() if i.created_at else 0, i.name), default=None)


def batch_warnings(image: Image | None, flavor: Flavor | None, packages: list[str]) -> list[str]:
    """What will not work as expected when this VM is prepared for batch (the user may go ahead)."""
    warnings = []
    if image is not None:
        family = package_family(image.name, image.default_user)
        foreign = foreign_packages(family, packages)
        if foreign:
            tool, other = ("dnf", "Debian/Ubuntu (apt)") if family == "dnf" else ("apt", "Rocky/CentOS (dnf)")
            names = ", ".join(foreign)
            hints = ", ".join(f"{p} → {alt}" for p, alt in foreign.items() if alt)
            warnings.append(
                f"{image.name} installs packages with {tool}, but {names} "
                f"{'is a' if len(foreign) == 1 else 'are'} {other} package name{'s' if len(foreign) > 1 else ''}"
                + (f" (on this image: {hints})." if hints else ".")
            )
    if flavor is not None and flavor.ephemeral_gb == 0:
        warnings.append(
            f"{flavor.name} has no scratch disk (persistent flavor, ephemeral 0 GB): /mnt/scratch will be on "
            f"the {flavor.disk_gb} GB root disk. Choose a c* flavor for batch work."
        )
    return warnings


class SnapshotForm(forms.Form):
    name = _name_field("Snapshot name")

    def clean_name(self) -> str:
        return _check_name(self.cleaned_data["name"], "snapshot name")


PROJECT_ID_RE = re.compile(r"^[0-9a-fA-F-]{8,64}$")


class ShareForm(forms.Form):
    """Whom to share a snapshot with: one of the user's other projects, or a project ID they were given."""

    project = forms.ChoiceField(
        label="Share with", required=False, widget=forms.Select(attrs={"class": "form-select"})
    )
    project_id = forms.CharField(
        label="or project ID",
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"class": "form-control mono", "placeholder": "project ID"}),
    )

    def __init__(self, *args: Any, project: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = project
        self.others = {p.external_id: p for p in user.projects.exclude(pk=project.pk).order_by("name")}
        choices = [("", "one of your projects…")] + [(k, p.name) for k, p in self.others.items()]
        self.fields["project"].choices = choices  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        chosen, typed = data.get("project") or "", (data.get("project_id") or "").strip()
        if typed and not PROJECT_ID_RE.match(typed):
            raise forms.ValidationError("A project ID is hexadecimal, as `openstack project list` shows it.")
        member = typed or chosen
        if not member:
            raise forms.ValidationError("Choose a project to share with.")
        if member == self.current.external_id:
            raise forms.ValidationError("This snapshot already belongs to this project.")
        data["member_id"] = member
        data["member_name"] = self.others[member].name if member in self.others else ""
        return data
