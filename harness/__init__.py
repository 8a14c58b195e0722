"""What the tests and the benchmark share: real redis-server and platform processes,
started and stopped. Not part of the deployed platform (not packaged).
"""
