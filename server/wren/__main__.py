"""`python -m wren` is the `wren` command line."""

from wren.cli import app

if __name__ == "__main__":
    app()
