"""Drives Switchboard's Twilio-compatible API with Twilio's own Python SDK
(the `twilio` package from PyPI, pinned in tests/tools/twilio-python.txt).

Run by tests/twilio.rs. Everything it needs comes from the environment; it
prints one JSON document with what it saw. Only the two lines marked
"the two lines" differ from code written for Twilio.
"""

import datetime
import json
import os
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client


def main():
    env = os.environ
    if sys.argv[1:] == ["validate"]:
        # Checks status callbacks the test captured, as a Twilio webhook app does.
        validator = RequestValidator(env["AUTH_TOKEN"])
        callbacks = json.load(sys.stdin)
        print(json.dumps([validator.validate(c["url"], c["params"], c["signature"]) for c in callbacks]))
        return

    client = Client(env["ACCOUNT_SID"], env["AUTH_TOKEN"])  # the two lines:
    client.api.base_url = env["BASE_URL"]  # the credentials, and this one
    out = {}

    sent = client.messages.create(
        to=env["TO"], from_=env["FROM"], body="Your code is 123456", status_callback=env["CALLBACK_URL"]
    )
    out["created"] = {"sid": sent.sid, "status": sent.status, "num_segments": sent.num_segments,
                      "direction": sent.direction, "price_unit": sent.price_unit, "body": sent.body}

    fetched = client.messages(sent.sid).fetch()
    out["fetched"] = {"sid": fetched.sid, "to": fetched.to, "from": fetched.from_, "body": fetched.body,
                      "date_created": fetched.date_created.isoformat()}

    for i in range(3):
        client.messages.create(to=env["TO"], from_=env["FROM"], body=f"page test {i}")
    listed = client.messages.list(to=env["TO"], page_size=2, limit=4)
    out["listed"] = [m.body for m in listed]
    today = datetime.datetime.now(datetime.timezone.utc)
    out["listed_sent_today"] = len(client.messages.list(date_sent=today, page_size=50))
    out["listed_sent_before_2000"] = len(client.messages.list(date_sent_before=datetime.datetime(2000, 1, 1)))

    send_at = today + datetime.timedelta(hours=2)
    scheduled = client.messages.create(
        to=env["TO"], messaging_service_sid=env["SERVICE_SID"], body="Reminder: tomorrow at 9",
        schedule_type="fixed", send_at=send_at,
    )
    out["scheduled"] = {"status": scheduled.status, "from": scheduled.from_}
    canceled = client.messages(scheduled.sid).update(status="canceled")
    out["canceled"] = canceled.status

    try:
        client.messages.create(to="not a number", from_=env["FROM"], body="x")
    except TwilioRestException as e:
        out["bad_to"] = {"status": e.status, "code": e.code}
    try:
        client.messages("SM" + "0" * 32).fetch()
    except TwilioRestException as e:
        out["missing"] = {"status": e.status, "code": e.code}
    bad = Client(env["ACCOUNT_SID"], "0" * 32)
    bad.api.base_url = env["BASE_URL"]
    try:
        bad.messages.create(to=env["TO"], from_=env["FROM"], body="x")
    except TwilioRestException as e:
        out["bad_token"] = {"status": e.status, "code": e.code}
    print(json.dumps(out))


main()
