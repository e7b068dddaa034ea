"""``konak hub add-user``: create the first accounts (the platform superadmin, a tenant's
first admin) straight in the hub database, before anyone can sign in to the API."""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Final

from konak.hub.security.rbac import Role

PASSWORD_ENV: Final = "KONAK_NEW_PASSWORD"  # noqa: S105 - the variable's name, not a secret


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_config: str) -> None:
    """Add ``add-user`` to ``konak hub``."""
    from pathlib import Path

    cmd = sub.add_parser(
        "add-user",
        help="create a user (and a role in a tenant, or the superadmin flag)",
        description=f"The password is read from ${PASSWORD_ENV}, else asked on the terminal.",
    )
    cmd.add_argument("--config", type=Path, default=Path(default_config), help="hub TOML file")
    cmd.add_argument("--email", required=True)
    cmd.add_argument("--tenant", help="give the user a role in this tenant")
    cmd.add_argument("--role", choices=[r.value for r in Role], default=Role.ADMIN.value)
    cmd.add_argument("--superadmin", action="store_true", help="the platform superadmin")
    cmd.set_defaults(handler=add_user)


def add_user(args: argparse.Namespace) -> int:
    """Create the account; a KonakError (weak password, taken e-mail) exits 1 with its reason."""
    from konak.hub import database
    from konak.hub.security.errors import SecurityError
    from konak.hub.security.passwords import Hasher, PasswordPolicy
    from konak.hub.security.users import Users
    from konak.hub.settings import load_settings

    if args.tenant is None and not args.superadmin:
        raise SecurityError("give --tenant (with --role) or --superadmin", code="usage")
    settings = load_settings(args.config)
    password = os.environ.get(PASSWORD_ENV) or getpass.getpass("password: ")
    auth = settings.auth
    db = database.connect(settings.database_path)
    try:
        users = Users(
            db,
            Hasher(time_cost=auth.argon2_time_cost, memory_cost_kib=auth.argon2_memory_kib),
            PasswordPolicy.load(auth.password_min_length, auth.common_passwords_file),
        )
        for tenant_id in settings.tenants:
            users.ensure_tenant(tenant_id)
        user = users.create_user(args.email, password, superadmin=args.superadmin)
        if args.tenant is not None:
            users.assign(args.tenant, user.user_id, Role(args.role))
    finally:
        db.close()
    where = f" ({args.role} of {args.tenant})" if args.tenant else ""
    print(f"user {user.email} created{' as superadmin' if args.superadmin else ''}{where}")
    return 0
