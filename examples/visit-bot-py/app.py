"""A keyword bot with memory: VISIT counts a customer's visits (kv), answers
with the count and schedules a follow-up text (a durable timer); VISITS
answers with the count so far. The configuration holds the follow-up's
delay and text."""

import json
import string

import wit_world
from wit_world.imports import config, kv, log, messaging, timers, types


def keyword(body: str) -> str:
    """The first word, upper-cased, without trailing ASCII punctuation: what
    the engine's router matched."""
    words = body.split()
    return words[0].rstrip(string.punctuation).upper() if words else ""


def reply(message: types.InboundMessage, body: str) -> None:
    messaging.send(messaging.OutboundMessage(to=message.from_, from_=message.to, body=body, reference=None, schedule_at=None))


class WitWorld(wit_world.WitWorld):
    def on_inbound(self, message: types.InboundMessage) -> None:
        settings = json.loads(config.get())
        key = "visits:" + message.from_
        word = keyword(message.body)
        if word == "VISIT":
            visits = kv.increment(key, 1)
            reply(message, f"Welcome! This is visit #{visits}.")
            delay_ms = int(settings.get("followup_after_s", 3600)) * 1000
            # One pending follow-up per customer: a new visit moves it.
            payload = json.dumps({"to": message.from_, "from": message.to})
            timers.schedule_after("followup:" + message.from_, delay_ms, payload)
            log.write(log.Level.INFO, f"visit {visits} recorded")
        elif word == "VISITS":
            stored = kv.get(key)
            visits = stored.decode() if stored is not None else "0"
            reply(message, f"You have visited {visits} time(s).")
        else:
            reply(message, "Text VISIT to check in, or VISITS for your count.")

    def on_event(self, name: str, payload: str) -> None:
        pass

    def on_timer(self, payload: str) -> None:
        target = json.loads(payload)
        settings = json.loads(config.get())
        body = settings.get("followup", "Thanks for visiting!")
        messaging.send(messaging.OutboundMessage(to=target["to"], from_=target["from"], body=body, reference=None, schedule_at=None))

    def on_delivery(self, report: types.DeliveryReport) -> None:
        pass
