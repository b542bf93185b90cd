"""Target backends: each turns a `layout.VmLayout` into a view for its templates."""
