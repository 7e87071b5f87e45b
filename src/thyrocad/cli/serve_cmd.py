"""`thyrocad serve` (the web app) and `thyrocad users add/list/remove` (its accounts)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import HelpGroup, app, command, fail, setup_logging

users_app = typer.Typer(help="Manage the web app's users (argon2-hashed passwords).", cls=HelpGroup)
app.add_typer(users_app, name="users")


def default_db() -> Path:
    """`$XDG_DATA_HOME/thyrocad/server/thyrocad.db` (default ~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "thyrocad" / "server" / "thyrocad.db"


DEFAULT_DB = default_db()
DbOption = Annotated[
    Path,
    typer.Option("--db", help="SQLite database (users, history); results live next to it."),
]


def _store(db: Path):
    from thyrocad.server.store import Store

    return Store(db)


@command()
def serve(
    model_dir: Annotated[Path, typer.Argument(help="Model bundle folder (thyrocad train).")],
    host: Annotated[
        str, typer.Option(help="Address to bind; keep loopback behind a reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    db: DbOption = DEFAULT_DB,
    max_upload_mb: Annotated[
        int, typer.Option("--max-upload-mb", min=1, help="Largest accepted request body.")
    ] = 64,
    store_patient_ids: Annotated[
        bool,
        typer.Option("--store-patient-ids", help="Also keep patient name and ID of DICOM uploads."),
    ] = False,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Mark cookies Secure (behind TLS).")
    ] = False,
) -> None:
    """Run the authenticated web app and JSON API.

    Run the web app and JSON API (FastAPI + Uvicorn). Users log in with accounts made by
    `thyrocad users add`; there is no default account. API spec: /api/openapi.json.

    Example: thyrocad serve models/resnet18 --port 8000 --db /srv/thyrocad/thyrocad.db
    """
    import uvicorn

    from thyrocad.server.app import ServerSettings, create_app

    console = Console(stderr=True)
    setup_logging(default="info")
    settings = ServerSettings(
        model_dir=model_dir,
        db_path=db,
        data_dir=db.parent,
        max_upload_bytes=max_upload_mb << 20,
        store_patient_ids=store_patient_ids,
        secure_cookies=secure_cookies,
    )
    web_app = create_app(settings)
    if not web_app.state.store.list_users():
        console.print(
            f"[yellow]No users yet:[/yellow] add one with `thyrocad users add NAME --db {db}`."
        )
    console.print(f"thyrocad serving on http://{host}:{port} (database {db})")
    uvicorn.run(web_app, host=host, port=port, server_header=False, log_level="info")


@command(users_app, "add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = DEFAULT_DB,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user. The password is asked for (twice), or read from stdin; never an argument.

    Example: thyrocad users add dr.meier --db /srv/thyrocad/thyrocad.db
    """
    from thyrocad.server.auth import add_user

    console = Console(stderr=True)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    add_user(_store(db), username, password)
    console.print(f"user {username} added to {db}")


@command(users_app, "list")
def users_list(db: DbOption = DEFAULT_DB) -> None:
    """List the users and when they were created.

    Example: thyrocad users list --db /srv/thyrocad/thyrocad.db
    """
    console = Console()
    users = _store(db).list_users()
    for name, created in users:
        console.print(f"{name}\t{created}")


@command(users_app, "remove")
def users_remove(
    username: Annotated[str, typer.Argument(help="Login name.")], db: DbOption = DEFAULT_DB
) -> None:
    """Delete a user and end its sessions and API tokens (its past diagnoses stay).

    Example: thyrocad users remove dr.meier --db /srv/thyrocad/thyrocad.db
    """
    console = Console(stderr=True)
    if not _store(db).remove_user(username):
        raise fail(f"no user {username!r} in {db}", 1)
    console.print(f"user {username} removed")
