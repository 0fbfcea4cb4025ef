from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import two_factor, views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/2fa/setup/", two_factor.setup, name="two_factor_setup"),
    path("accounts/2fa/verify/", two_factor.verify, name="two_factor_verify"),
]
