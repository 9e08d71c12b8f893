"""``python -m meterhub.cli``."""

from . import main

main()
