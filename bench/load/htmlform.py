"""Read a form out of a page as a browser would submit it (stdlib only)."""

from html.parser import HTMLParser


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[dict[str, str], list[tuple[str, str]]]] = []
        self._fields: list[tuple[str, str]] | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._option_value: str | None = None
        self._option_selected = False
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._fields = []
            self.forms.append((a, self._fields))
            return
        if self._fields is None:
            return
        name = a.get("name")
        if tag == "input" and name and "disabled" not in a:
            kind = a.get("type", "text").lower()
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self._fields.append((name, a.get("value", "on")))
            elif kind not in {"submit", "button", "image", "reset", "file"}:
                self._fields.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select is not None:
            self._option_value = a.get("value")
            self._option_selected = "selected" in a
            self._text = ""
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._fields is None:
            return
        if tag == "option" and self._select is not None:
            value = self._option_value if self._option_value is not None else self._text.strip()
            if self._select_first is None:
                self._select_first = value
            if self._option_selected and not self._select_chosen:
                self._fields.append((self._select, value))
                self._select_chosen = True
        elif tag == "select" and self._select is not None:
            if not self._select_chosen and self._select_first is not None:
                self._fields.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # A browser drops the one newline that follows <textarea>.
            self._fields.append((self._textarea, self._text.removeprefix("\r\n").removeprefix("\n")))
            self._textarea = None
        elif tag == "form":
            self._fields = None


def form_fields(html: str, *, action: str | None = None, css_class: str | None = None) -> dict[str, str]:
    """The fields of the first POST form whose action is `action` (or that has class
    `css_class`), as a browser would send them. KeyError when the page has no such form."""
    parser = _Forms()
    parser.feed(html)
    for attrs, fields in parser.forms:
        if attrs.get("method", "get").lower() != "post":
            continue
        if action is not None and attrs.get("action") != action:
            continue
        if css_class is not None and css_class not in attrs.get("class", "").split():
            continue
        return dict(fields)
    raise KeyError(f"no POST form with action={action!r} class={css_class!r} on the page")
