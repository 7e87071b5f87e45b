"""`thyrocad version`: the package and key library versions (for bug reports)."""

from rich.console import Console

from thyrocad.cli.app import command


@command()
def version() -> None:
    """Print thyrocad's version and the versions of the libraries results depend on.

    Example: thyrocad version
    """
    from thyrocad.provenance import library_versions

    console = Console()
    for name, ver in library_versions().items():
        console.print(f"{name:<24} {ver}")
