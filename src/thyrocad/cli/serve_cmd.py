"""`thyrocad serve` (the web app) and `thyrocad users ...` (its accounts).

Both create patient data or credentials, so both set the process umask to 0077 first: every
file they create is 0600, every folder 0700 (`private_files`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thyrocad.cli.app import HelpGroup, app, command, fail, private_files, setup_logging

users_app = typer.Typer(help="Manage the web app's users (argon2-hashed passwords).", cls=HelpGroup)
app.add_typer(users_app, name="users")


def default_db() -> Path:
    """`$XDG_DATA_HOME/thyrocad/server/thyrocad.db` (default ~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "thyrocad" / "server" / "thyrocad.db"


DEFAULT_DB = default_db()
CLI_ACTOR = "(command line)"  # the audit log's user for changes made with `thyrocad users`
DbOption = Annotated[
    Path,
    typer.Option("--db", help="SQLite database (users, history); results live next to it."),
]


RoleOption = Annotated[
    str, typer.Option("--role", help="viewer (reads), physician (also uploads, reviews), admin.")
]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _store(db: Path):
    from thyrocad.server.store import Store

    private_files()
    return Store(db)


def _audit(store, action: str, username: str, detail: str = "") -> None:
    from thyrocad.server.records import AuditEvent, utc_now

    store.audit(AuditEvent(utc_now(), CLI_ACTOR, action, username, "", detail))


def _check_role(role: str) -> str:
    from thyrocad.errors import ConfigError
    from thyrocad.server.records import ROLES

    if role not in ROLES:
        raise ConfigError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


class _NoQueryStrings(logging.Filter):
    """Uvicorn's access log without query strings (worklist searches may name patients)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


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
    min_free_mb: Annotated[
        int,
        typer.Option(
            "--min-free-mb", min=0, help="Refuse uploads (507) below this much free disk."
        ),
    ] = 64,
) -> None:
    """Run the authenticated web app and JSON API.

    Run the web app and JSON API (FastAPI + Uvicorn). Users log in with accounts made by
    `thyrocad users add`; there is no default account. API spec: /api/openapi.json.

    Example: thyrocad serve models/resnet18 --port 8000 --db /srv/thyrocad/thyrocad.db
    """
    import uvicorn

    from thyrocad.server.app import ServerSettings, create_app

    console = Console(stderr=True)
    private_files()
    setup_logging(default="info")
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())
    settings = ServerSettings(
        model_dir=model_dir,
        db_path=db,
        data_dir=db.parent,
        max_upload_bytes=max_upload_mb << 20,
        store_patient_ids=store_patient_ids,
        secure_cookies=secure_cookies,
        min_free_bytes=min_free_mb << 20,
    )
    web_app = create_app(settings)
    if not any(u.role == "admin" for u in web_app.state.store.list_users()):
        console.print(
            "[yellow]No admin yet:[/yellow] add one with "
            f"`thyrocad users add NAME --role admin --db {db}`."
        )
    console.print(f"thyrocad serving on http://{host}:{port} (database {db})")
    # log_config=None: Uvicorn's records go through thyrocad's handler (format, redaction).
    uvicorn.run(
        web_app, host=host, port=port, server_header=False, log_level="info", log_config=None
    )


@command(users_app, "add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = DEFAULT_DB,
    password_stdin: StdinOption = False,
    role: RoleOption = "physician",
) -> None:
    """Create a user. The password is asked for (twice), or read from stdin; never an argument.

    Example: thyrocad users add dr.meier --role physician --db /srv/thyrocad/thyrocad.db
    """
    from thyrocad.server.auth import add_user

    _check_role(role)
    store = _store(db)
    add_user(store, username, _read_password(password_stdin), role)
    _audit(store, "user_add", username, role)
    Console(stderr=True).print(f"user {username} ({role}) added to {db}")


@command(users_app, "passwd")
def users_passwd(
    username: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = DEFAULT_DB,
    password_stdin: StdinOption = False,
) -> None:
    """Set a new password (asked for twice, or from stdin); ends the user's sessions and tokens.

    Example: thyrocad users passwd dr.meier --db /srv/thyrocad/thyrocad.db
    """
    from thyrocad.server.auth import change_password

    store = _store(db)
    change_password(store, username, _read_password(password_stdin))
    _audit(store, "user_password", username)
    Console(stderr=True).print(f"password of {username} changed; its sessions ended")


@command(users_app, "role")
def users_role(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Argument(help="viewer, physician or admin.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Change a user's role.

    Example: thyrocad users role dr.meier admin --db /srv/thyrocad/thyrocad.db
    """
    _change(db, username, "user_role", role=_check_role(role))


@command(users_app, "disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="Login name.")], db: DbOption = DEFAULT_DB
) -> None:
    """Disable a user (no sign-in; sessions and tokens end); its records stay.

    Example: thyrocad users disable dr.meier --db /srv/thyrocad/thyrocad.db
    """
    _change(db, username, "user_disable", disabled=True)


@command(users_app, "enable")
def users_enable(
    username: Annotated[str, typer.Argument(help="Login name.")], db: DbOption = DEFAULT_DB
) -> None:
    """Enable a disabled user again.

    Example: thyrocad users enable dr.meier --db /srv/thyrocad/thyrocad.db
    """
    _change(db, username, "user_enable", disabled=False)


def _change(db: Path, username: str, action: str, **changes) -> None:
    store = _store(db)
    if not store.update_user(username, **changes):
        raise fail(f"no user {username!r} in {db}", 1)
    _audit(store, action, username, str(changes.get("role", "")))
    Console(stderr=True).print(f"user {username}: {action.removeprefix('user_')} done")


@command(users_app, "list")
def users_list(db: DbOption = DEFAULT_DB) -> None:
    """List the users: name, role, state and when they were created.

    Example: thyrocad users list --db /srv/thyrocad/thyrocad.db
    """
    console = Console()
    for user in _store(db).list_users():
        state = "disabled" if user.disabled else "active"
        console.print(f"{user.name}\t{user.role}\t{state}\t{user.created_utc}")


@command(users_app, "remove")
def users_remove(
    username: Annotated[str, typer.Argument(help="Login name.")], db: DbOption = DEFAULT_DB
) -> None:
    """Delete a user and end its sessions and API tokens (its past diagnoses, reviews and
    audit entries stay; `disable` keeps the account for the record instead).

    Example: thyrocad users remove dr.meier --db /srv/thyrocad/thyrocad.db
    """
    store = _store(db)
    if not store.remove_user(username):
        raise fail(f"no user {username!r} in {db}", 1)
    _audit(store, "user_remove", username)
    Console(stderr=True).print(f"user {username} removed")
