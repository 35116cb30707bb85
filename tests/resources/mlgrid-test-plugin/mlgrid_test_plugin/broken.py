"""A plugin module that cannot be imported, to show a broken plugin is reported, not fatal."""

raise ImportError("mlgrid_test_plugin.broken needs a package that is not installed (on purpose)")
