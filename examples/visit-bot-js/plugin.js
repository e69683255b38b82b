// A keyword bot with memory: VISIT counts a customer's visits (kv), answers
// with the count and schedules a follow-up text (a durable timer); VISITS
// answers with the count so far. The configuration holds the follow-up's
// delay and text.
import { send } from 'switchboard:plugin/messaging@0.1.0';
import { get, increment } from 'switchboard:plugin/kv@0.1.0';
import { scheduleAfter } from 'switchboard:plugin/timers@0.1.0';
import { get as config } from 'switchboard:plugin/config@0.1.0';
import { write } from 'switchboard:plugin/log@0.1.0';

// The first word, upper-cased, without trailing ASCII punctuation: what
// the engine's router matched.
function keyword(body) {
  const first = body.trim().split(/\s+/)[0] ?? '';
  return first.replace(/[!-\/:-@\[-`{-~]+$/, '').toUpperCase();
}

function reply(message, body) {
  send({ to: message.from, from: message.to, body });
}

export function onInbound(message) {
  const settings = JSON.parse(config());
  const key = `visits:${message.from}`;
  switch (keyword(message.body)) {
    case 'VISIT': {
      const visits = increment(key, 1n);
      reply(message, `Welcome! This is visit #${visits}.`);
      const delayMs = BigInt(settings.followup_after_s ?? 3600) * 1000n;
      // One pending follow-up per customer: a new visit moves it.
      scheduleAfter(`followup:${message.from}`, delayMs, JSON.stringify({ to: message.from, from: message.to }));
      write('info', `visit ${visits} recorded`);
      break;
    }
    case 'VISITS': {
      const stored = get(key);
      const visits = stored ? new TextDecoder().decode(stored) : '0';
      reply(message, `You have visited ${visits} time(s).`);
      break;
    }
    default:
      reply(message, 'Text VISIT to check in, or VISITS for your count.');
  }
}

export function onEvent(name, payload) {}

export function onTimer(payload) {
  const { to, from } = JSON.parse(payload);
  const settings = JSON.parse(config());
  send({ to, from, body: settings.followup ?? 'Thanks for visiting!' });
}

export function onDelivery(report) {}
