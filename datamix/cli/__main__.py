"""`python -m datamix.cli ...` (what torchrun runs): the datamix command line."""

from datamix.cli import main

main()
