"""The render phase: templates loaded once with their includes inlined, escaping unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import TemplateNotFound
from jinja2.filters import do_indent
from markupsafe import Markup

from teamc import render
from teamc.backends.libvirt import domain_view
from teamc.emitters.domain_xml import domain_xml
from teamc.layout import layout
from teamc.pipeline import check_source, load

WEB = "examples/net-virtio-teaming.team"


def test_a_domain_is_one_template_with_no_lookup_per_render(monkeypatch):
    graph, result = check_source(load(WEB)[0])
    assert not result.failed
    views = [domain_view(vm_layout) for vm_layout in layout(graph)]
    first = [domain_xml(v) for v in views]
    assert "<interface" in first[0] and "model='pcie-root-port'>" in first[0]

    def refuse(*args, **kwargs):
        raise AssertionError("a template was looked up while rendering")

    # Once loaded, rendering a domain neither looks an included template up nor checks one on disk.
    monkeypatch.setattr(type(render.environment()), "_load_template", refuse)
    monkeypatch.setattr(render._InliningLoader, "get_source", refuse)
    assert [domain_xml(v) for v in views] == first
    assert render.environment().auto_reload is False


def test_includes_are_inlined_where_they_stood(tmp_path):
    (tmp_path / "outer.xml.j2").write_text('<a>{% include "inner.xml.j2" %}</a>\n')
    (tmp_path / "inner.xml.j2").write_text('<b>{{ v }}</b>{% include "leaf.xml.j2" %}')
    (tmp_path / "leaf.xml.j2").write_text("<c/>")
    loader = render._InliningLoader(str(tmp_path))
    source, _, uptodate = loader.get_source(render.environment(), "outer.xml.j2")
    assert source == "<a><b>{{ v }}</b><c/></a>\n" and uptodate()
    with pytest.raises(TemplateNotFound):
        loader.get_source(render.environment(), "missing.xml.j2")


LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "", " ", "<", "&", "x"]


@given(text=st.lists(st.sampled_from(LINE_BREAKS) | st.text(max_size=3)).map("".join),
       markup=st.booleans(), width=st.integers(0, 6) | st.sampled_from(["\t", "> "]), first=st.booleans(),
       blank=st.booleans())
def test_the_indent_filter_gives_what_jinjas_own_gives(text, markup, width, first, blank):
    value = Markup(text) if markup else text
    ours, theirs = render.indent(value, width, first, blank), do_indent(value, width, first, blank)
    assert ours == theirs and type(ours) is type(theirs)


def test_autoescape_still_escapes_what_an_indented_include_prints(tmp_path):
    (tmp_path / "outer.xml.j2").write_text('{% filter indent(2, first=true) %}{% include "inner.xml.j2" %}'
                                           "{% endfilter %}")
    (tmp_path / "inner.xml.j2").write_text("<a v='{{ v }}'>\n{{ v }}</a>")
    env = render._environment()
    env.loader = render._InliningLoader(str(tmp_path))
    assert env.get_template("outer.xml.j2").render(v="<&'\n>") == (
        "  <a v='&lt;&amp;&#39;\n  &gt;'>\n  &lt;&amp;&#39;\n  &gt;</a>")
