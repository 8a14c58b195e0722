"""Messages written straight into a queue, as a buggy or hostile producer would."""

import base64
import json
import pickle
import uuid

import redis

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


_DEFAULT = object()


def push(
    redis_url: str, queue: str, body: bytes, content_type: str, task: str, headers=_DEFAULT
) -> str:
    """LPUSH one kombu-format message (Celery protocol 2) onto ``queue``; return its id."""
    task_id = str(uuid.uuid4())
    default_headers = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "origin": "tests",
        "argsrepr": "",
        "kwargsrepr": "",
    }
    headers = default_headers if headers is _DEFAULT else headers
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "priority": 0,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    redis.Redis.from_url(redis_url).lpush(queue, json.dumps(message))
    return task_id


def json_body(args=(), kwargs=None) -> bytes:
    return json.dumps([list(args), kwargs or {}, EMBED]).encode()


def invalid_json_body() -> bytes:
    return b'{"this is": not json'


def pickle_body() -> bytes:
    return pickle.dumps(((), {}, EMBED))
