"""Package layout: the tree shows the architecture, the import names stay unambiguous.

``sdk/mlgrid`` is imported as ``mlgrid`` and ``services`` as ``mlgrid_services``; everything else
lives in pyproject.toml.
"""

from setuptools import find_packages, setup

PACKAGE_ROOTS = {"mlgrid": "sdk/mlgrid", "mlgrid_services": "services"}


def _packages_under(name: str, root: str) -> list[str]:
    return [name] + [f"{name}.{sub}" for sub in find_packages(root)]


setup(
    package_dir=PACKAGE_ROOTS,
    packages=[pkg for name, root in PACKAGE_ROOTS.items() for pkg in _packages_under(name, root)],
)
