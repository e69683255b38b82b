//! SMS text rules: GSM 03.38 / UCS-2 encoding and segmentation.

pub mod encoding;
pub mod template;

/// The first word of a message, upper-cased: what keywords match against.
/// Trailing punctuation is ignored, so "Hours?" matches HOURS.
pub fn keyword_of(body: &str) -> String {
    let word = body.split_whitespace().next().unwrap_or("");
    word.trim_end_matches(|c: char| c.is_ascii_punctuation()).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_is_first_word_case_insensitive() {
        assert_eq!(keyword_of("  hours please"), "HOURS");
        assert_eq!(keyword_of("Stop"), "STOP");
        assert_eq!(keyword_of("Hours?!"), "HOURS");
        assert_eq!(keyword_of(""), "");
    }
}
