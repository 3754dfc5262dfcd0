"""Staff at the bench server, as their tools talk to it: a script with an API token, and a browser in
the admin (a session cookie, CSRF tokens in forms, Origin and Referer on every POST).

The server runs the production settings behind a pretend TLS terminator (`X-Forwarded-Proto: https`),
so its cookies are `Secure` and its CSRF check is the strict HTTPS one. An HTTP client would not send
`Secure` cookies over plain HTTP to 127.0.0.1, so this one keeps them itself, as the browser would
over TLS. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie

import httpx

from bench.heartbeat import HOST, BenchError


class StaffClient:
    """One member of staff: `token` for the API, or `login()` for the admin's session."""

    def __init__(self, port: int, *, token: str | None = None, timeout_s: float = 60):
        self.origin = f"https://{HOST}:{port}"
        self.cookies: dict[str, str] = {}
        headers = {"X-Forwarded-Proto": "https"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.http = httpx.Client(base_url=f"http://{HOST}:{port}", headers=headers, timeout=timeout_s)
        self.last_page = "/"

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if method != "GET":  # what a browser sends with a form; the HTTPS CSRF check wants them
            headers.setdefault("Origin", self.origin)
            headers.setdefault("Referer", self.origin + self.last_page)
        response = self.http.request(method, path, headers=headers, **kwargs)
        self.http.cookies.clear()  # kept here instead (see the module's docstring)
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if method == "GET" and response.status_code == 200:
            self.last_page = path
        return response

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def login(self, email: str, password: str) -> httpx.Response:
        """The admin's login form, filled in and sent: its reply, a redirect with the session cookie
        (raises otherwise)."""
        page = self.get("/admin/login/")
        form = read_form(page.text, "password")
        form.fields.update(username=email, password=password)
        reply = self.post(form.action or "/admin/login/", data=form.fields)
        if reply.status_code != 302 or "sessionid" not in self.cookies:
            raise BenchError(f"admin login as {email}: HTTP {reply.status_code} {reply.text[:300]}")
        return reply


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # select name -> (value, label)
    files: list[str] = field(default_factory=list)

    def choose(self, name: str, label: str) -> None:
        """Pick a select's option by the text a person reads."""
        for value, text in self.options.get(name, []):
            if text.strip().lower() == label.lower():
                self.fields[name] = value
                return
        raise BenchError(f"no option {label!r} in {name}: {self.options.get(name)}")


class _FormReader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._option: tuple[str, bool] | None = None
        self._option_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = Form(action=attr.get("action", ""))
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and attr.get("name"):
            kind = attr.get("type", "text").lower()
            if kind == "file":
                self._form.files.append(attr["name"])
            elif kind not in ("submit", "button", "image", "reset") and (
                kind not in ("checkbox", "radio") or "checked" in attr
            ):
                self._form.fields[attr["name"]] = attr.get("value", "")
        elif tag == "select" and attr.get("name"):
            self._select = attr["name"]
            self._form.options[self._select] = []
        elif tag == "option" and self._select:
            self._option, self._option_text = (attr.get("value", ""), "selected" in attr), []

    def handle_data(self, data):
        if self._option is not None:
            self._option_text.append(data)

    def handle_endtag(self, tag):
        if tag == "option" and self._option is not None and self._select and self._form:
            value, selected = self._option
            options = self._form.options[self._select]
            options.append((value, "".join(self._option_text)))
            if selected or len(options) == 1:  # a browser sends the selected option, else the first
                self._form.fields[self._select] = value
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._form = None


def read_form(html: str, with_field: str) -> Form:
    """The page's form that has an input named `with_field`, with what a browser would send of it
    untouched: hidden and text inputs, checked boxes, each select's selected option."""
    reader = _FormReader()
    reader.feed(html)
    for form in reader.forms:
        if with_field in form.fields or with_field in form.files or with_field in form.options:
            return form
    raise BenchError(f"no form with a field {with_field!r} on the page ({len(reader.forms)} forms)")


def latency_ms(send, *, requests: int, max_s: float, warmup: int = 3) -> dict:
    """Sequential requests, one at a time: `send()` issues one and raises if its reply is wrong.
    Stops at `requests` or after `max_s`; milliseconds, from the client's side."""
    for _ in range(warmup):
        send()
    timings = []
    deadline = time.monotonic() + max_s
    while len(timings) < requests and (time.monotonic() < deadline or not timings):
        started = time.perf_counter()
        send()
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "requests": len(timings),
        "p50_ms": round(statistics.median(timings), 2),
        "p95_ms": round(statistics.quantiles(timings, n=20)[-1], 2) if len(timings) > 1 else timings[0],
        "p99_ms": round(statistics.quantiles(timings, n=100)[-1], 2) if len(timings) > 1 else timings[0],
        "mean_ms": round(statistics.fmean(timings), 2),
        "max_ms": round(max(timings), 2),
    }


def ceiling_latency_ms(client: StaffClient, *, requests: int = 200, max_s: float = 20) -> dict:
    """The bare view (`/bench/ceiling`, bench/urls.py) through the same client: what a request that does
    nothing costs on this server, in this run."""

    def send():
        reply = client.get("/bench/ceiling")
        if reply.status_code != 200:
            raise BenchError(f"GET /bench/ceiling: HTTP {reply.status_code}")

    return latency_ms(send, requests=requests, max_s=max_s)


@contextlib.contextmanager
def counting_queries():
    """Inside a Django process (the bench's `manage.py shell` scripts): {"queries": n, "seconds": s,
    "slowest": (s, sql)}, the queries sent on the default connection while `with`-ed, the time spent
    waiting for them, and the one that took longest."""
    from django.db import connection

    counter = {"queries": 0, "seconds": 0.0, "slowest": (0.0, "")}

    def count(execute, sql, params, many, context):
        counter["queries"] += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - started
            counter["seconds"] += took
            counter["slowest"] = max(counter["slowest"], (took, sql))

    with connection.execute_wrapper(count):
        yield counter
