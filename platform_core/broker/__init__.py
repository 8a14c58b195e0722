"""The broker layer: kombu's Redis transport hardened, the Lua scripts, worker leases, the
delayed sets, envelope checks and rejection counts. Imports only platform_core.config.
"""
