//! Message templates: text with `{{name}}` placeholders.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template variable {0:?} has no value")]
    MissingVariable(String),
    #[error("template has an unclosed or empty placeholder near {0:?}")]
    Malformed(String),
}

/// The placeholder names of `body`, in order of first use.
pub fn placeholders(body: &str) -> Result<Vec<String>, TemplateError> {
    let mut names = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| TemplateError::Malformed(rest[start..].chars().take(20).collect()))?;
        let name = after[..end].trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(TemplateError::Malformed(rest[start..].chars().take(20).collect()));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// Fills every placeholder from `vars`; a missing one is an error.
pub fn render(body: &str, vars: &HashMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| TemplateError::Malformed(rest[start..].chars().take(20).collect()))?;
        let name = after[..end].trim();
        let value = vars.get(name).ok_or_else(|| TemplateError::MissingVariable(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reports_missing() {
        let vars: HashMap<String, String> = [("name".to_string(), "Ann".to_string())].into();
        assert_eq!(render("Hi {{name}}, hi {{ name }}!", &vars).unwrap(), "Hi Ann, hi Ann!");
        assert_eq!(render("Code {{code}}", &vars), Err(TemplateError::MissingVariable("code".into())));
        assert_eq!(placeholders("{{a}} {{b}} {{a}}").unwrap(), vec!["a", "b"]);
        assert!(placeholders("{{oops").is_err());
        assert!(placeholders("{{}}").is_err());
    }
}
