//! Property tests of every parser that takes outside input: carrier
//! webhooks (Twilio, Vonage, the generic JSON shape), the GSM-7/UCS-2
//! codec and segmentation, SMPP PDUs, phone numbers, templates, plugin
//! manifests and their cron expressions. Nothing panics on any input, and
//! what should round-trip does.
//!
//! Each property runs `PROPTEST_CASES` cases (256 unless set), so CI time
//! stays bounded.

use crate::connectors::testing::{NOW, context};
use crate::connectors::{Connector, WebhookKind, WebhookRequest};
use crate::secrets::Secret;
use crate::sms::encoding::{self, Encoding, EncodingChoice};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use std::collections::HashMap;

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// Text from every corner: GSM-7 basics and extensions, Latin-1, Cyrillic,
/// emoji (astral), combining marks, controls.
fn sms_text() -> impl Strategy<Value = String> {
    let pools = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => prop::sample::select(vec!['@', '£', '$', '¥', 'è', 'é', '\n', ' ', '\r', 'Ä', 'ß', 'Ü', '§', '¿']),
        2 => prop::sample::select(vec!['^', '{', '}', '\\', '[', '~', ']', '|', '€']),
        1 => proptest::char::range('а', 'я'),
        1 => prop::sample::select(vec!['😀', '👍', '🇬', '🇧', '\u{301}', '\u{200d}', '\u{0}', '\u{7f}']),
        1 => any::<char>(),
    ];
    prop::collection::vec(pools, 0..400).prop_map(|cs| cs.into_iter().collect())
}

fn request<'a>(url: &'a str, headers: &'a HeaderMap, query: &'a str, body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest { url, method: "POST", headers, query, body }
}

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            map.insert(k, v);
        }
    }
    map
}

fn form_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop::sample::select(vec![
        "From",
        "To",
        "Body",
        "MessageSid",
        "MessageStatus",
        "ErrorCode",
        "msisdn",
        "to",
        "text",
        "messageId",
        "concat",
        "concat-ref",
        "concat-total",
        "concat-part",
        "status",
        "sig",
        "timestamp",
        "err-code",
        "x",
    ]);
    prop::collection::vec((key.prop_map(str::to_string), ".{0,40}"), 0..12)
}

fn connectors() -> Vec<std::sync::Arc<dyn Connector>> {
    let twilio = crate::connectors::twilio::TwilioSettings {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: Secret::new("tw-token".to_string()),
        messaging_service_sid: None,
        base_url: "http://127.0.0.1:9".into(),
        gate: Default::default(),
    };
    let vonage: crate::connectors::vonage::VonageSettings =
        toml::from_str("api_key = \"k\"\nsignature_secret = \"s\"\nsignature_method = \"sha256\"").unwrap();
    let vonage_open: crate::connectors::vonage::VonageSettings =
        toml::from_str("api_key = \"k\"\napi_secret = \"s\"\nunsigned_webhooks = true").unwrap();
    let http: crate::connectors::http::HttpSettings = toml::from_str("webhook_secret = \"h\"").unwrap();
    let generic: crate::connectors::http::HttpSettings = toml::from_str("").unwrap();
    let ctx = context(Some("https://sms.example.com"));
    vec![
        std::sync::Arc::new(crate::connectors::twilio::Twilio::new("tw".into(), twilio, ctx.clone()).unwrap()),
        std::sync::Arc::new(crate::connectors::vonage::Vonage::new("vo".into(), vonage, ctx.clone()).unwrap()),
        std::sync::Arc::new(crate::connectors::vonage::Vonage::new("vo2".into(), vonage_open, ctx.clone()).unwrap()),
        std::sync::Arc::new(crate::connectors::http::HttpGateway::new("gw".into(), http, ctx.clone()).unwrap()),
        std::sync::Arc::new(
            crate::connectors::http::HttpGateway::new("generic".into(), generic, ctx).unwrap().unsigned_generic(),
        ),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn carrier_webhooks_never_panic(
        form in form_pairs(),
        raw in prop::collection::vec(any::<u8>(), 0..300),
        json in "[{}\\[\\]\":,a-z0-9 +]{0,120}",
        extra_headers in prop::collection::vec((prop::sample::select(vec![
            "content-type".to_string(), "x-twilio-signature".to_string(), "x-sms-signature".to_string(), "x".to_string()
        ]), ".{0,60}"), 0..4),
        inbound in any::<bool>(),
    ) {
        let kind = if inbound { WebhookKind::Inbound } else { WebhookKind::Status };
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
        let headers = headers(&extra_headers);
        for connector in connectors() {
            for body in [encoded.as_bytes(), raw.as_slice(), json.as_bytes()] {
                let _ = connector.webhook(kind, &request("https://sms.example.com/v1/inbound/x", &headers, &encoded, body));
            }
        }
    }

    #[test]
    fn the_gsm7_and_ucs2_codecs_round_trip_through_segmentation(text in sms_text()) {
        let analysis = encoding::analyze(&text, EncodingChoice::Auto).expect("auto always encodes");
        let parts = encoding::split(&text, analysis.encoding);
        prop_assert_eq!(parts.concat(), text.clone(), "parts put back together");
        prop_assert_eq!(parts.len().max(1), analysis.segments.max(1));
        match analysis.encoding {
            Encoding::Gsm7 => {
                let limit = if parts.len() > 1 { 153 } else { 160 };
                for p in &parts {
                    let codes = encoding::encode_gsm7(p).expect("gsm7 text encodes");
                    prop_assert!(codes.len() <= limit, "{} septets in one part", codes.len());
                    prop_assert_eq!(&encoding::decode_gsm7(&codes), p);
                }
            }
            Encoding::Ucs2 => {
                let limit = if parts.len() > 1 { 67 } else { 70 };
                for p in &parts {
                    let units = encoding::encode_ucs2(p);
                    prop_assert!(units.len() / 2 <= limit, "{} UTF-16 units in one part", units.len() / 2);
                    prop_assert_eq!(&encoding::decode_ucs2(&units), p);
                }
            }
        }
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = encoding::decode_gsm7(&bytes);
        let _ = encoding::decode_ucs2(&bytes);
    }

    #[test]
    fn smpp_parts_reassemble_to_the_message(text in sms_text(), reference in any::<u8>()) {
        use crate::connectors::smpp::pdu::{self, Delivered};
        let mut sms = crate::connectors::testing::sms("+447911123456", &text);
        sms.encoding = encoding::analyze(&text, EncodingChoice::Auto).unwrap().encoding;
        let Ok(parts) = pdu::submit_parts(&sms, reference) else { return Ok(()) };
        let mut texts = vec![String::new(); parts.len()];
        for p in &parts {
            let deliver = rusmpp::pdus::DeliverSm::builder()
                .source_addr(p.source_addr.clone())
                .destination_addr(p.destination_addr.clone())
                .esm_class(p.esm_class)
                .data_coding(p.data_coding)
                .short_message(p.short_message().clone())
                .build();
            match pdu::parse_deliver("smsc", &deliver, NOW) {
                Delivered::Part((_, part)) => {
                    prop_assert_eq!(part.reference, reference.to_string());
                    prop_assert_eq!(part.total as usize, parts.len());
                    texts[part.part as usize - 1] = part.text;
                }
                Delivered::Message(m) => texts[0] = m.body,
                other => prop_assert!(false, "{other:?}"),
            }
        }
        prop_assert_eq!(texts.concat(), text);
    }

    #[test]
    fn smpp_deliveries_and_frames_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..254),
        esm in any::<u8>(),
        data_coding in any::<u8>(),
        frame in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        use tokio_util::codec::Decoder;
        let deliver = rusmpp::pdus::DeliverSm::builder()
            .esm_class(rusmpp::values::EsmClass::from(esm))
            .data_coding(rusmpp::values::DataCoding::from(data_coding))
            .short_message(rusmpp::types::OctetString::from_vec(bytes.clone()).unwrap())
            .build();
        let _ = crate::connectors::smpp::pdu::parse_deliver("smsc", &deliver, NOW);
        let _ = crate::connectors::smpp::receipt::parse(&String::from_utf8_lossy(&bytes));
        let mut codec = rusmpp::tokio_codec::CommandCodec::new();
        let mut buf = bytes::BytesMut::from(frame.as_slice());
        for _ in 0..8 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }

    #[test]
    fn phone_numbers_normalize_once_and_stay(raw in "[+0-9 ()\\-.a-zA-Z]{0,40}", region in prop::option::of("[A-Za-z]{0,3}")) {
        if let Ok(number) = crate::phone::normalize(&raw, region.as_deref()) {
            prop_assert!(number.starts_with('+'), "{number}");
            prop_assert_eq!(crate::phone::normalize(&number, None), Ok(number.clone()));
        }
    }

    #[test]
    fn any_text_as_a_phone_number_never_panics(raw in ".{0,200}") {
        let _ = crate::phone::normalize(&raw, None);
        let _ = crate::phone::normalize(&raw, Some("GB"));
    }

    #[test]
    fn templates_render_with_their_placeholders(body in "([a-z ]{0,8}(\\{\\{[a-z_]{1,6}\\}\\})?){0,6}", value in "[a-zA-Z0-9 ]{0,10}") {
        use crate::sms::template;
        if let Ok(names) = template::placeholders(&body) {
            let vars: HashMap<String, String> = names.iter().map(|n| (n.clone(), value.clone())).collect();
            let rendered = template::render(&body, &vars).expect("every placeholder has a value");
            prop_assert!(!rendered.contains("{{"), "{rendered}");
        }
    }

    #[test]
    fn any_template_text_never_panics(body in ".{0,200}") {
        let _ = crate::sms::template::placeholders(&body);
        let _ = crate::sms::template::render(&body, &HashMap::new());
    }

    #[test]
    fn manifests_and_cron_expressions_never_panic(
        text in ".{0,300}",
        cron in "[0-9*/,\\- A-Za-z?#LW]{0,40}",
        zone in "[A-Za-z/_]{0,20}",
    ) {
        let _ = crate::manifest::Manifest::from_toml(&text);
        let manifest = format!(
            "name = \"p\"\nversion = \"1\"\n[triggers]\ncron = [{:?}]\ntimezone = {:?}\n",
            cron, zone
        );
        if let Ok(m) = crate::manifest::Manifest::from_toml(&manifest) {
            prop_assert_eq!(m.triggers.schedules().len(), 1, "a manifest that validates has a usable schedule");
        }
    }
}
