"""Configuration and routing: the sites, queues and their policies, settings from the
environment, where a task goes. Imports nothing else of the platform.
"""
