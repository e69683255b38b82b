use super::pdu::{self, Delivered};
use crate::connectors::InboundSms;
use crate::connectors::testing::sms;
use crate::connectors::{InboundPart, ProviderReport};
use crate::store::MessageStatus;
use rusmpp::pdus::DeliverSm;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass};
use std::str::FromStr;

#[test]
fn a_short_gsm_message_is_one_plain_submit_sm() {
    let parts = pdu::submit_parts(&sms("+447911123456", "Hello {you}"), 7).unwrap();
    assert_eq!(parts.len(), 1);
    let p = &parts[0];
    assert_eq!(u8::from(p.esm_class), 0);
    assert_eq!(u8::from(p.data_coding), 0);
    assert_eq!(p.destination_addr.as_str(), "447911123456");
    assert_eq!(p.source_addr.as_str(), "15550000000");
    // GSM 03.38 codes, one octet each; `{` is ESC + 0x28.
    let bytes: &[u8] = p.short_message().as_ref();
    assert_eq!(bytes, b"Hello \x1b\x28you\x1b\x29");
}

#[test]
fn a_long_message_is_concatenated_with_a_udh() {
    let text = format!("{}{}", "a".repeat(153), "b".repeat(10));
    let parts = pdu::submit_parts(&sms("+447911123456", &text), 42).unwrap();
    assert_eq!(parts.len(), 2);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(u8::from(p.esm_class) & 0x40, 0x40, "UDHI set");
        let bytes: &[u8] = p.short_message().as_ref();
        assert_eq!(&bytes[..6], &[0x05, 0x00, 0x03, 42, 2, i as u8 + 1]);
    }
    let first: &[u8] = parts[0].short_message().as_ref();
    assert_eq!(first.len(), 6 + 153);
}

#[test]
fn unicode_goes_as_ucs2() {
    let parts = pdu::submit_parts(&sms("+447911123456", "Привет 😀"), 1).unwrap();
    assert_eq!(u8::from(parts[0].data_coding), 8);
    let bytes: &[u8] = parts[0].short_message().as_ref();
    assert_eq!(&bytes[..2], &[0x04, 0x1F]);
    assert_eq!(bytes.len(), 2 * "Привет 😀".encode_utf16().count());
}

#[test]
fn alphanumeric_senders_keep_their_letters() {
    let mut m = sms("+447911123456", "hi");
    m.from = "ACME".into();
    let parts = pdu::submit_parts(&m, 1).unwrap();
    assert_eq!(parts[0].source_addr.as_str(), "ACME");
    assert_eq!(u8::from(parts[0].source_addr_ton), 5);
}

fn deliver(esm: u8, data_coding: u8, from: &str, short_message: Vec<u8>) -> DeliverSm {
    DeliverSm::builder()
        .source_addr(COctetString::from_str(from).unwrap())
        .destination_addr(COctetString::from_str("15550000000").unwrap())
        .esm_class(EsmClass::from(esm))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_vec(short_message).unwrap())
        .build()
}

#[test]
fn receipts_become_reports() {
    let text =
        b"id:smsc-77 sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:UNDELIV err:034 text:".to_vec();
    let got = pdu::parse_deliver("smsc", &deliver(0x04, 0, "447911123456", text), 5);
    assert_eq!(
        got,
        Delivered::Receipt(ProviderReport {
            connector: "smsc".into(),
            provider_id: "smsc-77".into(),
            status: MessageStatus::Undelivered,
            error_code: Some("034".into()),
            at: 5,
        })
    );
}

#[test]
fn mo_messages_and_parts_are_decoded() {
    let got = pdu::parse_deliver("smsc", &deliver(0, 0, "447700900001", b"HOURS".to_vec()), 5);
    assert_eq!(
        got,
        Delivered::Message(InboundSms {
            from: "+447700900001".into(),
            to: "+15550000000".into(),
            body: "HOURS".into(),
            connector: "smsc".into(),
            provider_id: None,
        })
    );
    let mut part = pdu::udh(9, 2, 1).to_vec();
    part.extend(crate::sms::encoding::encode_ucs2("Привет"));
    let got = pdu::parse_deliver("smsc", &deliver(0x40, 8, "447700900001", part), 5);
    assert_eq!(
        got,
        Delivered::Part((
            "smsc".into(),
            InboundPart {
                from: "+447700900001".into(),
                to: "+15550000000".into(),
                reference: "9".into(),
                total: 2,
                part: 1,
                text: "Привет".into(),
                provider_id: None,
            }
        ))
    );
}

#[test]
fn error_statuses_are_classified() {
    use crate::connectors::ConnectorError;
    use rusmpp::CommandStatus;
    assert!(matches!(pdu::classify(CommandStatus::EsmeRthrottled), ConnectorError::Throttled { .. }));
    assert!(matches!(pdu::classify(CommandStatus::EsmeRsyserr), ConnectorError::Transient { .. }));
    assert!(
        matches!(pdu::classify(CommandStatus::EsmeRinvdstadr), ConnectorError::Permanent { ref code, .. } if code == "INVALID_NUMBER")
    );
}
