"""Two-factor pages: enrol an authenticator app (TOTP), then confirm a code per session."""

from base64 import b32encode

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return settings.LOGIN_REDIRECT_URL


@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """Enrolment: a new secret shown as a QR code and as text; confirmed by a first code."""
    if TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        return redirect("two_factor_verify")
    device, _created = TOTPDevice.objects.get_or_create(
        user=request.user,
        confirmed=False,
        defaults={"name": "authenticator"},
    )
    form = TokenForm(request.POST or None)
    if form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save()
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("token", _("That code is not right. Check the time on your phone and try the current code."))
    import segno

    qr = segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#1f2933")
    return render(
        request,
        "accounts/two_factor_setup.html",
        {
            "form": form,
            "qr_svg": qr,
            "secret": b32encode(device.bin_key).decode(),
            "next": _next(request),
        },
    )


@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """The second step of every Administrator login."""
    if not TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        return redirect("two_factor_setup")
    form = TokenForm(request.POST or None)
    if form.is_valid():
        device = match_token(request.user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("token", _("That code is not right."))
    return render(request, "accounts/two_factor_verify.html", {"form": form, "next": _next(request)})
