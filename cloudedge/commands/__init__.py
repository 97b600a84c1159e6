"""Subcommands of the `cloudedge` CLI; see cloudedge/cli.py."""
