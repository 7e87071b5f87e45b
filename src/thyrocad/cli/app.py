"""The Typer application object that every command module registers itself on."""

import typer

app = typer.Typer(
    name="thyrocad",
    help="Computer-aided diagnosis of residual thyroid tissue on planar I-131 neck scintigrams.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root() -> None:
    """Computer-aided diagnosis of residual thyroid tissue on planar I-131 neck scintigrams."""
