-- A number's inbound webhook app (Twilio's `SmsUrl`): every inbound message
-- to the number is POSTed there as Twilio's form, signed with the tenant's
-- Twilio-style credential; the TwiML `<Message>`s it answers are sent.
ALTER TABLE numbers ADD COLUMN sms_url TEXT;
