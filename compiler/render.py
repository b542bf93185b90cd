"""Render phase: view models -> text, through the one Jinja environment.

StrictUndefined turns a template typo into an error instead of empty output;
autoescape is on for XML so that every user string is escaped on the way out.

A fleet renders tens of thousands of documents, so what Jinja does per render is
kept to the template's own code: the environment and each template are built
once per process, templates are never checked for changes on disk
(`auto_reload=False`: they are part of the installed program), and an
`{% include %}` is inlined into its parent's source when the parent is loaded, so
that a domain is one template call rather than one per device (each include is a
template lookup and a new context). The inlined text runs in the same context the
include would have given it, so the output is the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup

from .resources import resource_dir

_INCLUDE = re.compile(r'\{%\s*include\s+"(?P<name>[^"]+)"\s*%\}')


class _InliningLoader(FileSystemLoader):
    """Templates from the templates folder, with every `{% include "NAME" %}` replaced by NAME's source."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, _ = super().get_source(environment, template)
        inlined = _INCLUDE.sub(lambda m: self.get_source(environment, m["name"])[0], source)
        return inlined, filename, lambda: True


def indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    """Jinja's `indent` filter, computed on plain text: the built-in one works line by line on `Markup`
    (escaping each piece again) when autoescape is on, which was a third of the time of a domain.
    Same result, `Markup` kept: the lines of markup stay markup once indented with spaces."""
    text = str(s) + "\n"  # Jinja's own quirk, kept: a trailing newline is dropped by splitlines
    indention = width if isinstance(width, str) else " " * width
    lines = text.splitlines()
    if blank:
        rv = ("\n" + indention).join(lines)
    else:
        rv = lines[0]
        if len(lines) > 1:
            rv += "\n" + "\n".join(indention + line if line else line for line in lines[1:])
    if first:
        rv = indention + rv
    return Markup(rv) if isinstance(s, Markup) else rv


def _environment() -> Environment:
    env = Environment(
        loader=_InliningLoader(str(resource_dir("templates"))),
        autoescape=select_autoescape(enabled_extensions=("xml", "xml.j2"), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        auto_reload=False,
    )
    env.filters["indent"] = indent
    return env


@cache
def environment() -> Environment:
    """The process's one environment, made on first use (`teamc check` never renders)."""
    return _environment()


@cache
def template(name: str) -> Template:
    return environment().get_template(name)


def render(name: str, **context) -> str:
    return template(name).render(**context)
