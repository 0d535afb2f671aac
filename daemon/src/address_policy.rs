//! Which addresses deliveries may connect to. By default nothing on loopback, private,
//! link-local, unique-local, shared, multicast, reserved or cloud metadata ranges is reachable,
//! so an endpoint URL cannot aim the daemon at internal services. Operators open ranges with an
//! allowlist of CIDRs. The check runs on the resolved addresses as the connection is made, so a
//! host name that resolves to an internal address later (DNS rebinding) is caught too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Text every blocked attempt's error starts with.
pub(crate) const BLOCKED: &str = "blocked by policy";

/// A CIDR that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {0:?} in allow_networks or --allow-network: expected a CIDR such as 127.0.0.0/8 or fd00::/8")]
pub struct NetworkError(pub String);

/// Parses a CIDR, or a bare address as a single-host network.
pub fn parse_network(text: &str) -> Result<IpNet, NetworkError> {
    let text = text.trim();
    if let Ok(network) = text.parse::<IpNet>() {
        return Ok(network);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| NetworkError(text.to_owned()))
}

/// The delivery address policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressPolicy {
    allowed: Arc<Vec<IpNet>>,
}

impl AddressPolicy {
    /// A policy that opens `allowed` on top of the public internet.
    pub(crate) fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// Returns whether deliveries may connect to `ip`.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|network| network.contains(&ip)) || !is_internal(ip)
    }

    /// Builds the error message of a blocked address.
    pub(crate) fn blocked_message(host: &str, addresses: &[IpAddr]) -> String {
        let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        let reason = if shown.len() == 1 && shown[0] == host {
            format!("{host} is an internal address")
        } else {
            format!(
                "{host} resolves to {} only, which is internal",
                shown.join(", ")
            )
        };
        format!(
            "{BLOCKED}: {reason}; add its range to allow_networks in the config file, or pass \
             --allow-network, to deliver there"
        )
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address, so `::ffff:127.0.0.1` is treated as loopback.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(_) => ip,
    }
}

/// Returns whether an address is outside the public internet.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, cloud metadata included
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // 0.0.0.0/8, "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10, carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15, benchmarking
        || a >= 240 // 240.0.0.0/4, reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local, fd00:ec2::254 included
        || (first & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0 // fec0::/10 site-local, deprecated
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // 2001:db8::/32 documentation
        || embedded_v4_internal(ip)
}

/// Whether an IPv6 address that carries an IPv4 address carries an internal one: NAT64
/// (64:ff9b::/96), IPv4-compatible (::/96, deprecated) and 6to4 (2002::/16).
fn embedded_v4_internal(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded = if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
        Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15])
    } else if segments[0] == 0x2002 {
        Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])
    } else {
        return false;
    };
    is_internal_v4(embedded)
}

/// The resolver of the delivery client: system DNS, then the policy on every address.
#[derive(Debug, Clone)]
pub(crate) struct PolicyResolver {
    pub(crate) policy: AddressPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| policy.permits(addr.ip()))
                .collect();
            if permitted.is_empty() && !resolved.is_empty() {
                let addresses: Vec<IpAddr> = resolved.iter().map(SocketAddr::ip).collect();
                let message = AddressPolicy::blocked_message(&host, &addresses);
                return Err(message.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocked_message_names_host_and_fix() {
        let literal = AddressPolicy::blocked_message("127.0.0.1", &[ip("127.0.0.1")]);
        assert!(
            literal.contains("127.0.0.1 is an internal address"),
            "{literal}"
        );
        assert!(!literal.contains("resolves"), "{literal}");
        let named = AddressPolicy::blocked_message("hooks.test", &[ip("10.0.0.7"), ip("::1")]);
        assert!(
            named.contains("hooks.test resolves to 10.0.0.7, ::1 only"),
            "{named}"
        );
        for message in [&literal, &named] {
            assert!(message.starts_with(BLOCKED), "{message}");
            assert!(message.contains("allow_networks"), "{message}");
            assert!(message.contains("--allow-network"), "{message}");
        }
    }

    #[test]
    fn internal_ranges_are_blocked_by_default() {
        let policy = AddressPolicy::default();
        let blocked = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ];
        for address in blocked {
            assert!(!policy.permits(ip(address)), "{address} should be blocked");
        }
        for address in [
            "93.184.216.34",
            "2606:4700::6810:84e5",
            "8.8.8.8",
            "2002:5db8:d822::1",
        ] {
            assert!(policy.permits(ip(address)), "{address} should be allowed");
        }
    }

    #[test]
    fn allowlist_opens_ranges() {
        let policy = AddressPolicy::new(vec![parse_network("127.0.0.0/8").unwrap()]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.2")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }

    #[test]
    fn networks_parse_with_and_without_prefix() {
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_network("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        let error = parse_network("10.0.0.0/33").unwrap_err();
        assert!(error.to_string().contains("10.0.0.0/33"));
        let error = parse_network("").unwrap_err().to_string();
        assert!(
            error.contains("allow_networks or --allow-network"),
            "{error}"
        );
    }
}
