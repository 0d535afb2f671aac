//! Services posting events to belterd's ingest API: one keep-alive HTTP client shared by
//! several concurrent posters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use belter_common::api::IngestResponse;
use bytes::Bytes;
use reqwest::StatusCode;

/// Idle keep-alive connections the posters keep; more than any `--concurrency` in use.
const MAX_IDLE_CONNECTIONS: usize = 1024;

/// A client of one daemon's ingest API.
#[derive(Debug, Clone)]
pub struct IngestClient {
    http: reqwest::Client,
    url: String,
    authorization: String,
}

/// The response to one post.
#[derive(Debug)]
pub struct Posted {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response body.
    pub body: Bytes,
}

impl IngestClient {
    /// Creates a client that posts to `url` with `token`.
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .build()
            .context("cannot build the ingest HTTP client")?;
        Ok(Self {
            http,
            url: url.to_owned(),
            authorization: format!("Bearer {token}"),
        })
    }

    /// Posts one ingest body.
    pub async fn post(&self, body: Bytes) -> reqwest::Result<Posted> {
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok(Posted { status, body })
    }

    /// Posts one ingest body and returns the parsed body of its 202 response.
    pub async fn post_accepted(&self, body: Bytes) -> anyhow::Result<IngestResponse> {
        let posted = self.post(body).await.context("ingest request failed")?;
        if posted.status != StatusCode::ACCEPTED {
            anyhow::bail!(
                "ingest responded {}: {}",
                posted.status,
                String::from_utf8_lossy(&posted.body)
            );
        }
        serde_json::from_slice(&posted.body).context("invalid ingest response")
    }
}

/// Counters shared by the posters of one phase.
#[derive(Debug, Default)]
pub struct PostCounts {
    /// Events whose request got 202.
    pub accepted: AtomicU64,
    /// Events whose request got another response or failed.
    pub rejected: AtomicU64,
}

impl PostCounts {
    /// Returns the responses with 202 so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Returns the rejected or failed requests so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// The end of posting: a deadline, a number of posts, or whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct PostLimit {
    /// Stop starting posts at this time.
    pub until: Instant,
    /// Stop after this many posts were started.
    pub max_posts: u64,
}

impl PostLimit {
    /// Creates a limit of `duration` from now, with no count limit.
    pub fn for_duration(duration: Duration) -> Self {
        Self {
            until: Instant::now() + duration,
            max_posts: u64::MAX,
        }
    }
}

/// Runs `posters` concurrent loops that post `body_for(n)` for the n-th post until `limit`,
/// each waiting for its response before the next post, and counts `events_per_post` events per
/// post. Returns when every loop has ended.
pub async fn post_closed_loop(
    client: &IngestClient,
    posters: usize,
    limit: PostLimit,
    counts: Arc<PostCounts>,
    events_per_post: u64,
    body_for: impl Fn(u64) -> Bytes + Send + Sync + 'static,
) {
    let started = Arc::new(AtomicU64::new(0));
    let body_for = Arc::new(body_for);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..posters {
        let client = client.clone();
        let counts = Arc::clone(&counts);
        let started = Arc::clone(&started);
        let body_for = Arc::clone(&body_for);
        tasks.spawn(async move {
            while Instant::now() < limit.until {
                let number = started.fetch_add(1, Ordering::Relaxed);
                if number >= limit.max_posts {
                    break;
                }
                let counter = match client.post(body_for(number)).await {
                    Ok(posted) if posted.status == StatusCode::ACCEPTED => &counts.accepted,
                    _ => &counts.rejected,
                };
                counter.fetch_add(events_per_post, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
