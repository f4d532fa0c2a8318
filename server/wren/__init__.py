"""Wren: a local AI code assistant served over the Language Server Protocol."""

# Import nothing here: `python -m wren` runs this before __main__.py can drop the working
# directory from sys.path (see __main__.py), so an import here could load a workspace's module.

__version__ = "0.1.0"
