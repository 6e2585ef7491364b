"""`python -m acoustid_stack` is `acoustid-stack`: children of `up` start this way, so they
run on the same interpreter as their supervisor, with or without the script on PATH."""

from acoustid_stack.cli import main

main()
