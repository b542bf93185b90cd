"""teamc: a compiler for virtio-net failover NIC pairs (libvirt <teaming>, QEMU failover).

The Python API (docs/api.md) is importable from here: `teamc.check_text`, `teamc.compile_text`,
`teamc.format_text`, `teamc.import_xml`, `teamc.render_diagnostics`, `teamc.explain`. They load
on first use, so that `import teamc` stays cheap.
"""

__version__ = "0.1.0"

__all__ = [
    "Diagnostic",
    "OptionError",
    "Result",
    "Severity",
    "__version__",
    "check_text",
    "compile_text",
    "explain",
    "format_text",
    "import_xml",
    "render_diagnostics",
]


def __getattr__(name: str):
    if name in ("Diagnostic", "Severity"):
        from . import diagnostics

        return getattr(diagnostics, name)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
