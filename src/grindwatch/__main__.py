"""Run the command line as ``python -m grindwatch``, like the ``grindwatch`` script."""

from grindwatch.cli import main

main()
