"""``python -m aiomt5``: the command line."""

from aiomt5._cli import main

main()
