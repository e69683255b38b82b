//! Who may send as what: numbers and alphanumeric sender IDs.
//!
//! - Numbers on a carrier connector are the operator's to assign (admin API
//!   or CLI). A tenant registers one itself only where the connector's
//!   `registration` allows it: `open` (simulators, by default), or `verify`
//!   (a six-digit code goes to the number from the connector's
//!   `verify_from`; the number is the tenant's once the code comes back).
//!   A connector's `tenants` list is checked here and again at dispatch.
//! - Sender IDs a tenant asks for wait for the operator's approval; names
//!   on the brand list (`sender_id_brands`) are refused outright, and an
//!   approved name belongs to one tenant.

use crate::connectors::gate::Registration;
use crate::control::{AdminError, Control};
use crate::sms::encoding::{self, EncodingChoice};
use crate::store::{Direction, MessageStatus, NewMessage, NewNumber, NumberClaim, OutboundRequest, OutboundResult};
use crate::{ids, phone, secrets};

/// Where a tenant's registration of a number stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberRegistration {
    /// The number is the tenant's.
    Active { number: String },
    /// A code was sent to the number; it is the tenant's once the code
    /// comes back before `expires_at`.
    Pending { number: String, expires_at: i64 },
}

/// Brand names refused as tenants' sender IDs unless the operator assigns
/// them (`sender_id_brands` replaces the list).
pub const DEFAULT_BRANDS: &[&str] = &[
    "PAYPAL",
    "AMAZON",
    "APPLE",
    "GOOGLE",
    "MICROSOFT",
    "NETFLIX",
    "FACEBOOK",
    "META",
    "WHATSAPP",
    "INSTAGRAM",
    "TELEGRAM",
    "VISA",
    "MASTERCARD",
    "AMEX",
    "CHASE",
    "HSBC",
    "BARCLAYS",
    "WELLSFARGO",
    "CITIBANK",
    "SANTANDER",
    "REVOLUT",
    "COINBASE",
    "BINANCE",
    "DHL",
    "FEDEX",
    "UPS",
    "USPS",
    "ROYALMAIL",
    "IRS",
    "HMRC",
    "GOVUK",
    "POLICE",
    "BANK",
    "VERIFY",
    "SECURITY",
    "SUPPORT",
    "ADMIN",
    "SWITCHBOARD",
];

/// The brand `sender_id` imitates, if any: the name matches a brand
/// (ignoring case, spaces and punctuation), or contains one of five or
/// more letters (`PayPal Help`).
pub fn imitated_brand<'a>(sender_id: &str, brands: &'a [String]) -> Option<&'a str> {
    let norm = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_uppercase();
    let name = norm(sender_id);
    brands.iter().map(String::as_str).find(|brand| {
        let brand = norm(brand);
        !brand.is_empty() && (name == brand || (brand.len() >= 5 && name.contains(&brand)))
    })
}

fn code_hash(tenant_id: &str, number: &str, code: &str) -> Vec<u8> {
    secrets::hash_key(&format!("{tenant_id}\n{number}\n{code}"))
}

impl Control {
    fn check_number_target(&self, tenant_id: &str, number: &str, connector: &str) -> Result<String, AdminError> {
        let number = phone::normalize(number, None)
            .map_err(|e| AdminError::Invalid { field: "number", message: e.to_string() })?;
        if self.engine.connectors.get(connector).is_none() {
            return Err(AdminError::Invalid {
                field: "connector",
                message: format!("no connector named {connector:?}"),
            });
        }
        if !self.engine.connectors.allows(connector, tenant_id) {
            return Err(AdminError::Refused {
                code: "CONNECTOR_NOT_ALLOWED",
                message: format!("this tenant may not use connector {connector:?} (see its gate.tenants)"),
            });
        }
        Ok(number)
    }

    /// Assigns a number to a tenant (the operator's path, and the last step
    /// of the others). The connector's tenant list still applies.
    pub async fn add_number(
        &self,
        tenant_id: &str,
        number: &str,
        connector: &str,
        is_default: bool,
    ) -> Result<String, AdminError> {
        let number = self.check_number_target(tenant_id, number, connector)?;
        self.engine
            .db
            .add_number(&NewNumber {
                number: number.clone(),
                tenant_id: tenant_id.to_string(),
                connector: connector.to_string(),
                is_default,
                created_at: self.engine.clock.now_ms(),
            })
            .await?;
        self.reload().await?;
        Ok(number)
    }

    /// A tenant asks for a number on `connector`, as the connector's
    /// registration policy allows.
    pub async fn register_number(
        &self,
        tenant_id: &str,
        number: &str,
        connector: &str,
        is_default: bool,
    ) -> Result<NumberRegistration, AdminError> {
        let normalized = self.check_number_target(tenant_id, number, connector)?;
        let registered = self.engine.connectors.get(connector).expect("checked above");
        match registered.registration {
            Registration::Open => Ok(NumberRegistration::Active {
                number: self.add_number(tenant_id, number, connector, is_default).await?,
            }),
            Registration::Operator => Err(AdminError::Refused {
                code: "NUMBER_ASSIGNED_BY_OPERATOR",
                message: format!("numbers on connector {connector:?} are assigned by the operator"),
            }),
            Registration::Verify => {
                if self.engine.directory.snapshot().numbers.contains_key(&normalized) {
                    return Err(AdminError::Conflict("number".into()));
                }
                let from = registered.verify_from.clone().expect("checked when the connector was built");
                self.send_verification(tenant_id, &normalized, connector, &from, is_default).await
            }
        }
    }

    async fn send_verification(
        &self,
        tenant_id: &str,
        number: &str,
        connector: &str,
        from: &str,
        is_default: bool,
    ) -> Result<NumberRegistration, AdminError> {
        let limits = &self.engine.limits;
        let now = self.engine.clock.now_ms();
        let code = format!("{:06}", rand::random_range(0..1_000_000u32));
        let claim = NumberClaim {
            tenant_id: tenant_id.to_string(),
            number: number.to_string(),
            connector: connector.to_string(),
            is_default,
            code_hash: code_hash(tenant_id, number, &code),
            attempts: 0,
            expires_at: now + limits.number_claim_ttl_s as i64 * 1000,
            created_at: now,
        };
        self.engine.db.put_number_claim(&claim).await?;
        let body =
            format!("Your verification code is {code}. It expires in {} minutes.", limits.number_claim_ttl_s / 60);
        let analysis = encoding::analyze(&body, EncodingChoice::Auto).expect("auto encoding always succeeds");
        let message = NewMessage {
            id: ids::message_id(),
            tenant_id: tenant_id.to_string(),
            direction: Direction::Outbound,
            from: from.to_string(),
            to: number.to_string(),
            body,
            status: MessageStatus::Queued,
            segments: analysis.segments as u32,
            encoding: analysis.encoding.as_str(),
            reference: Some(format!("{}number-verification", crate::compliance::RESERVED_REFERENCE_PREFIX)),
            connector: Some(connector.to_string()),
            plugin_id: None,
            event_id: None,
            in_reply_to: None,
            created_at: now,
            mode: "live",
            webhook_url: None,
            scheduled_at: None,
            price: self.engine.pricing.price(number, analysis.segments as u32),
            batch_id: None,
            error_code: None,
            account_sid: None,
            expires_at: None,
            trace_context: crate::telemetry::current(),
        };
        let request = OutboundRequest {
            tenant_id: tenant_id.to_string(),
            messages: vec![message],
            idempotency: None,
            lease: self.engine.pipeline.lease(&self.engine.clock),
        };
        match self.engine.pipeline.writer.outbound(request).await {
            Ok(OutboundResult::Accepted { due_now }) => {
                for item in due_now {
                    self.engine.pipeline.enqueue_send(item);
                }
            }
            Ok(OutboundResult::InsufficientBalance { .. }) => {
                self.engine.db.delete_number_claim(tenant_id, number).await?;
                return Err(AdminError::Refused {
                    code: "INSUFFICIENT_BALANCE",
                    message: "the balance does not cover the verification message".into(),
                });
            }
            Ok(OutboundResult::Duplicate) => {}
            Err(e) => return Err(AdminError::Invalid { field: "number", message: e.to_string() }),
        }
        Ok(NumberRegistration::Pending { number: number.to_string(), expires_at: claim.expires_at })
    }

    /// The code sent to a claimed number comes back: the number becomes the
    /// tenant's. Wrong codes count; the claim ends after
    /// `limits.number_claim_attempts` of them or when it expires.
    pub async fn verify_number(&self, tenant_id: &str, number: &str, code: &str) -> Result<String, AdminError> {
        let number = phone::normalize(number, None)
            .map_err(|e| AdminError::Invalid { field: "number", message: e.to_string() })?;
        let claim =
            self.engine.db.number_claim(tenant_id, &number).await?.ok_or(AdminError::NotFound("number claim"))?;
        let limits = &self.engine.limits;
        if claim.expires_at < self.engine.clock.now_ms() || claim.attempts >= limits.number_claim_attempts {
            self.engine.db.delete_number_claim(tenant_id, &number).await?;
            return Err(AdminError::Refused {
                code: "VERIFICATION_EXPIRED",
                message: "this verification expired or had too many wrong codes; register the number again".into(),
            });
        }
        let code = code.trim();
        if code.len() > 16 || !secrets::constant_time_eq(&code_hash(tenant_id, &number, code), &claim.code_hash) {
            self.engine.db.count_claim_attempt(tenant_id, &number).await?;
            let left = limits.number_claim_attempts.saturating_sub(claim.attempts + 1);
            return Err(AdminError::Invalid { field: "code", message: format!("wrong code; {left} attempts left") });
        }
        let added = self.add_number(tenant_id, &number, &claim.connector, claim.is_default).await?;
        self.engine.db.delete_number_claim(tenant_id, &number).await?;
        Ok(added)
    }

    /// The operator assigns a sender ID: approved at once, brand or not.
    pub async fn assign_sender_id(&self, tenant_id: &str, sender_id: &str) -> Result<(), AdminError> {
        self.engine.db.add_sender_id(tenant_id, sender_id, "approved", self.engine.clock.now_ms()).await?;
        self.reload().await?;
        Ok(())
    }

    /// A tenant asks for a sender ID: pending until the operator decides,
    /// refused outright when it imitates a brand or another tenant holds it.
    pub async fn request_sender_id(&self, tenant_id: &str, sender_id: &str) -> Result<(), AdminError> {
        if let Some(brand) = imitated_brand(sender_id, &self.sender_id_brands) {
            return Err(AdminError::Refused {
                code: "SENDER_ID_BLOCKED",
                message: format!("{sender_id:?} looks like the brand {brand}; ask the operator to assign it"),
            });
        }
        let taken =
            self.engine.db.list_sender_ids().await?.into_iter().any(|r| {
                r.status == "approved" && r.tenant_id != tenant_id && r.sender_id.eq_ignore_ascii_case(sender_id)
            });
        if taken {
            return Err(AdminError::Conflict("sender ID".into()));
        }
        self.engine.db.add_sender_id(tenant_id, sender_id, "pending", self.engine.clock.now_ms()).await?;
        Ok(())
    }

    /// The operator approves or rejects a tenant's sender ID.
    pub async fn decide_sender_id(&self, tenant_id: &str, sender_id: &str, approve: bool) -> Result<(), AdminError> {
        let status = if approve { "approved" } else { "rejected" };
        if !self.engine.db.decide_sender_id(tenant_id, sender_id, status, self.engine.clock.now_ms()).await? {
            return Err(AdminError::NotFound("sender ID"));
        }
        self.reload().await?;
        Ok(())
    }

    pub async fn remove_sender_id(&self, tenant_id: &str, sender_id: &str) -> Result<bool, AdminError> {
        let removed = self.engine.db.delete_sender_id(tenant_id, sender_id).await?;
        self.reload().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands_are_recognised_under_disguise() {
        let brands: Vec<String> = DEFAULT_BRANDS.iter().map(|s| s.to_string()).collect();
        for name in ["PayPal", "PAY PAL", "paypal", "PayPal Help", "Amazon", "UPS", "Bank"] {
            assert!(imitated_brand(name, &brands).is_some(), "{name}");
        }
        for name in ["Acme", "GroupShop", "Dentist", "Bakery 7"] {
            assert!(imitated_brand(name, &brands).is_none(), "{name}");
        }
    }
}
