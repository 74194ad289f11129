//! Which addresses a webhook may reach: the checks on literal hosts at
//! creation ([`refused_host`], every numeric IPv4 spelling) and on the
//! addresses actually connected to ([`CheckedResolver`], [`GuardedConnector`]),
//! refusing loopback, private, shared, link-local (metadata), unique-local,
//! multicast, documentation and unspecified ranges and their IPv6 spellings
//! unless `--webhook-allow-private-targets` is set. Owns no state.

use super::{ATTEMPT_TIMEOUT, REFUSED_TARGET};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;

/// The connect-time refusal of a target address.
#[derive(Debug, thiserror::Error)]
#[error("{REFUSED_TARGET}")]
pub struct RefusedTarget;

/// Whether `ip` is an address webhooks must not reach without
/// `--webhook-allow-private-targets`.
pub fn refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) carry an IPv4 address.
            if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return v6.is_unspecified() || v6.is_loopback() || refused_v4(embedded(segments[6], segments[7]));
            }
            // 6to4 (2002::/16) carries one in its second and third groups.
            if segments[0] == 0x2002 && refused_v4(embedded(segments[1], segments[2])) {
                return true;
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254)
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (segments[0] == 0x64 && segments[1] == 0xff9b) // NAT64 local use 64:ff9b:1::/48
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || (segments[0] == 0x2001 && segments[1] == 0) // Teredo: an IPv4 address in disguise
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", 0.0.0.0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata
        || (a == 100 && (b & 0xc0) == 64) // shared 100.64/10 (Alibaba metadata 100.100.100.200)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || ip.is_documentation()
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || ip.is_multicast()
        || a >= 240 // reserved and broadcast
}

/// The IPv4 address `inet_aton` (and so `getaddrinfo`) reads from `host`:
/// one to four parts, each decimal, `0x` hex or `0` octal, the last filling
/// the remaining bytes (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`).
pub fn loose_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let value = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            if hex.is_empty() { Some(0) } else { u64::from_str_radix(hex, 16).ok() }
        } else if part.len() > 1 && part.starts_with('0') {
            u64::from_str_radix(&part[1..], 8).ok()
        } else if !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()) {
            part.parse::<u64>().ok()
        } else {
            None
        };
        values.push(value?);
    }
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|value| *value > 255) {
        return None;
    }
    let remaining_bits = 8 * (4 - leading.len() as u32);
    if remaining_bits < 64 && *last >= 1u64 << remaining_bits {
        return None;
    }
    let address = leading.iter().fold(0u64, |address, value| (address << 8) | value) << remaining_bits | last;
    Some(Ipv4Addr::from(address as u32))
}

/// Whether a URL's host is refused without looking it up: `localhost` names,
/// refused literal addresses and the numeric IPv4 spellings of them.
pub fn refused_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return refused_ip(ip);
    }
    loose_ipv4(&host).is_some_and(refused_v4)
}

/// Resolves webhook hosts and keeps only addresses that may be reached (all,
/// with `allow_private`); none left is an error, so the connection is never
/// attempted. The addresses returned are the ones connected to: a name that
/// resolves differently later (DNS rebinding) is checked again then.
#[derive(Clone)]
pub struct CheckedResolver {
    allow_private: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addresses) => addresses.collect(),
                Err(error) => return Err(Box::new(error) as BoxError),
            };
            let allowed: Vec<SocketAddr> = resolved.iter().copied().filter(|addr| allow_private || !refused_ip(addr.ip())).collect();
            if allowed.is_empty() && !resolved.is_empty() {
                return Err(Box::new(RefusedTarget) as BoxError);
            }
            Ok(allowed.into_iter())
        })
    }
}

/// hyper-util's connector with [`CheckedResolver`], plus the same check for
/// literal addresses (which the connector does not resolve).
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<CheckedResolver>,
    allow_private: bool,
}

impl GuardedConnector {
    pub fn new(allow_private: bool) -> GuardedConnector {
        let mut inner = HttpConnector::new_with_resolver(CheckedResolver { allow_private });
        inner.set_connect_timeout(Some(ATTEMPT_TIMEOUT));
        // https:// URIs reach it too: the TLS layer above wraps its stream.
        inner.enforce_http(false);
        GuardedConnector { inner, allow_private }
    }
}

impl tower::Service<http::Uri> for GuardedConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, context: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let literal =
            uri.host().map(|host| host.trim_start_matches('[').trim_end_matches(']')).and_then(|host| host.parse::<IpAddr>().ok());
        if !self.allow_private && literal.is_some_and(refused_ip) {
            return Box::pin(async { Err(Box::new(RefusedTarget) as BoxError) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// Whether an error (of the client, anywhere in its chain) is FLUO's own refusal.
pub(super) fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<RefusedTarget>() {
            return true;
        }
        current = error.source();
    }
    false
}
