"""What an operator reads: the queue snapshot, the Prometheus metrics, Flower's fence.
Imports tasks, broker and config.
"""
