//! Destinations may reach public addresses only, and the networks the operator lists in
//! `allowed_destination_networks`: a member must not be able to make the server probe its own
//! network (a cloud metadata service, a database port, an admin interface).
//!
//! Names are checked when a destination is saved, and again when a webhook is sent: the
//! webhook client resolves through [`GuardedResolver`], which refuses a name with any
//! address outside the policy and hands the client exactly the addresses it checked, so the
//! connection goes where the check looked (no window for a DNS answer that changes between
//! the check and the connection).

use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use rekey_core::notify::{
    url_host_port, AddressPolicy, DestinationCheck, Target, ADDRESS_NOT_ALLOWED,
};

/// The check when a destination is saved, and the webhook sink's resolver.
#[derive(Clone, Debug, Default)]
pub struct DestinationGuard {
    policy: AddressPolicy,
}

/// A name or address the policy refuses (the resolver's error, found again in the client's
/// error chain to tell the member why, in safe words).
#[derive(Debug)]
pub struct NotAllowed;

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(ADDRESS_NOT_ALLOWED)
    }
}

impl std::error::Error for NotAllowed {}

impl DestinationGuard {
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// `Ok` when every address `url` reaches is allowed. A name that does not resolve now is
    /// let through: it is checked again at every send.
    pub async fn check_url(&self, url: &str) -> Result<(), NotAllowed> {
        // A URL the client cannot read is never sent either; validation refuses it first.
        let Some((host, port)) = url_host_port(url) else {
            return Err(NotAllowed);
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.policy.permits(ip).then_some(()).ok_or(NotAllowed);
        }
        match resolve(&self.policy, &host, port).await {
            Err(ResolveError::NotAllowed) => Err(NotAllowed),
            _ => Ok(()),
        }
    }

    /// The resolver for the webhook client.
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver {
            policy: self.policy.clone(),
        }
    }
}

#[async_trait]
impl DestinationCheck for DestinationGuard {
    async fn check(&self, target: &Target) -> Result<(), String> {
        let url = match target {
            Target::Webhook { url } => url,
            other => match other.aws_endpoint_override() {
                Some(url) => url,
                None => return Ok(()),
            },
        };
        self.check_url(url).await.map_err(|e| e.to_string())
    }
}

enum ResolveError {
    NotAllowed,
    Lookup(std::io::Error),
}

/// Every address of `host`, if all of them are allowed.
async fn resolve(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(ResolveError::Lookup)?
        .collect();
    // One internal address is enough to refuse: the client might pick it.
    if addrs.iter().any(|a| !policy.permits(a.ip())) {
        return Err(ResolveError::NotAllowed);
    }
    Ok(addrs)
}

/// reqwest's resolver for webhooks: the system's answer, refused whole if any address is
/// outside the policy. (reqwest does not resolve IP literals: the sink checks those itself.)
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            match resolve(&policy, name.as_str(), 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(ResolveError::NotAllowed) => Err(Box::new(NotAllowed) as _),
                Err(ResolveError::Lookup(e)) => Err(Box::new(e) as _),
            }
        })
    }
}

/// Whether `error` (or one of its causes) is the guard's refusal.
pub fn is_not_allowed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<NotAllowed>() {
            return true;
        }
        current = e.source();
    }
    false
}
