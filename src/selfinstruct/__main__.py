"""`python -m selfinstruct`: the command line."""

from selfinstruct.cli import main

main()
