"""Notification channels, one module each (see base.py for the contract)."""

from types import ModuleType

from alerts.channels import email, sms, webhook
from alerts.channels.base import DeliveryError, Message

CHANNELS: dict[str, ModuleType] = {"email": email, "webhook": webhook, "sms": sms}

__all__ = ["CHANNELS", "DeliveryError", "Message"]
