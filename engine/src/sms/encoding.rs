//! GSM 03.38 7-bit and UCS-2: which encoding a text needs, how many
//! segments it takes, and where it splits into concatenated parts.
//!
//! Single-part limits: 160 septets (GSM-7) or 70 UTF-16 units (UCS-2).
//! Concatenated parts carry a 6-byte user data header, leaving 153 septets
//! or 67 units each. These are Twilio's published rules (its segment
//! calculator): a part never separates an escape sequence (GSM-7 extension
//! characters take two septets), nor, in UCS-2, a character as the reader
//! sees it — an extended grapheme cluster: a flag, a skin-toned or ZWJ
//! emoji, a keycap, a letter with its combining accents (CR LF counts as
//! two). Only a cluster longer than a whole part is cut, between code
//! points, as no part could carry it.
//!
//! No maintained crate covers segmentation with these rules, so the tables
//! live here; grapheme boundaries come from `unicode-segmentation`.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// The GSM 03.38 default alphabet, indexed by code (0x1B is the escape).
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: characters sent as ESC + code.
const EXTENSION: [(char, u8); 10] = [
    ('\u{0C}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

const ESCAPE: u8 = 0x1B;

pub const GSM7_SINGLE: usize = 160;
pub const GSM7_PART: usize = 153;
pub const UCS2_SINGLE: usize = 70;
pub const UCS2_PART: usize = 67;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

/// What a sender asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingChoice {
    /// GSM-7 when every character fits, UCS-2 otherwise.
    #[default]
    Auto,
    Gsm7,
    #[serde(alias = "ucs2")]
    Unicode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("character {character:?} at position {position} is not in the GSM 03.38 alphabet")]
pub struct NotGsm7 {
    pub character: char,
    pub position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analysis {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// Septets `c` takes in GSM-7, if it is representable.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if basic_code(c).is_some() {
        Some(1)
    } else if extension_code(c).is_some() {
        Some(2)
    } else {
        None
    }
}

/// Characters below this have their place in [`PLACES`]; of the alphabet,
/// only € lies above.
const TABLED: usize = 0x400;
const IN_BASIC: u16 = 0x100;
const IN_EXTENSION: u16 = 0x200;

/// Each character's place in the alphabet, built once from the tables
/// above: `IN_BASIC | code`, `IN_EXTENSION | code`, or 0 when it has none.
static PLACES: std::sync::LazyLock<[u16; TABLED]> = std::sync::LazyLock::new(|| {
    let mut places = [0u16; TABLED];
    for (code, c) in BASIC.iter().enumerate() {
        // 0x1B is the escape, not a character.
        if *c != '\u{1B}' && (*c as usize) < TABLED {
            places[*c as usize] = IN_BASIC | code as u16;
        }
    }
    for (c, code) in EXTENSION {
        if (c as usize) < TABLED {
            places[c as usize] = IN_EXTENSION | code as u16;
        }
    }
    places
});

fn place(c: char, table: u16) -> Option<u8> {
    let place = *PLACES.get(c as usize)?;
    (place & table != 0).then_some(place as u8)
}

fn basic_code(c: char) -> Option<u8> {
    place(c, IN_BASIC)
}

fn extension_code(c: char) -> Option<u8> {
    if (c as usize) < TABLED {
        return place(c, IN_EXTENSION);
    }
    EXTENSION.iter().find(|(e, _)| *e == c).map(|(_, code)| *code)
}

/// The first character that GSM-7 cannot carry, if any.
pub fn first_non_gsm7(text: &str) -> Option<NotGsm7> {
    text.chars()
        .enumerate()
        .find(|(_, c)| gsm7_septets(*c).is_none())
        .map(|(position, character)| NotGsm7 { character, position })
}

/// Picks the encoding and counts segments.
pub fn analyze(text: &str, choice: EncodingChoice) -> Result<Analysis, NotGsm7> {
    let encoding = match choice {
        EncodingChoice::Unicode => Encoding::Ucs2,
        EncodingChoice::Gsm7 => match first_non_gsm7(text) {
            Some(bad) => return Err(bad),
            None => Encoding::Gsm7,
        },
        EncodingChoice::Auto => {
            if first_non_gsm7(text).is_none() {
                Encoding::Gsm7
            } else {
                Encoding::Ucs2
            }
        }
    };
    let parts = split(text, encoding);
    let units = match encoding {
        Encoding::Gsm7 => text.chars().map(|c| gsm7_septets(c).unwrap_or(1)).sum(),
        Encoding::Ucs2 => text.encode_utf16().count(),
    };
    Ok(Analysis { encoding, units, segments: parts.len().max(1) })
}

/// Splits `text` into the parts it is sent as (one part if it fits).
pub fn split(text: &str, encoding: Encoding) -> Vec<&str> {
    match encoding {
        Encoding::Gsm7 => split_gsm7(text),
        Encoding::Ucs2 => split_ucs2(text),
    }
}

/// GSM-7 parts: characters (an extension character's two septets stay
/// together); every GSM-7 grapheme is one character, CR LF aside.
fn split_gsm7(text: &str) -> Vec<&str> {
    let cost = |c: char| gsm7_septets(c).unwrap_or(1);
    if text.chars().map(cost).sum::<usize>() <= GSM7_SINGLE {
        return vec![text];
    }
    let mut parts = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, c) in text.char_indices() {
        let n = cost(c);
        if used + n > GSM7_PART {
            parts.push(&text[start..i]);
            (start, used) = (i, 0);
        }
        used += n;
    }
    parts.push(&text[start..]);
    parts
}

/// The pieces UCS-2 parts never cut: extended grapheme clusters, with CR
/// LF as two (as Twilio counts it), and each with its byte offset.
fn clusters(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.grapheme_indices(true).flat_map(|(i, g)| {
        let (first, rest) = if g == "\r\n" { (&g[..1], Some((i + 1, &g[1..]))) } else { (g, None) };
        std::iter::once((i, first)).chain(rest)
    })
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

fn split_ucs2(text: &str) -> Vec<&str> {
    if utf16_len(text) <= UCS2_SINGLE {
        return vec![text];
    }
    let mut parts = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, cluster) in clusters(text) {
        let n = utf16_len(cluster);
        if n > UCS2_PART {
            // Longer than any part can carry: cut between its code points.
            for (j, c) in cluster.char_indices() {
                if used + c.len_utf16() > UCS2_PART {
                    parts.push(&text[start..i + j]);
                    (start, used) = (i + j, 0);
                }
                used += c.len_utf16();
            }
            continue;
        }
        if used + n > UCS2_PART {
            parts.push(&text[start..i]);
            (start, used) = (i, 0);
        }
        used += n;
    }
    parts.push(&text[start..]);
    parts
}

/// GSM-7 codes, one octet per septet (the unpacked form SMPP uses with
/// `data_coding` 0). Fails on characters outside the alphabet.
pub fn encode_gsm7(text: &str) -> Result<Vec<u8>, NotGsm7> {
    let mut out = Vec::with_capacity(text.len());
    for (position, c) in text.chars().enumerate() {
        if let Some(code) = basic_code(c) {
            out.push(code);
        } else if let Some(code) = extension_code(c) {
            out.push(ESCAPE);
            out.push(code);
        } else {
            return Err(NotGsm7 { character: c, position });
        }
    }
    Ok(out)
}

/// Decodes unpacked GSM-7 codes; unknown escapes decode as a space, as the
/// specification recommends.
pub fn decode_gsm7(codes: &[u8]) -> String {
    let mut out = String::with_capacity(codes.len());
    let mut iter = codes.iter();
    while let Some(&b) = iter.next() {
        if b == ESCAPE {
            let next = iter.next().copied().unwrap_or(0);
            out.push(EXTENSION.iter().find(|(_, code)| *code == next).map_or(' ', |(c, _)| *c));
        } else {
            out.push(BASIC[(b & 0x7F) as usize]);
        }
    }
    out
}

/// UCS-2 (really UTF-16BE, as carriers accept it for emoji).
pub fn encode_ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

pub fn decode_ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> (Encoding, usize) {
        let r = analyze(text, EncodingChoice::Auto).unwrap();
        (r.encoding, r.segments)
    }

    #[test]
    fn every_character_of_both_tables_is_found_at_its_code() {
        for (code, c) in BASIC.iter().enumerate() {
            let expected = (*c != '\u{1B}').then_some(code as u8);
            assert_eq!(basic_code(*c), expected, "{c:?}");
        }
        for (c, code) in EXTENSION {
            assert_eq!((basic_code(c), extension_code(c)), (None, Some(code)), "{c:?}");
        }
        for c in ['ç', 'я', '😀', '\u{3FF}', '\u{400}'] {
            assert_eq!((basic_code(c), extension_code(c)), (None, None), "{c:?}");
        }
    }

    #[test]
    fn tricky_strings() {
        let cases: &[(&str, Encoding, usize)] = &[
            ("", Encoding::Gsm7, 1),
            ("Hello", Encoding::Gsm7, 1),
            (&"a".repeat(160), Encoding::Gsm7, 1),
            (&"a".repeat(161), Encoding::Gsm7, 2),
            (&"a".repeat(306), Encoding::Gsm7, 2),
            (&"a".repeat(307), Encoding::Gsm7, 3),
            // Extension characters count double: 80 euro signs fill one part.
            (&"€".repeat(80), Encoding::Gsm7, 1),
            (&"€".repeat(81), Encoding::Gsm7, 2),
            (&format!("{}{}", "a".repeat(159), "{"), Encoding::Gsm7, 2),
            ("Café ñ Ä ß", Encoding::Gsm7, 1),
            ("ç lowercase is not GSM", Encoding::Ucs2, 1),
            (&"я".repeat(70), Encoding::Ucs2, 1),
            (&"я".repeat(71), Encoding::Ucs2, 2),
            (&"я".repeat(134), Encoding::Ucs2, 2),
            (&"я".repeat(135), Encoding::Ucs2, 3),
            // An emoji is two UTF-16 units.
            (&"😀".repeat(35), Encoding::Ucs2, 1),
            (&"😀".repeat(36), Encoding::Ucs2, 2),
        ];
        for (text, enc, segs) in cases {
            assert_eq!(
                a(text),
                (*enc, *segs),
                "text of {} chars: {:?}",
                text.chars().count(),
                &text[..text.len().min(20)]
            );
        }
    }

    #[test]
    fn splits_never_break_escapes_or_surrogates() {
        // 152 plain septets then a two-septet char: the escape must move
        // whole into the next part.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let parts = split(&text, Encoding::Gsm7);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "a".repeat(152));
        assert!(parts[1].starts_with('€'));

        // 66 units then an emoji (2 units): the pair moves whole.
        let text = format!("{}😀{}", "я".repeat(66), "я".repeat(10));
        let parts = split(&text, Encoding::Ucs2);
        assert_eq!(parts[0].encode_utf16().count(), 66);
        assert!(parts[1].starts_with('😀'));
        assert_eq!(parts.concat(), text);
    }

    /// Twilio's segment calculator, transcribed: graphemes (CR LF as two)
    /// cost 7 bits per septet (GSM-7) or 16 per UTF-16 unit (UCS-2) and are
    /// packed into 1,120-bit segments; once a second segment is needed,
    /// every segment carries a 48-bit header, and what no longer fits in the
    /// one before moves on with it.
    fn twilio_segments(text: &str) -> usize {
        let graphemes: Vec<&str> =
            text.graphemes(true).flat_map(|g| if g == "\r\n" { vec!["\r", "\n"] } else { vec![g] }).collect();
        let gsm = graphemes
            .iter()
            .all(|g| g.encode_utf16().count() == 1 && gsm7_septets(g.chars().next().unwrap()).is_some());
        let bits = |g: &str| match gsm {
            true => 7 * gsm7_septets(g.chars().next().unwrap()).unwrap(),
            false => 16 * g.encode_utf16().count(),
        };
        const SEGMENT: usize = 1120;
        const HEADER: usize = 48;
        // (has a header, sizes of what it holds)
        let mut segments: Vec<(bool, Vec<usize>)> = vec![(false, Vec::new())];
        for g in graphemes {
            let b = bits(g);
            let current = segments.last().unwrap();
            let used = current.1.iter().sum::<usize>() + if current.0 { HEADER } else { 0 };
            if SEGMENT - used < b {
                let mut next: (bool, Vec<usize>) = (true, Vec::new());
                let previous = segments.last_mut().unwrap();
                if !previous.0 {
                    previous.0 = true;
                    while previous.1.iter().sum::<usize>() + HEADER > SEGMENT {
                        next.1.insert(0, previous.1.pop().unwrap());
                    }
                }
                segments.push(next);
            }
            segments.last_mut().unwrap().1.push(b);
        }
        segments.len()
    }

    #[test]
    fn segment_counts_and_parts_follow_twilios_rules() {
        let mut texts: Vec<String> = Vec::new();
        for n in [0, 1, 70, 153, 154, 159, 160, 161, 200, 305, 306, 307, 458, 459, 460, 612, 613] {
            texts.push("a".repeat(n));
        }
        // Extension characters (two septets) on every side of the boundaries.
        for k in 148..=161 {
            for tail in [0, 10, 150] {
                texts.push(format!("{}€{}", "a".repeat(k), "b".repeat(tail)));
            }
        }
        texts.push("[".repeat(80));
        texts.push("[".repeat(81));
        texts.push(format!("{}{}", "a".repeat(151), "[]".repeat(20)));
        texts.push("a\r\nb".repeat(60));
        for n in [1, 69, 70, 71, 134, 135, 136, 201, 202] {
            texts.push("я".repeat(n));
        }
        // Every kind of multi-code-point character on the UCS-2 boundaries.
        let clusters = ["🇺🇸", "👍🏽", "1️⃣", "❤️", "e\u{301}", "👨‍👩‍👧‍👦", "😀", "\r\n", "a\u{301}\u{302}\u{303}"];
        for cluster in clusters {
            for k in 60..=70 {
                for tail in [0, 5, 70] {
                    texts.push(format!("{}{cluster}{}", "я".repeat(k), "я".repeat(tail)));
                }
            }
        }
        assert!(texts.len() >= 80, "{} strings", texts.len());
        for text in &texts {
            let analysis = analyze(text, EncodingChoice::Auto).unwrap();
            assert_eq!(analysis.segments, twilio_segments(text), "{:?}", text.escape_debug().to_string());
            // The parts are what is counted, put back together, and cut only
            // at grapheme boundaries (CR LF aside).
            let parts = split(text, analysis.encoding);
            assert_eq!(parts.len().max(1), analysis.segments);
            assert_eq!(parts.concat(), *text);
            let boundaries: std::collections::HashSet<usize> = clusters_of(text);
            let mut at = 0;
            for p in &parts[..parts.len() - 1] {
                at += p.len();
                assert!(boundaries.contains(&at), "cut inside a character in {:?}", text.escape_debug().to_string());
            }
        }
        // The case a code-unit split gets wrong: a flag at the 67-unit edge.
        let flag = format!("{}🇺🇸{}", "я".repeat(66), "я".repeat(64));
        assert_eq!(analyze(&flag, EncodingChoice::Auto).unwrap().segments, 3);
    }

    fn clusters_of(text: &str) -> std::collections::HashSet<usize> {
        super::clusters(text).map(|(i, _)| i).collect()
    }

    #[test]
    fn a_cluster_longer_than_a_part_is_cut_between_code_points() {
        let zalgo = format!("a{}", "\u{301}".repeat(100));
        let parts = split(&zalgo, Encoding::Ucs2);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= UCS2_PART));
        assert_eq!(parts.concat(), zalgo);
    }

    #[test]
    fn forced_gsm7_rejects_other_characters() {
        let err = analyze("hi 😀", EncodingChoice::Gsm7).unwrap_err();
        assert_eq!(err.position, 3);
        assert_eq!(analyze("hi", EncodingChoice::Unicode).unwrap().encoding, Encoding::Ucs2);
    }

    #[test]
    fn gsm7_round_trips() {
        let text = "@£$¥ Hello {world} €5 ~|^ Ñoño ß\n";
        let codes = encode_gsm7(text).unwrap();
        assert_eq!(codes[0], 0x00);
        assert_eq!(decode_gsm7(&codes), text);
        assert_eq!(decode_ucs2(&encode_ucs2("😀 я")), "😀 я");
    }
}
