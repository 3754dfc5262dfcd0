#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")
    if sys.argv[1:2] == ["runserver"]:
        # runserver is daphne's ASGI server here (a thread per request), so it pools connections the
        # way coffeeshop/asgi.py does; that module is imported only after the settings are read.
        os.environ.setdefault("DB_CONN_MAX_AGE", "0")
        os.environ.setdefault("DB_POOL", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
