"""Delivery channels, one module each (see base.py for the contract)."""

from types import ModuleType

from delivery.channels import email, push, sms, webhook
from delivery.channels.base import DeliveryError, Message

CHANNELS: dict[str, ModuleType] = {"email": email, "webhook": webhook, "sms": sms, "push": push}

__all__ = ["CHANNELS", "DeliveryError", "Message"]
