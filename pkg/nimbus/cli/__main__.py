"""python -m nimbus.cli: the nimbus command."""

from nimbus.cli.main import main

main()
