//! The TwiML a webhook app answers an inbound message with: `<Response>`
//! holding `<Message>` verbs, each a reply (`<Message>text</Message>` or
//! `<Message><Body>text</Body></Message>`, optionally `to` and `from`).
//! Anything else Twilio's messaging TwiML allows but Switchboard does not
//! do (`<Redirect>`, `<Media>`) is refused by name, so the app's author
//! learns it from the invocation's error.

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

/// Bytes of TwiML read at most.
pub const MAX_TWIML_BYTES: usize = 64 * 1024;

/// One `<Message>` of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub body: String,
    /// Default: the sender of the inbound message.
    pub to: Option<String>,
    /// Default: the number the inbound message was sent to.
    pub from: Option<String>,
}

fn attribute(e: &BytesStart, name: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|e| format!("TwiML: {e}"))?;
        if a.key.as_ref() == name {
            return Ok(Some(
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| format!("TwiML: {e}"))?.into_owned(),
            ));
        }
    }
    Ok(None)
}

fn reference(r: &BytesRef) -> Result<String, String> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| format!("TwiML: {e}"))? {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| format!("TwiML: {e}"))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| format!("TwiML: unknown entity &{name};"))
}

/// The replies of a TwiML document (an empty body or `<Response/>`: none).
pub fn replies(xml: &str) -> Result<Vec<Reply>, String> {
    if xml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = Reader::from_str(xml);
    let mut replies = Vec::new();
    // Where we are: the element names from the root down.
    let mut path: Vec<String> = Vec::new();
    let mut current: Option<Reply> = None;
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| format!("TwiML is not well-formed XML: {e}"))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let empty = matches!(event, Event::Empty(_));
                match (path.len(), name.as_str()) {
                    (0, "Response") => saw_root = true,
                    (0, other) => return Err(format!("TwiML's root is <Response>, not <{other}>")),
                    (1, "Message") => {
                        current =
                            Some(Reply { body: String::new(), to: attribute(e, b"to")?, from: attribute(e, b"from")? });
                        if empty {
                            replies.extend(current.take());
                        }
                    }
                    (1, other) => return Err(format!("TwiML verb <{other}> is not supported (only <Message>)")),
                    (2, "Body") => {}
                    (2, other) => return Err(format!("<{other}> in <Message> is not supported (only text or <Body>)")),
                    (_, other) => return Err(format!("unexpected <{other}> in TwiML")),
                }
                if !empty {
                    path.push(name);
                }
            }
            Event::End(_) => {
                if path.pop().as_deref() == Some("Message") {
                    replies.extend(current.take());
                }
            }
            Event::Text(t) if current.is_some() => {
                let text = t.decode().map_err(|e| format!("TwiML: {e}"))?;
                current.as_mut().expect("checked").body.push_str(&text);
            }
            Event::CData(t) if current.is_some() => {
                let text = t.decode().map_err(|e| format!("TwiML: {e}"))?;
                current.as_mut().expect("checked").body.push_str(&text);
            }
            Event::GeneralRef(r) if current.is_some() => {
                current.as_mut().expect("checked").body.push_str(&reference(&r)?);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err("TwiML needs a <Response> root".into());
    }
    for r in &mut replies {
        r.body = r.body.trim().to_string();
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str) -> Reply {
        Reply { body: body.into(), to: None, from: None }
    }

    #[test]
    fn messages_become_replies() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hi &amp; welcome &#x1F44B;</Message><Message to="+15551230000" from="+15550000000"><Body>Second</Body></Message></Response>"#;
        assert_eq!(
            replies(xml).unwrap(),
            vec![
                reply("Hi & welcome \u{1F44B}"),
                Reply { body: "Second".into(), to: Some("+15551230000".into()), from: Some("+15550000000".into()) }
            ]
        );
        assert_eq!(replies("<Response/>").unwrap(), vec![]);
        assert_eq!(replies("").unwrap(), vec![]);
        assert_eq!(
            replies("<Response>\n  <Message><![CDATA[a < b]]></Message>\n</Response>").unwrap(),
            vec![reply("a < b")]
        );
    }

    #[test]
    fn what_is_not_supported_is_named() {
        assert!(replies("<Response><Redirect>/next</Redirect></Response>").unwrap_err().contains("<Redirect>"));
        assert!(replies("<Response><Message><Media>x</Media></Message></Response>").unwrap_err().contains("<Media>"));
        assert!(replies("<Html/>").unwrap_err().contains("root"));
        assert!(replies("<Response><Message>unclosed</Response>").is_err());
        assert!(replies("just text").is_err());
    }
}
