"""Delivery: the outbox every message to a person goes through, and the channels behind it.

`delivery.outbox` claims a pending row with a lease, sends it through a channel, records
each attempt, backs off after a failure that may pass and sweeps up rows whose task was
lost. It knows rows only through the small `Outbox` interface its callers implement (alert
notifications in alerts/notify.py, patient nudges in monitoring/nudges/delivery.py), and
imports nothing from either app: it sits below them. `delivery.channels` holds one module
per channel (email, SMS, push, webhook) behind `send()` and `DeliveryError(permanent=…)`.
"""
