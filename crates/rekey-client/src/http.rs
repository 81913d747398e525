//! Sending requests: error decoding and the retry policy.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

use crate::error::{ClientError, ErrorBody};

/// A response with its status and headers, as the SDKs' `...WithHttpInfo` variants return.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub data: T,
}

impl<T> ApiResponse<T> {
    /// `x-amzn-RequestId` (SP-API) or `x-request-id` (Rekey, CSP).
    pub fn request_id(&self) -> Option<&str> {
        request_id(&self.headers)
    }

    /// `x-amzn-RateLimit-Limit`, requests per second.
    pub fn rate_limit(&self) -> Option<&str> {
        self.headers
            .get("x-amzn-ratelimit-limit")
            .and_then(|v| v.to_str().ok())
    }
}

fn request_id(h: &HeaderMap) -> Option<&str> {
    h.get("x-amzn-requestid")
        .or_else(|| h.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
}

/// When to try again. 429 is always safe to retry (the server did nothing), after the wait
/// the server asks for (`Retry-After`) or its rate implies (`x-amzn-RateLimit-Limit`), if that
/// wait is at most `max_delay`. 5xx and broken connections are retried only for requests
/// that are safe to repeat: a rotation whose answer was lost may have happened, and repeating
/// it would start a second one (see the crate docs of `rekey rotate` for what to do instead).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay)
    }
}

/// The wait a 429 asks for: `Retry-After` seconds, else one token at the advertised rate.
fn throttle_wait(h: &HeaderMap) -> Option<Duration> {
    if let Some(secs) = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    let rate: f64 = h
        .get("x-amzn-ratelimit-limit")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (rate > 0.0).then(|| Duration::from_secs_f64((1.0 / rate).min(86_400.0)))
}

#[derive(Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub retry: RetryPolicy,
}

impl Http {
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "the builder fails only without a TLS backend, which is compiled in"
    )]
    pub(crate) fn new(retry: RetryPolicy) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(concat!("rekey-client/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("the HTTP client builds");
        Self { client, retry }
    }

    /// Sends the request `build` makes, retrying as the policy allows.
    pub(crate) async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        safe_to_repeat: bool,
    ) -> Result<ApiResponse<Vec<u8>>, ClientError> {
        let mut attempt = 0;
        loop {
            let req = build(&self.client)
                .build()
                .map_err(|e| ClientError::Decode(e.to_string()))?;
            let url = req
                .url()
                .as_str()
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string();
            let res = match self.client.execute(req).await {
                Ok(r) => r,
                Err(e) => {
                    if safe_to_repeat && attempt < self.retry.max_retries {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(ClientError::Transport {
                        url,
                        message: e.without_url().to_string(),
                    });
                }
            };
            let status = res.status();
            let headers = res.headers().clone();
            let body = res
                .bytes()
                .await
                .map_err(|e| ClientError::Transport {
                    url: url.clone(),
                    message: e.without_url().to_string(),
                })?
                .to_vec();
            if status.is_success() {
                return Ok(ApiResponse {
                    status,
                    headers,
                    data: body,
                });
            }
            let wait = if status == StatusCode::TOO_MANY_REQUESTS {
                throttle_wait(&headers).or(Some(self.retry.backoff(attempt)))
            } else if safe_to_repeat && status.is_server_error() {
                Some(self.retry.backoff(attempt))
            } else {
                None
            };
            if let Some(wait) = wait.filter(|w| *w <= self.retry.max_delay) {
                if attempt < self.retry.max_retries {
                    tracing::debug!(%status, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            }
            return Err(ClientError::Http {
                status,
                body: ErrorBody::parse(&body),
                request_id: request_id(&headers).map(str::to_string),
                rate_limit: headers
                    .get("x-amzn-ratelimit-limit")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            });
        }
    }
}

/// Decodes a JSON body.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    r: ApiResponse<Vec<u8>>,
) -> Result<ApiResponse<T>, ClientError> {
    let data = serde_json::from_slice(&r.data).map_err(|e| ClientError::Decode(e.to_string()))?;
    Ok(ApiResponse {
        status: r.status,
        headers: r.headers,
        data,
    })
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters stay).
pub(crate) fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn a_429_waits_for_retry_after_or_one_token_at_the_advertised_rate() {
        let mut h = HeaderMap::new();
        h.insert("x-amzn-ratelimit-limit", HeaderValue::from_static("0.5"));
        assert_eq!(throttle_wait(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(throttle_wait(&h), Some(Duration::from_secs(7)));
        assert_eq!(throttle_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(200));
        assert_eq!(p.backoff(2), Duration::from_millis(800));
        assert_eq!(p.backoff(20), Duration::from_secs(10));
    }
}
