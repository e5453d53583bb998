"""Run the command line interface as ``python -m grindwatch``."""

from grindwatch.cli import main

main()
