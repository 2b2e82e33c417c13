"""`python -m datamix ...`: the datamix command line."""

from datamix.cli import main

main()
