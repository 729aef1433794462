"""Create Superset's `admin`, or set its password, from SUPERSET_ADMIN_PASSWORD.

The password comes from the environment only: `superset fab create-admin --password …` would
put it on a command line, where `ps` shows it to every user and the stack's log keeps it.
Run with Superset's Python after `superset db upgrade` and `superset init` (which creates the
Admin role): `python superset/admin_user.py`.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD", "")
    if not password:
        print("SUPERSET_ADMIN_PASSWORD is not set", file=sys.stderr)
        return 2
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        security = app.appbuilder.sm
        user = security.find_user(username="admin")
        if user is None:
            role = security.find_role(security.auth_role_admin)
            if role is None or not security.add_user("admin", "Superset", "Admin", "admin@ai-tweets.local", role,
                                                     password=password):
                print("could not create the Superset admin (is the Admin role there? run `superset init`)",
                      file=sys.stderr)
                return 1
            print("created the Superset admin")
        else:
            security.reset_password(user.id, password)
            print("set the Superset admin's password from SUPERSET_ADMIN_PASSWORD")
    return 0


if __name__ == "__main__":
    sys.exit(main())
