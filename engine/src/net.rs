//! Outgoing HTTP safety: which addresses the engine may call on a tenant's
//! behalf (webhooks). Private, loopback and link-local addresses are
//! refused unless the operator allows them, so a tenant cannot make the
//! engine probe its own network.

use std::net::IpAddr;

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64 // 100.64/10 carrier-grade NAT
                || v4.octets()[0] == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80) // link local
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UrlRefused {
    #[error("{0:?} is not an http(s) URL")]
    NotHttp(String),
    #[error("{0} resolves to a private or local address")]
    Private(String),
    #[error("{0} does not resolve: {1}")]
    Unresolvable(String, String),
}

/// Parses an http(s) URL.
pub fn parse_http_url(text: &str) -> Result<url::Url, UrlRefused> {
    let url = url::Url::parse(text).map_err(|_| UrlRefused::NotHttp(text.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(UrlRefused::NotHttp(text.to_string()));
    }
    Ok(url)
}

/// Resolves the URL's host and refuses it if any address is not public
/// (unless `allow_private`).
pub async fn check_destination(url: &url::Url, allow_private: bool) -> Result<(), UrlRefused> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| UrlRefused::Unresolvable(host.clone(), e.to_string()))?;
    let all_public = addrs.into_iter().all(|addr| is_public(addr.ip()));
    if all_public { Ok(()) } else { Err(UrlRefused::Private(host)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        let url = parse_http_url("http://127.0.0.1:9/hook").unwrap();
        assert!(matches!(check_destination(&url, false).await, Err(UrlRefused::Private(_))));
        assert!(check_destination(&url, true).await.is_ok());
        assert!(parse_http_url("ftp://example.com").is_err());
    }
}
