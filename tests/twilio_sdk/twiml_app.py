"""A business's existing Twilio webhook app, unchanged: it checks
X-Twilio-Signature with the SDK's RequestValidator and answers TwiML built
with the SDK's MessagingResponse. Run by tests/twilio.rs; prints the port
it listens on, then serves until killed."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

validator = RequestValidator(os.environ["AUTH_TOKEN"])


class App(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        params = dict(parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True))
        url = f"http://{self.headers['Host']}{self.path}"
        if not validator.validate(url, params, self.headers.get("X-Twilio-Signature", "")):
            self.send_response(403)
            self.end_headers()
            return
        if params.get("Body", "").upper() == "BROKEN":
            self.send_response(500)
            self.end_headers()
            return
        response = MessagingResponse()
        response.message(f"Thanks for your order: {params['Body']} (ref {params['MessageSid'][:6]})")
        if params.get("Body", "").upper() == "TEAM":
            response.message("A new order came in", to=os.environ["TEAM"])
        body = str(response).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), App)
print(server.server_address[1], flush=True)
server.serve_forever()
