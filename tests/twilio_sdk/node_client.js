// Drives Switchboard's Twilio-compatible API with Twilio's own Node.js SDK
// (the `twilio` package from the npm registry, pinned in the Makefile).
// Run by tests/twilio.rs with NODE_PATH at target/tools/node_modules; prints
// one JSON document with what it saw. Only the two lines marked "the two
// lines" differ from code written for Twilio.
const twilio = require("twilio");

async function main() {
  const env = process.env;
  const client = twilio(env.ACCOUNT_SID, env.AUTH_TOKEN); // the two lines:
  client.api.baseUrl = env.BASE_URL; //                      the credentials, and this one
  const out = {};

  const sent = await client.messages.create({ to: env.TO, from: env.FROM, body: "Hello from Node" });
  out.created = { sid: sent.sid, status: sent.status, numSegments: sent.numSegments, direction: sent.direction };
  const fetched = await client.messages(sent.sid).fetch();
  out.fetched = { sid: fetched.sid, body: fetched.body, to: fetched.to, from: fetched.from };

  for (let i = 0; i < 3; i++) {
    await client.messages.create({ to: env.TO, from: env.FROM, body: `node page ${i}` });
  }
  const listed = await client.messages.list({ to: env.TO, pageSize: 2, limit: 4 });
  out.listed = listed.map((m) => m.body);

  const scheduled = await client.messages.create({
    to: env.TO,
    messagingServiceSid: env.SERVICE_SID,
    body: "Node reminder",
    scheduleType: "fixed",
    sendAt: new Date(Date.now() + 2 * 3600 * 1000),
  });
  out.scheduled = scheduled.status;
  out.canceled = (await client.messages(scheduled.sid).update({ status: "canceled" })).status;

  try {
    await client.messages.create({ to: env.TO, from: "+15559999999", body: "x" });
  } catch (e) {
    out.badFrom = { status: e.status, code: e.code };
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
