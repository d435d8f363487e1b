//! The HTTP client behind `https://` sources. A source URL is caller input, and the server sits
//! inside the network: without a guard, a URL (or a redirect from one) could reach the metadata
//! server, a database or an admin port. This client follows redirects only on the same scheme,
//! host and port, and connects only to public addresses unless the host is allow-listed
//! (`sources.allowed_internal_hosts`). Literal IP hosts are checked in `Source::resolve`, since
//! they never reach the resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

/// Why the guard refused a connection or a redirect; found again in the error chain so the
/// caller gets PERMISSION_DENIED rather than UNAVAILABLE.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast and documentation
/// ranges, for IPv4, IPv6 and IPv4-mapped IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64)
                || (a == 198 && (b & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            // IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) is judged as that IPv4.
            let low32 =
                |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            let mapped_or_compatible =
                segments[..6] == [0, 0, 0, 0, 0, 0xffff] || segments[..6] == [0; 6];
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let embedded = if mapped_or_compatible || nat64 {
                Some(low32(segments[6], segments[7]))
            } else if first == 0x2002 {
                Some(low32(segments[1], segments[2]))
            } else {
                None
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || embedded.is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Builds object_store's HTTP client with the guard in place.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    /// Hosts that may resolve to internal addresses (an internal mirror, a test server).
    pub allowed_internal_hosts: Arc<Vec<String>>,
}

impl GuardedConnector {
    pub fn allows_internal(&self, host: &str) -> bool {
        self.allowed_internal_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }
}

const MAX_REDIRECTS: usize = 5;

fn same_origin_redirects() -> Policy {
    Policy::custom(|attempt| {
        let first = &attempt.previous()[0];
        let url = attempt.url();
        let same_origin = url.scheme() == first.scheme()
            && url.host_str() == first.host_str()
            && url.port_or_known_default() == first.port_or_known_default();
        if !same_origin {
            let refused = Refused("the source redirects to another host".into());
            attempt.error(refused)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(Refused(format!(
                "the source redirects more than {MAX_REDIRECTS} times"
            )))
        } else {
            attempt.follow()
        }
    })
}

impl HttpConnector for GuardedConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        // No proxy: a proxy would resolve the name itself, past the address filter.
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .redirect(same_origin_redirects())
            .dns_resolver(Arc::new(PublicOnly(self.clone())))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "HTTP",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(client))
    }
}

/// Resolves names, keeping only public addresses unless the host is allow-listed.
struct PublicOnly(GuardedConnector);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_internal = self.0.allows_internal(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| allow_internal || !is_internal(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(format!(
                    "{host} resolves only to internal addresses (allow it with \
                     sources.allowed_internal_hosts)"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The guard's refusal, if it is somewhere in `error`'s chain.
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fec0::1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "142.250.74.78", "2a00:1450:4001::1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
