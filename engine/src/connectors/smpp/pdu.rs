//! Building and reading the PDUs the session exchanges.

use super::SmppSettings;
use super::receipt;
use crate::connectors::InboundSms;
use crate::connectors::{ConnectorError, InboundPart, OutboundSms, ProviderReport};
use crate::sms::encoding::{self, Encoding};
use rusmpp::pdus::{BindTransceiver, DeliverSm, SubmitSm};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton};
use rusmpp::{CommandStatus, Pdu};
use std::str::FromStr;

const ESM_UDHI: u8 = 0x40;
const ESM_RECEIPT: u8 = 0x04;
const DATA_CODING_GSM: u8 = 0x00;
const DATA_CODING_ASCII: u8 = 0x01;
const DATA_CODING_LATIN1: u8 = 0x03;
const DATA_CODING_UCS2: u8 = 0x08;
/// Ask for a delivery receipt on success and on failure.
const RECEIPT_ALWAYS: u8 = 0x01;

pub fn bind(s: &SmppSettings) -> Result<Pdu, String> {
    // The password's error never quotes it.
    Ok(BindTransceiver::builder()
        .system_id(COctetString::from_str(&s.system_id).map_err(|e| format!("system_id: {e}"))?)
        .password(
            COctetString::from_str(s.password.expose()).map_err(|_| "password: at most 8 characters".to_string())?,
        )
        .system_type(COctetString::from_str(&s.system_type).map_err(|e| format!("system_type: {e}"))?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build()
        .into())
}

/// TON/NPI and digits of an address: international numbers without `+`,
/// alphanumeric sender IDs as they are.
fn address(a: &str) -> Result<(Ton, Npi, COctetString<1, 21>), String> {
    let (ton, npi, text) = match a.strip_prefix('+') {
        Some(digits) => (Ton::International, Npi::Isdn, digits),
        None if a.bytes().all(|b| b.is_ascii_digit()) => (Ton::Unknown, Npi::Isdn, a),
        None => (Ton::Alphanumeric, Npi::Unknown, a),
    };
    Ok((ton, npi, COctetString::from_str(text).map_err(|e| format!("address {a:?}: {e}"))?))
}

/// The user data header of a concatenated part (8-bit reference).
pub fn udh(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, seq]
}

/// One `submit_sm` per part of the message.
pub fn submit_parts(sms: &OutboundSms, reference: u8) -> Result<Vec<SubmitSm>, String> {
    let (src_ton, src_npi, source) = address(&sms.from)?;
    let (dst_ton, dst_npi, destination) = address(&sms.to)?;
    let parts = encoding::split(&sms.body, sms.encoding);
    if parts.len() > 255 {
        return Err("the message has more than 255 parts".into());
    }
    let total = parts.len() as u8;
    let data_coding = match sms.encoding {
        Encoding::Gsm7 => DATA_CODING_GSM,
        Encoding::Ucs2 => DATA_CODING_UCS2,
    };
    parts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let payload = match sms.encoding {
                Encoding::Gsm7 => encoding::encode_gsm7(text).map_err(|e| e.to_string())?,
                Encoding::Ucs2 => encoding::encode_ucs2(text),
            };
            let (esm, short_message) = if total > 1 {
                let mut bytes = udh(reference, total, i as u8 + 1).to_vec();
                bytes.extend(payload);
                (ESM_UDHI, bytes)
            } else {
                (0, payload)
            };
            Ok(SubmitSm::builder()
                .source_addr_ton(src_ton)
                .source_addr_npi(src_npi)
                .source_addr(source.clone())
                .dest_addr_ton(dst_ton)
                .dest_addr_npi(dst_npi)
                .destination_addr(destination.clone())
                .esm_class(EsmClass::from(esm))
                .registered_delivery(RegisteredDelivery::from(RECEIPT_ALWAYS))
                .data_coding(DataCoding::from(data_coding))
                .short_message(OctetString::from_vec(short_message).map_err(|e| format!("short_message: {e}"))?)
                .build())
        })
        .collect()
}

/// What an error status means for the message.
pub fn classify(status: CommandStatus) -> ConnectorError {
    let raw: u32 = status.into();
    let message = format!("SMSC answered {status:?} (0x{raw:08X})");
    match raw {
        // Throttled, message queue full.
        0x58 | 0x14 => ConnectorError::Throttled { message, retry_after: None },
        // System error, submit failed, temporary application error.
        0x08 | 0x45 | 0x64 => ConnectorError::Transient { message, retry_after: None },
        0x0B => ConnectorError::Permanent { code: "INVALID_NUMBER".into(), message },
        0x0A => ConnectorError::Permanent { code: "INVALID_SENDER".into(), message },
        0x01 | 0x02 => ConnectorError::Permanent { code: "INVALID_MESSAGE".into(), message },
        0x0D..=0x0F => ConnectorError::Permanent { code: "AUTH_FAILED".into(), message },
        _ => ConnectorError::Permanent { code: format!("SMPP_0x{raw:02X}"), message },
    }
}

/// What a `deliver_sm` carried.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    Receipt(ProviderReport),
    Message(InboundSms),
    Part((String, InboundPart)),
    Unreadable(String),
}

impl Delivered {
    /// What was delivered, its carrier text made storable.
    pub fn storable(self) -> Self {
        use crate::connectors::{storable_part, storable_report};
        match self {
            Delivered::Receipt(r) => Delivered::Receipt(storable_report(r)),
            Delivered::Message(m) => Delivered::Message(m.storable()),
            Delivered::Part((connector, p)) => Delivered::Part((connector, storable_part(p))),
            Delivered::Unreadable(reason) => Delivered::Unreadable(reason),
        }
    }
}

fn plus(addr: &str) -> String {
    if addr.bytes().all(|b| b.is_ascii_digit()) && !addr.is_empty() { format!("+{addr}") } else { addr.to_string() }
}

fn decode_text(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        DATA_CODING_UCS2 => encoding::decode_ucs2(bytes),
        DATA_CODING_LATIN1 => bytes.iter().map(|&b| b as char).collect(),
        DATA_CODING_ASCII => String::from_utf8_lossy(bytes).into_owned(),
        _ => encoding::decode_gsm7(bytes),
    }
}

pub fn parse_deliver(connector: &str, d: &DeliverSm, now: i64) -> Delivered {
    let esm = u8::from(d.esm_class);
    let data_coding = u8::from(d.data_coding);
    let bytes: &[u8] = d.short_message().as_ref();
    if esm & ESM_RECEIPT != 0 {
        let text = String::from_utf8_lossy(bytes);
        let mut parsed = receipt::parse(&text);
        for tlv in d.tlvs() {
            match tlv.value() {
                Some(rusmpp::tlvs::TlvValue::ReceiptedMessageId(id)) => parsed.id = Some(id.to_string()),
                Some(rusmpp::tlvs::TlvValue::MessageState(state)) => parsed.state_tlv = Some(u8::from(*state)),
                _ => {}
            }
        }
        return match (parsed.id.clone(), parsed.status()) {
            (Some(id), Some(status)) => Delivered::Receipt(ProviderReport {
                connector: connector.to_string(),
                provider_id: id,
                status,
                error_code: parsed.error_code(),
                at: now,
            }),
            (Some(_), None) => Delivered::Unreadable(format!("intermediate or unknown receipt state: {text}")),
            (None, _) => Delivered::Unreadable(format!("receipt without an id: {text}")),
        };
    }
    let from = plus(d.source_addr.as_str());
    let to = plus(d.destination_addr.as_str());
    if esm & ESM_UDHI != 0 {
        // Concatenation: IE 0x00 (8-bit reference) or 0x08 (16-bit).
        let Some(&header_len) = bytes.first() else { return Delivered::Unreadable("empty UDH".into()) };
        let header_end = 1 + header_len as usize;
        if bytes.len() < header_end {
            return Delivered::Unreadable("truncated UDH".into());
        }
        let header = &bytes[1..header_end];
        let mut i = 0;
        let mut concat = None;
        while i + 1 < header.len() {
            let (iei, len) = (header[i], header[i + 1] as usize);
            let value = header.get(i + 2..i + 2 + len).unwrap_or(&[]);
            match (iei, value) {
                (0x00, [r, total, seq]) => concat = Some((*r as u16, *total, *seq)),
                (0x08, [r1, r2, total, seq]) => concat = Some((u16::from_be_bytes([*r1, *r2]), *total, *seq)),
                _ => {}
            }
            i += 2 + len;
        }
        let text = decode_text(data_coding, &bytes[header_end..]);
        return match concat {
            Some((reference, total, part)) if total > 1 => Delivered::Part((
                connector.to_string(),
                InboundPart { from, to, reference: reference.to_string(), total, part, text, provider_id: None },
            )),
            _ => Delivered::Message(InboundSms {
                from,
                to,
                body: text,
                connector: connector.to_string(),
                provider_id: None,
            }),
        };
    }
    let text = decode_text(data_coding, bytes);
    Delivered::Message(InboundSms { from, to, body: text, connector: connector.to_string(), provider_id: None })
}
