//! Phone numbers: validation and E.164 normalisation (libphonenumber's
//! metadata, through the `phonenumber` crate) and masking for logs.

use phonenumber::{Mode, country};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid phone number")]
pub struct InvalidNumber(pub String);

/// The longest text accepted as a phone number, in bytes. Generous for
/// formatted numbers (`+1 (555) 123-4567`, `0044 20 7031 3000`); anything
/// longer is refused before it reaches the parser.
pub const MAX_INPUT_BYTES: usize = 64;

/// The region `code` names (ISO 3166 alpha-2, any case), upper-cased, if
/// libphonenumber has metadata for it.
pub fn region(code: &str) -> Option<String> {
    let upper = code.to_ascii_uppercase();
    (upper.len() == 2 && upper.parse::<country::Id>().is_ok()).then_some(upper)
}

/// Parses `raw` into E.164 (`+15551234567`). Numbers without a leading `+`
/// are read in `default_region` (ISO 3166 alpha-2) when one is given.
///
/// Input already in E.164 form takes a shortcut; other valid results are
/// remembered (a cache bounded in bytes; refusals are never kept), as
/// parsing with libphonenumber's metadata costs tens of microseconds and
/// the same numbers come back again and again.
pub fn normalize(raw: &str, default_region: Option<&str>) -> Result<String, InvalidNumber> {
    if raw.len() > MAX_INPUT_BYTES || default_region.is_some_and(|r| r.len() > 3) {
        return Err(InvalidNumber(format!("{}…", truncate(raw, 24))));
    }
    if let Some(number) = canonical_e164(raw) {
        return Ok(number.to_string());
    }
    static CACHE: std::sync::LazyLock<quick_cache::sync::Cache<(String, Option<String>), String, EntryBytes>> =
        std::sync::LazyLock::new(|| {
            quick_cache::sync::Cache::with_weighter(
                NORMALIZED_CACHE_BYTES as usize / 64,
                NORMALIZED_CACHE_BYTES,
                EntryBytes,
            )
        });
    let key = (raw.to_string(), default_region.map(str::to_string));
    if let Some(hit) = CACHE.get(&key) {
        return Ok(hit);
    }
    let number = parse_e164(raw, default_region)?;
    CACHE.insert(key, number.clone());
    Ok(number)
}

/// Bytes the [`normalize`] cache may hold (keys and values).
const NORMALIZED_CACHE_BYTES: u64 = 8 << 20;

/// Weighs a cache entry by the bytes it holds, plus its bookkeeping.
#[derive(Clone)]
struct EntryBytes;

impl quick_cache::Weighter<(String, Option<String>), String> for EntryBytes {
    fn weight(&self, key: &(String, Option<String>), value: &String) -> u64 {
        (key.0.len() + key.1.as_ref().map_or(0, String::len) + value.len() + 96) as u64
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `raw` when it already is a plausible E.164 number — `+`, a known country
/// calling code, a national number of a possible length for it (not
/// starting with 0) — which is what carriers and API clients send almost
/// always. Anything else goes through the full parser.
fn canonical_e164(raw: &str) -> Option<&str> {
    let digits = raw.strip_prefix('+')?;
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Calling codes are prefix-free: at most one of these is assigned.
    let (code, national) = (1..=3).find_map(|n| {
        let code: u16 = digits[..n].parse().ok()?;
        phonenumber::metadata::DATABASE.by_code(&code).map(|_| (code, &digits[n..]))
    })?;
    if national.starts_with('0') || !possible_length(code, national.len() as u16) {
        return None;
    }
    Some(raw)
}

fn possible_length(code: u16, length: u16) -> bool {
    phonenumber::metadata::DATABASE.by_code(&code).is_some_and(|metas| {
        metas.iter().any(|m| {
            let d = m.descriptors();
            [d.fixed_line(), d.mobile(), d.toll_free(), d.voip(), d.personal_number()]
                .into_iter()
                .flatten()
                .any(|desc| desc.possible_length().contains(&length))
        })
    })
}

fn parse_e164(raw: &str, default_region: Option<&str>) -> Result<String, InvalidNumber> {
    let trimmed = raw.trim();
    let region = default_region.and_then(|r| r.to_ascii_uppercase().parse::<country::Id>().ok());
    let parsed = phonenumber::parse(region, trimmed).map_err(|_| InvalidNumber(raw.to_string()))?;
    if !is_plausible(&parsed) {
        return Err(InvalidNumber(raw.to_string()));
    }
    Ok(parsed.format().mode(Mode::E164).to_string())
}

/// libphonenumber's `is_valid` also checks number ranges, and rejects the
/// 555 fiction range that demos and tests use; we accept numbers that are
/// valid *or* have a possible length for their country calling code.
fn is_plausible(number: &phonenumber::PhoneNumber) -> bool {
    if phonenumber::is_valid(number) {
        return true;
    }
    let length = number.national().value().to_string().len() as u16;
    possible_length(number.code().value(), length)
}

/// What libphonenumber says of a parsed number: `isValidNumber`,
/// `getRegionCodeForNumber` and `getNumberType`, computed from the metadata
/// the `phonenumber` crate carries (libphonenumber 9.0.33). The crate's own
/// answers drop the leading zeros of national numbers that keep them
/// (Italy's fixed lines, `+39 06 …`: no region, type unknown) and match
/// patterns only at their start; these follow libphonenumber: the national
/// significant number with its zeros, patterns matched whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub valid: bool,
    /// ISO 3166 region, or `001` for non-geographic numbers (`+800`).
    pub region: Option<String>,
    pub kind: phonenumber::Type,
}

pub fn describe(number: &phonenumber::PhoneNumber) -> Description {
    let code = number.code().value();
    let nsn = number.national().to_string(); // with its leading zeros
    let unknown = Description { valid: false, region: None, kind: phonenumber::Type::Unknown };
    let Some((region, meta)) = region_of(code, &nsn) else { return unknown };
    let kind = number_type(meta, &nsn);
    let valid = meta.country_code() == code && kind != phonenumber::Type::Unknown;
    Description {
        valid,
        region: valid.then(|| region.to_string()),
        kind: if valid { kind } else { phonenumber::Type::Unknown },
    }
}

/// Whether `value` matches `pattern` entirely (anchored; compiled once).
fn matches_whole(pattern: &str, value: &str) -> bool {
    anchored(pattern, true).is_some_and(|r| r.is_match(value))
}

fn matches_start(pattern: &str, value: &str) -> bool {
    anchored(pattern, false).is_some_and(|r| r.is_match(value))
}

fn anchored(pattern: &str, whole: bool) -> Option<regex::Regex> {
    type Compiled = std::collections::HashMap<(String, bool), Option<regex::Regex>>;
    // The metadata's patterns are a fixed set: the map stays bounded.
    static COMPILED: std::sync::LazyLock<std::sync::Mutex<Compiled>> = std::sync::LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().expect("regex cache");
    compiled
        .entry((pattern.to_string(), whole))
        .or_insert_with(|| {
            let source = if whole { format!("^(?:{pattern})$") } else { format!("^(?:{pattern})") };
            // The metadata's patterns are laid out over lines: white space
            // in them is not part of the pattern.
            regex::RegexBuilder::new(&source).ignore_whitespace(true).build().ok()
        })
        .clone()
}

/// libphonenumber's `isNumberMatchingDesc`: a possible length, and the
/// whole pattern.
fn matching(desc: Option<&phonenumber::metadata::Descriptor>, nsn: &str) -> bool {
    let Some(desc) = desc else { return false };
    let lengths = desc.possible_length();
    if !lengths.is_empty() && !lengths.contains(&(nsn.len() as u16)) {
        return false;
    }
    matches_whole(desc.national_number().as_str(), nsn)
}

/// libphonenumber's `getNumberTypeHelper`.
fn number_type(meta: &phonenumber::Metadata, nsn: &str) -> phonenumber::Type {
    use phonenumber::Type;
    let d = meta.descriptors();
    if !matching(Some(d.general()), nsn) {
        return Type::Unknown;
    }
    let ordered = [
        (d.premium_rate(), Type::PremiumRate),
        (d.toll_free(), Type::TollFree),
        (d.shared_cost(), Type::SharedCost),
        (d.voip(), Type::Voip),
        (d.personal_number(), Type::PersonalNumber),
        (d.pager(), Type::Pager),
        (d.uan(), Type::Uan),
        (d.voicemail(), Type::Voicemail),
    ];
    if let Some((_, kind)) = ordered.into_iter().find(|(desc, _)| matching(*desc, nsn)) {
        return kind;
    }
    let same = match (d.fixed_line(), d.mobile()) {
        (Some(f), Some(m)) => f.national_number().as_str() == m.national_number().as_str(),
        _ => false,
    };
    if matching(d.fixed_line(), nsn) {
        return if same || matching(d.mobile(), nsn) { Type::FixedLineOrMobile } else { Type::FixedLine };
    }
    if !same && matching(d.mobile(), nsn) {
        return Type::Mobile;
    }
    Type::Unknown
}

/// libphonenumber's `getRegionCodeForNumber`, with the region's metadata.
fn region_of(code: u16, nsn: &str) -> Option<(&'static str, &'static phonenumber::Metadata)> {
    let db = &*phonenumber::metadata::DATABASE;
    let regions = db.region(&code)?;
    if let [only] = regions[..] {
        let meta = if only == "001" { db.by_code(&code)?.into_iter().next()? } else { db.by_id(only)? };
        return Some((only, meta));
    }
    regions.into_iter().find_map(|region| {
        let meta = db.by_id(region)?;
        let found = match meta.leading_digits() {
            Some(leading) => matches_start(leading.as_str(), nsn),
            None => number_type(meta, nsn) != phonenumber::Type::Unknown,
        };
        found.then_some((region, meta))
    })
}

/// A number for logs: country code and last two digits only.
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let chars: Vec<char> = s.chars().collect();
        if chars.len() <= 5 {
            return f.write_str("***");
        }
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 2..].iter().collect();
        write!(f, "{head}***{tail}")
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_e164() {
        assert_eq!(normalize("+1 (555) 123-4567", None).unwrap(), "+15551234567");
        assert_eq!(normalize("+44 7911 123456", None).unwrap(), "+447911123456");
        assert_eq!(normalize("07911 123456", Some("gb")).unwrap(), "+447911123456");
    }

    #[test]
    fn rejects_garbage() {
        assert!(normalize("hello", None).is_err());
        assert!(normalize("12", None).is_err());
        assert!(normalize("5551234567", None).is_err(), "no region and no +");
        assert!(normalize("+1555123", None).is_err(), "too short for +1");
        assert!(normalize("+15550000000", None).is_ok(), "the fiction range has a possible length");
    }

    #[test]
    fn the_e164_shortcut_agrees_with_the_parser() {
        let numbers = [
            "+15551234567",
            "+447911123456",
            "+4915112345678",
            "+33612345678",
            "+393123456789",
            "+61412345678",
            "+8613812345678",
            "+5511912345678",
            "+27821234567",
            "+97150123456",
            "+12",
            "+999123456789",
            "+1555123",
            "+4407911123456",
            "+35312345",
            "+80012345678",
        ];
        for n in numbers {
            if canonical_e164(n).is_some() {
                assert_eq!(parse_e164(n, None).as_deref(), Ok(n), "{n}");
            }
        }
        assert!(canonical_e164("+15551234567").is_some(), "the common case takes the shortcut");
        assert!(canonical_e164("+4407911123456").is_none(), "a national prefix goes to the parser");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let huge = format!("+1{}", "5".repeat(900_000));
        let err = normalize(&huge, None).unwrap_err();
        assert!(err.0.len() < 40, "the error does not carry the input: {}", err.0.len());
        assert!(normalize(&"1".repeat(65), Some("US")).is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(Masked("+15551234567").to_string(), "+15***67");
        assert_eq!(Masked("ACME").to_string(), "***");
    }
}
