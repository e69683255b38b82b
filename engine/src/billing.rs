//! Prepaid billing: prices per segment by destination prefix, and money
//! amounts. Amounts are integer micro-units (millionths) of the configured
//! currency everywhere inside the engine; the API shows decimal strings.

use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;
use std::str::FromStr;

/// Micro-units of the currency.
pub type Micros = i64;

const MICROS_PER_UNIT: i64 = 1_000_000;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not an amount (use a decimal like \"12.50\", at most 6 decimals)")]
pub struct InvalidAmount(pub String);

/// Parses `"0.0075"` into micros.
pub fn parse_amount(text: &str) -> Result<Micros, InvalidAmount> {
    let d = Decimal::from_str(text.trim()).map_err(|_| InvalidAmount(text.to_string()))?;
    if d.scale() > 6 {
        return Err(InvalidAmount(text.to_string()));
    }
    let micros = d * Decimal::from(MICROS_PER_UNIT);
    i64::try_from(micros.trunc().mantissa())
        .ok()
        .filter(|_| micros.fract().is_zero())
        .ok_or_else(|| InvalidAmount(text.to_string()))
}

/// Formats micros as a decimal string with at least two decimals.
pub fn format_amount(micros: Micros) -> String {
    let mut d = Decimal::new(micros, 6).normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d.to_string()
}

/// The `[pricing]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingSettings {
    /// ISO 4217 code shown with balances.
    pub currency: String,
    /// Price of one segment to destinations no prefix matches ("0" = free).
    pub per_segment: String,
    /// Destination prefix (`+44`, `+1`) → price per segment; the longest
    /// matching prefix wins.
    pub prefixes: HashMap<String, String>,
}

impl Default for PricingSettings {
    fn default() -> Self {
        PricingSettings { currency: "USD".into(), per_segment: "0".into(), prefixes: HashMap::new() }
    }
}

#[derive(Debug, Clone)]
pub struct Pricing {
    pub currency: String,
    default: Micros,
    /// Longest prefixes first.
    prefixes: Vec<(String, Micros)>,
}

impl Pricing {
    pub fn from_settings(s: &PricingSettings) -> Result<Self, InvalidAmount> {
        let mut prefixes = s
            .prefixes
            .iter()
            .map(|(p, price)| Ok((p.clone(), parse_amount(price)?)))
            .collect::<Result<Vec<_>, InvalidAmount>>()?;
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(Pricing { currency: s.currency.clone(), default: parse_amount(&s.per_segment)?, prefixes })
    }

    /// Price of one segment to `to` (E.164).
    pub fn per_segment(&self, to: &str) -> Micros {
        self.prefixes.iter().find(|(p, _)| to.starts_with(p.as_str())).map_or(self.default, |(_, price)| *price)
    }

    pub fn price(&self, to: &str, segments: u32) -> Micros {
        self.per_segment(to) * segments as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip() {
        assert_eq!(parse_amount("0.0075").unwrap(), 7_500);
        assert_eq!(parse_amount("12").unwrap(), 12_000_000);
        assert!(parse_amount("0.0000001").is_err());
        assert!(parse_amount("ten").is_err());
        assert_eq!(format_amount(7_500), "0.0075");
        assert_eq!(format_amount(12_000_000), "12.00");
        assert_eq!(format_amount(-1_500_000), "-1.50");
    }

    #[test]
    fn longest_prefix_wins() {
        let mut s = PricingSettings { per_segment: "0.01".into(), ..Default::default() };
        s.prefixes.insert("+4".into(), "0.02".into());
        s.prefixes.insert("+44".into(), "0.04".into());
        let p = Pricing::from_settings(&s).unwrap();
        assert_eq!(p.per_segment("+447911123456"), 40_000);
        assert_eq!(p.per_segment("+4915112345678"), 20_000);
        assert_eq!(p.price("+15551234567", 3), 30_000);
    }
}
