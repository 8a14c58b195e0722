#!/usr/bin/env python
"""Django's command-line utility; DJANGO_SETTINGS_MODULE picks the site (default cert)."""

import sys

from platform_core.processes.cli import run_manage

if __name__ == "__main__":
    run_manage(sys.argv)
