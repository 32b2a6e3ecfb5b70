"""Sign-in and sign-out."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse

from portal import certificates
from portal.cloud_session import start_cloud_connection
from portal.demo import DEMO_PASSWORD, DEMO_USERNAME
from portal.identity import AccountConflict, IdentityUnavailable


class SignInForm(AuthenticationForm):
    username = forms.CharField(
        label="CADC username",
        max_length=150,
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "username", "class": "form-control"}
        ),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "class": "form-control"}),
    )
    error_messages = {
        "invalid_login": "That username and password do not match. Check them and try again.",
        "inactive": "This account is disabled. Contact the portal's operators.",
    }

    def clean(self):  # type: ignore[no-untyped-def]
        try:
            return super().clean()
        except AccountConflict as exc:
            raise forms.ValidationError(str(exc), code="conflict") from exc
        except IdentityUnavailable as exc:
            raise forms.ValidationError(
                f"The sign-in service is not answering right now ({exc}). Please try again in a few minutes.",
                code="unavailable",
            ) from exc


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        response = super().form_valid(form)
        start_cloud_connection(self.request, form.get_user(), form.cleaned_data["password"])
        certificates.obtain_at_sign_in(self.request, form.get_user(), form.cleaned_data["password"])
        return response

    def get_context_data(self, **kwargs):  # type: ignore[no-untyped-def]
        ctx = super().get_context_data(**kwargs)
        embedded_local = settings.EMBEDDED and settings.IDENTITY_BACKEND == "local"
        if embedded_local and get_user_model().objects.filter(username=DEMO_USERNAME).exists():
            ctx["demo_hint"] = f"{DEMO_USERNAME} / {DEMO_PASSWORD}"
        return ctx


sign_in = SignInView.as_view()


def sign_out(request) -> HttpResponse:  # type: ignore[no-untyped-def]
    return auth_views.LogoutView.as_view()(request)
