//! Outgoing HTTP safety: which addresses the engine may call on a tenant's
//! behalf (status webhooks, plugins' `http` capability); and the sockets
//! it listens on ([`listen`]).
//!
//! Every IANA special-purpose range, IPv4 and IPv6, is refused unless the
//! operator allows private addresses: a tenant cannot make the engine probe
//! its own network, its cloud's metadata service, or anything behind a
//! translation prefix (NAT64, 6to4, IPv4-mapped and -compatible forms).
//!
//! The check happens where the connection is made: clients built with
//! [`guarded_client`] resolve names through [`VettedResolver`], which hands
//! the HTTP client only the addresses it checked. A name that answers
//! public to a first query and loopback to a second (DNS rebinding) cannot
//! slip through, because there is no second query.

use futures::future::BoxFuture;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

/// Address blocks the engine never calls for a tenant. Sources: the IANA
/// IPv4 and IPv6 Special-Purpose Address Registries
/// (<https://www.iana.org/assignments/iana-ipv4-special-registry>,
/// <https://www.iana.org/assignments/iana-ipv6-special-registry>), every
/// entry whatever its "globally reachable" flag; plus multicast (RFC 5771,
/// RFC 4291), the deprecated site-local fec0::/10 (RFC 3879) and
/// IPv4-compatible ::/96 (RFC 4291 §2.5.5.1).
pub const SPECIAL_PURPOSE: &[&str] = &[
    // IPv4
    "0.0.0.0/8",       // "this network" (RFC 791)
    "10.0.0.0/8",      // private (RFC 1918)
    "100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",     // loopback (RFC 1122)
    "169.254.0.0/16",  // link local, cloud metadata services (RFC 3927)
    "172.16.0.0/12",   // private (RFC 1918)
    "192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",    // documentation TEST-NET-1 (RFC 5737)
    "192.31.196.0/24", // AS112-v4 (RFC 7535)
    "192.52.193.0/24", // AMT (RFC 7450)
    "192.88.99.0/24",  // deprecated 6to4 relay anycast (RFC 7526)
    "192.168.0.0/16",  // private (RFC 1918)
    "192.175.48.0/24", // direct delegation AS112 service (RFC 7534)
    "198.18.0.0/15",   // benchmarking (RFC 2544)
    "198.51.100.0/24", // documentation TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",  // documentation TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",     // multicast (RFC 5771)
    "240.0.0.0/4",     // reserved (RFC 1112), includes the broadcast address
    // IPv6
    "::/128",            // unspecified (RFC 4291)
    "::1/128",           // loopback (RFC 4291)
    "::/96",             // IPv4-compatible, deprecated (RFC 4291)
    "::ffff:0:0/96",     // IPv4-mapped (RFC 4291)
    "64:ff9b::/96",      // IPv4/IPv6 translation, NAT64 (RFC 6052)
    "64:ff9b:1::/48",    // local-use IPv4/IPv6 translation (RFC 8215)
    "100::/64",          // discard-only (RFC 6666)
    "100:0:0:1::/64",    // dummy prefix (RFC 9780)
    "2001::/23",         // IETF protocol assignments: Teredo, benchmarking, ORCHIDv2... (RFC 2928)
    "2001:db8::/32",     // documentation (RFC 3849)
    "2002::/16",         // 6to4 (RFC 3056)
    "2620:4f:8000::/48", // direct delegation AS112 service (RFC 7534)
    "3fff::/20",         // documentation (RFC 9637)
    "5f00::/16",         // segment routing SIDs (RFC 9602)
    "fc00::/7",          // unique local (RFC 4193)
    "fe80::/10",         // link local (RFC 4291)
    "fec0::/10",         // site local, deprecated (RFC 3879)
    "ff00::/8",          // multicast (RFC 4291)
];

static BLOCKED: LazyLock<Vec<IpNet>> =
    LazyLock::new(|| SPECIAL_PURPOSE.iter().map(|n| n.parse().expect("the table holds valid networks")).collect());

/// Whether `ip` is outside every special-purpose block.
pub fn is_public(ip: IpAddr) -> bool {
    !BLOCKED.iter().any(|net| net.contains(&ip))
}

#[derive(Debug, thiserror::Error)]
pub enum UrlRefused {
    #[error("{0:?} is not an http(s) URL")]
    NotHttp(String),
    #[error("{0} resolves to a private, local or special-purpose address")]
    Private(String),
    #[error("{0} does not resolve: {1}")]
    Unresolvable(String, String),
}

/// The longest URL accepted (webhook URLs, plugins' requests).
pub const MAX_URL_BYTES: usize = 2048;

/// Parses an http(s) URL.
pub fn parse_http_url(text: &str) -> Result<url::Url, UrlRefused> {
    if text.len() > MAX_URL_BYTES {
        return Err(UrlRefused::NotHttp(format!("{}…", &text[..text.floor_char_boundary(64)])));
    }
    let url = url::Url::parse(text).map_err(|_| UrlRefused::NotHttp(text.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(UrlRefused::NotHttp(text.to_string()));
    }
    Ok(url)
}

/// Refuses a URL whose host is an IP literal outside the public ranges
/// (names are vetted by the [`VettedResolver`] when the client connects).
pub fn check_literal(url: &url::Url, allow_private: bool) -> Result<(), UrlRefused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if allow_private || is_public(ip) { Ok(()) } else { Err(UrlRefused::Private(ip.to_string())) }
}

/// Where names are looked up; tests put a scripted resolver here.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver.
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// A DNS resolver for the HTTP client that returns only the addresses it
/// vetted: the client connects to exactly what was checked.
#[derive(Clone)]
pub struct VettedResolver {
    lookup: Arc<dyn Lookup>,
    allow_private: bool,
}

impl VettedResolver {
    pub fn new(lookup: Arc<dyn Lookup>, allow_private: bool) -> Self {
        VettedResolver { lookup, allow_private }
    }

    pub fn system(allow_private: bool) -> Self {
        Self::new(Arc::new(SystemLookup), allow_private)
    }

    /// The addresses of `host` the engine may connect to.
    pub async fn vetted(&self, host: &str) -> Result<Vec<IpAddr>, UrlRefused> {
        let addrs = self
            .lookup
            .lookup(host.to_string())
            .await
            .map_err(|e| UrlRefused::Unresolvable(host.to_string(), e.to_string()))?;
        if addrs.is_empty() {
            return Err(UrlRefused::Unresolvable(host.to_string(), "no addresses".into()));
        }
        // One special-purpose answer taints the name: a public decoy next to
        // an internal address is still an attempt.
        if !self.allow_private && !addrs.iter().all(|ip| is_public(*ip)) {
            return Err(UrlRefused::Private(host.to_string()));
        }
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for VettedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addrs = resolver.vetted(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// An HTTP client that connects only to vetted addresses: names through
/// the resolver, no proxy, no redirects (a redirect could point inside).
/// Callers check IP-literal URLs with [`check_literal`].
pub fn guarded_client(resolver: VettedResolver) -> reqwest::ClientBuilder {
    reqwest::Client::builder().dns_resolver(Arc::new(resolver)).no_proxy().redirect(reqwest::redirect::Policy::none())
}

/// Whether a request failed because the resolver refused the destination.
pub fn refused_by_resolver(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<UrlRefused>() {
            return Some(refused.to_string());
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// More clients than tokio's default backlog (1,024) connect at once,
    /// before the engine accepts any: each connect completes when the
    /// kernel queues it. Past the backlog their SYNs would be dropped and
    /// the connects would hang, retried every few seconds, until the guard
    /// below fails the test.
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog_instead_of_being_dropped() {
        let listener = listen_loopback().unwrap();
        let address = listener.local_addr().unwrap();
        let burst = 1_500;
        let connects = (0..burst).map(|_| tokio::net::TcpStream::connect(address));
        let streams = tokio::time::timeout(std::time::Duration::from_secs(60), futures::future::try_join_all(connects))
            .await
            .expect("connections past the backlog were dropped")
            .unwrap();
        assert_eq!(streams.len(), burst);
        // Accepted afterwards, in order, as the engine would.
        let (_, from) = listener.accept().await.unwrap();
        assert!(from.ip().is_loopback());
    }

    #[test]
    fn special_purpose_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.170",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2001::1",
            "ff02::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Answers each query with the next list of addresses.
    struct Scripted {
        answers: Vec<Vec<IpAddr>>,
        asked: AtomicUsize,
    }

    impl Lookup for Scripted {
        fn lookup(&self, _host: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            let n = self.asked.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers[n.min(self.answers.len() - 1)].clone();
            Box::pin(async move { Ok(answer) })
        }
    }

    #[tokio::test]
    async fn a_name_with_any_special_purpose_answer_is_refused() {
        let lookup = Arc::new(Scripted {
            answers: vec![vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()]],
            asked: AtomicUsize::new(0),
        });
        let resolver = VettedResolver::new(lookup, false);
        assert!(matches!(resolver.vetted("mixed.test").await, Err(UrlRefused::Private(_))));
    }

    #[tokio::test]
    async fn literals_are_checked_and_private_ones_allowed_only_when_configured() {
        let url = parse_http_url("http://127.0.0.1:9/hook").unwrap();
        assert!(matches!(check_literal(&url, false), Err(UrlRefused::Private(_))));
        assert!(check_literal(&url, true).is_ok());
        let url = parse_http_url("http://[::ffff:7f00:1]/hook").unwrap();
        assert!(check_literal(&url, false).is_err());
        assert!(parse_http_url("ftp://example.com").is_err());
    }
}

/// The name lookup behind tenant-facing HTTP clients.
#[derive(Clone, Default)]
pub struct Dns(pub Option<Arc<dyn Lookup>>);

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Dns(scripted)" } else { "Dns(system)" })
    }
}

impl Dns {
    pub fn resolver(&self, allow_private: bool) -> VettedResolver {
        match &self.0 {
            Some(lookup) => VettedResolver::new(lookup.clone(), allow_private),
            None => VettedResolver::system(allow_private),
        }
    }
}

/// Connections the kernel holds for the engine until it accepts them. A
/// burst of clients connecting at once (carriers' webhooks, an API client
/// opening many connections) waits here; past it, the kernel drops their
/// SYNs, and each client retries after a second, then three: seconds of
/// delay on a request the engine would have answered in milliseconds.
/// tokio's `bind` asks for 1,024; Linux caps the figure at
/// `net.core.somaxconn` (4,096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `address`, with [`LISTEN_BACKLOG`] (and, as
/// tokio's `bind`, address reuse, so a restarted engine listens at once).
pub fn listen(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A listening socket on a free loopback port (tests, benchmarks).
pub fn listen_loopback() -> std::io::Result<tokio::net::TcpListener> {
    listen(SocketAddr::from(([127, 0, 0, 1], 0)))
}
