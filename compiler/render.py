"""Render phase: view models -> text, through the one Jinja environment.

StrictUndefined turns a template typo into an error instead of empty output;
autoescape is on for XML so that every user string is escaped on the way out.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .resources import resource_dir


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        autoescape=select_autoescape(enabled_extensions=("xml", "xml.j2"), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
