"""A minimal browser on the standard library: one keep-alive connection, its cookies, the
CSRF token from forms, and the headers of a TLS-terminating proxy. It follows no redirect:
the caller sees each answer as it is."""

import http.client
import time
import urllib.parse
from dataclasses import dataclass
from http.cookies import SimpleCookie

from htmlform import form_fields
from stack import PROXY_HEADERS


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (connection refused, reset, timed out)
    body: str
    location: str
    ms: float
    error: str = ""


class Browser:
    def __init__(self, port: int, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self.origin = f"https://127.0.0.1:{port}"
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, data: dict[str, str] | None = None) -> Answer:
        headers = dict(PROXY_HEADERS)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            headers["Referer"] = self.origin + path
        started = time.perf_counter()
        try:
            conn = self._connection()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Answer(0, "", "", (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}")
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return Answer(response.status, text, response.getheader("Location", ""), (time.perf_counter() - started) * 1000)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post_form(
        self, path: str, page: str, fields: dict[str, str], *, action: str | None = None, css_class: str | None = None
    ) -> Answer:
        """Submit the form of `page` (its fields, CSRF token included) with `fields` changed."""
        data = form_fields(page, action=action, css_class=css_class)
        data.update(fields)
        return self.request("POST", path, data)

    def login(self, username: str, password: str) -> Answer:
        page = self.get("/accounts/login/")
        if page.status != 200:
            return page
        return self.post_form(
            "/accounts/login/", page.body, {"username": username, "password": password}, action="/accounts/login/"
        )
