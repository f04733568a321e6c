"""Hand-signed Stripe webhooks (Stripe's scheme: HMAC-SHA256 over "<t>.<payload>") and a local Stripe."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing

WEBHOOK_SECRET = "whsec_test_secret"
WEBHOOK_PATH = "/api/v1/billing/stripe/webhook"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(kind: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> bytes:
    return json.dumps({
        "id": event_id or f"evt_{uuid.uuid4().hex[:14]}", "object": "event", "type": kind,
        "created": created or int(time.time()), "api_version": "2026-10-28", "livemode": False,
        "data": {"object": obj},
    }).encode()


def intent(intent_id: str, amount_fen: int, *, payment_id: int | None = None, status: str = "succeeded",
           currency: str = "cny") -> dict:
    return {"id": intent_id, "object": "payment_intent", "amount": amount_fen, "amount_received": amount_fen
            if status == "succeeded" else 0, "currency": currency, "status": status,
            "metadata": {"payment_id": str(payment_id)} if payment_id else {},
            "last_payment_error": {"message": "Your card was declined."} if status == "requires_payment_method"
            else None}


def post_webhook(client, payload: bytes, signature: str | None = None):
    return client.post(WEBHOOK_PATH, data=payload, content_type="application/json",
                       headers={"Stripe-Signature": signature if signature is not None else sign(payload)})


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    """``localstripe`` as a subprocess on a free loopback port, for the test's lifetime."""

    def __init__(self, log_path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        command = [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"localstripe did not start: {open(log_path).read()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
