"""Renewing the CADC proxy certificate: the portal never keeps the password, so it asks again."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from orchestration.identity.cadc import IdentityError
from portal import certificates


class RenewCertificateForm(forms.Form):
    password = forms.CharField(
        label="CADC password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "class": "form-control"}),
    )


@login_required
@require_http_methods(["GET", "POST"])
def renew_certificate(request: HttpRequest) -> HttpResponse:
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        nxt = ""
    form = RenewCertificateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            cert = certificates.obtain(request.user, form.cleaned_data["password"])
        except IdentityError as exc:
            form.add_error("password", str(exc))
        else:
            messages.success(
                request,
                f"Your CADC proxy certificate is renewed, valid until {cert.not_after:%Y-%m-%d %H:%M} UTC.",
            )
            return redirect(nxt or "dashboard")
    ctx = {"form": form, "certificate": certificates.current(request.user), "next": nxt}
    return render(request, "storage/certificate_renew.html", ctx)
