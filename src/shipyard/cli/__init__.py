"""The command line: thin Typer commands that parse, call the layers below and print."""
