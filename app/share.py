"""Shareable settings: a lesson's key controls mirrored in the address bar.

An instructor sets a dilation rate or a CRF width, copies the address, and every student who
opens it sees the same state. `widget` wraps any of Streamlit's value widgets (slider,
select_slider, selectbox, radio, segmented_control, pills, multiselect, toggle, checkbox,
number_input): the first time a widget appears in a session it takes its value from the query
parameter named by its key, if there is one; on every run it writes its value back. A value
that does not fit (out of range, not an option, not a number) is clamped or ignored, and a
short notice under the widget says so: a hand-edited link never raises. The notice quotes the
link's text through `plain`, so a link cannot put a live link or a remote picture on the page;
repeated choices of a multi-select are kept once, in their order.

    rate = share.widget(left.slider, "Rate r", 1, 8, 2, key="dilated_live_rate")
"""

from __future__ import annotations

import inspect
import math
import re
import string
from collections.abc import Callable
from typing import Any

import streamlit as st

_SEEDED = "_share_seeded"  # session keys already given their link value (or none)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_NUMERIC = {"slider", "number_input"}
_CHOICE = {"select_slider", "selectbox", "radio", "segmented_control", "pills"}
_BOOLEAN = {"toggle", "checkbox"}
_MULTI = {"multiselect"}
#: Longest piece of a link's text a notice quotes.
_QUOTED = 60
# Every ASCII punctuation character may be backslash-escaped in CommonMark, and escaped it is
# shown as itself: links, pictures, emphasis, HTML, formulas ($), Streamlit's :colour[] and
# autolinks (https:// www.) all need one of these.
_MARKDOWN = re.compile(f"([{re.escape(string.punctuation)}])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def plain(text: str) -> str:
    """`text` (from a link, a file name, a student) escaped so that Streamlit's markdown
    (st.caption, st.markdown, st.error, ...) shows it as typed, on one line."""
    return _MARKDOWN.sub(r"\\\1", _CONTROL.sub(" ", str(text)))


def _quote(text: str) -> str:
    """A link's text for a notice: shortened, in quotes, shown as typed."""
    short = text if len(text) <= _QUOTED else text[:_QUOTED - 1] + "…"
    return f"“{plain(short)}”"


def widget(fn: Callable[..., Any], *args, key: str, **kwargs) -> Any:
    """Call the Streamlit widget `fn(*args, key=key, **kwargs)` with its value shared by link.

    Example:
        >>> share.widget(st.slider, "Iterations", 0, 10, 5, key="crf_iterations")  # doctest: +SKIP
    """
    kind = getattr(fn, "__name__", "")
    if kind not in _NUMERIC | _CHOICE | _BOOLEAN | _MULTI:
        raise TypeError(f"share.widget cannot mirror st.{kind} in the address bar")
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    spec = dict(bound.arguments)
    seeded = st.session_state.setdefault(_SEEDED, set())
    label = str(spec.get("label", key))
    notice = None
    if key not in seeded:
        seeded.add(key)
        text = st.query_params.get(key)
        if text is not None and key not in st.session_state:
            value, notice = _parse(kind, spec, text, label)
            if value is not _NOTHING:
                st.session_state[key] = value
                # The value now comes from the session; passing a default as well would make
                # Streamlit warn on the page.
                for name in ("value", "index", "default"):
                    bound.arguments.pop(name, None)
    result = fn(*bound.args, key=key, **bound.kwargs)
    text = _format(kind, spec, result)
    if text is None:
        st.query_params.pop(key, None)
    elif st.query_params.get(key) != text:
        st.query_params[key] = text
    if notice:
        getattr(fn, "__self__", st).caption(f"🔗 {notice}")  # under the widget, where it is
    return result


_NOTHING = object()  # "the link gave no usable value"


def _options(spec: dict) -> list:
    options = spec.get("options")
    return list(options) if options is not None else []


def _shown(spec: dict, option) -> str:
    fmt = spec.get("format_func") or str
    return str(fmt(option))


def _parse(kind: str, spec: dict, text: str, label: str) -> tuple[Any, str | None]:
    """(value to use or _NOTHING, notice or None) for the link's `text`."""
    if kind in _BOOLEAN:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE, None
        return _NOTHING, f"The link's {_quote(text)} for “{label}” is not on/off: ignored."
    if kind in _CHOICE:
        option = _option(spec, text)
        if option is _NOTHING:
            return _NOTHING, f"The link's {_quote(text)} is not a choice of “{label}”: ignored."
        return option, None
    if kind in _MULTI:
        chosen = [_option(spec, part) for part in text.split(",") if part]
        kept = []  # each option once, in the link's order (`fcn8s,fcn8s` is one model)
        for option in chosen:
            if option is not _NOTHING and option not in kept:
                kept.append(option)
        limit = spec.get("max_selections")
        notice = None
        if _NOTHING in chosen or not kept:
            notice = f"Some of the link's {_quote(text)} for “{label}” are not choices: left out."
        elif limit and len(kept) > limit:
            notice = (f"The link's {_quote(text)} names more than {limit} for “{label}”: "
                      f"using the first {limit}.")
        kept = kept[:limit] if limit else kept
        return kept or _NOTHING, notice
    return _parse_number(spec, text, label)


def _option(spec: dict, text: str):
    """The option whose value or shown label is `text`, or _NOTHING."""
    for option in _options(spec):
        if text in (str(option), _shown(spec, option)):
            return option
    return _NOTHING


def _parse_number(spec: dict, text: str, label: str) -> tuple[Any, str | None]:
    default = spec.get("value")
    lo, hi = spec.get("min_value"), spec.get("max_value")
    if default is None or default == "min":
        default = lo if lo is not None else 0
    is_range = isinstance(default, (tuple, list))
    kind = type(default[0] if is_range else default)
    parts = text.split(",") if is_range else [text]
    if is_range and len(parts) != 2:
        return _NOTHING, (f"The link's {_quote(text)} for “{label}” is not a range "
                          "“low,high”: ignored.")
    values = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            return _NOTHING, f"The link's {_quote(text)} for “{label}” is not a number: ignored."
        if not math.isfinite(number):
            return _NOTHING, f"The link's {_quote(text)} for “{label}” is not a number: ignored."
        values.append(number)
    clamped = [_clamp(v, lo, hi) for v in values]
    if kind is int:
        clamped = [int(round(v)) for v in clamped]
    notice = None
    if any(c != v for c, v in zip(clamped, values)):
        shown = ",".join(f"{c:g}" for c in clamped)
        notice = f"The link's {_quote(text)} for “{label}” is out of range: using {shown}."
    if is_range:
        clamped.sort()
        return tuple(clamped), notice
    return clamped[0], notice


def _clamp(value: float, lo, hi) -> float:
    if lo is not None:
        value = max(value, lo)
    if hi is not None:
        value = min(value, hi)
    return value


def _format(kind: str, spec: dict, value) -> str | None:
    """The query-parameter text of a widget's value (None: leave it out)."""
    if value is None:
        return None
    if kind in _BOOLEAN:
        return "true" if value else "false"
    if kind in _CHOICE:
        return str(value)
    if kind in _MULTI:
        return ",".join(str(v) for v in value)
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
