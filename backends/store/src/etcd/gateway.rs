//! etcd's v3 API as its JSON gateway speaks it: the calls the backend makes, typed.
//!
//! The gateway is grpc-gateway over etcd's protobuf messages: bytes travel as base64, 64-bit
//! numbers as strings, fields at their zero value are left out, and an error is
//! `{"error", "message", "code"}` with a gRPC status code. See
//! <https://etcd.io/docs/v3.4/dev-guide/api_grpc_gateway/>.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::{CallError, Endpoints, Repeat};
use crate::StoreError;

/// The header every answer carries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Header {
    /// The store's revision after the call.
    #[serde(default, deserialize_with = "number")]
    pub revision: u64,
    /// The Raft term.
    #[serde(default, deserialize_with = "number")]
    pub raft_term: u64,
    /// The member that answered.
    #[serde(default, deserialize_with = "number")]
    pub member_id: u64,
}

/// A key and its value, as a range returns them.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue {
    /// The key, decoded.
    #[serde(deserialize_with = "bytes")]
    pub key: Vec<u8>,
    /// The value, decoded (empty for a delete event).
    #[serde(default, deserialize_with = "bytes")]
    pub value: Vec<u8>,
    /// The revision of its last change.
    #[serde(default, deserialize_with = "number")]
    pub mod_revision: u64,
}

/// `/v3/kv/range`.
#[derive(Debug, Deserialize)]
pub struct RangeAnswer {
    /// The header.
    #[serde(default)]
    pub header: Header,
    /// The pairs (none with `count_only`).
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
    /// How many keys are in the range.
    #[serde(default, deserialize_with = "number")]
    pub count: u64,
}

/// `/v3/kv/put`.
#[derive(Debug, Deserialize)]
pub struct PutAnswer {
    /// The header; its revision is the put's.
    #[serde(default)]
    pub header: Header,
}

/// `/v3/kv/deleterange`.
#[derive(Debug, Deserialize)]
pub struct DeleteAnswer {
    /// The header; its revision is the delete's when one was deleted.
    #[serde(default)]
    pub header: Header,
    /// How many keys were deleted.
    #[serde(default, deserialize_with = "number")]
    pub deleted: u64,
}

/// `/v3/maintenance/status`, one member's view.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusAnswer {
    /// The header (whose `member_id` is this member).
    #[serde(default)]
    pub header: Header,
    /// etcd's version.
    #[serde(default)]
    pub version: String,
    /// The size of its database file.
    #[serde(default, deserialize_with = "number")]
    pub db_size: u64,
    /// The member it believes leads (0: none).
    #[serde(default, deserialize_with = "number")]
    pub leader: u64,
    /// Its Raft log's last index.
    #[serde(default, deserialize_with = "number")]
    pub raft_index: u64,
    /// Its Raft term.
    #[serde(default, deserialize_with = "number")]
    pub raft_term: u64,
}

/// One member of `/v3/cluster/member/list`.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Its id.
    #[serde(rename = "ID", default, deserialize_with = "number")]
    pub id: u64,
    /// Its name (`etcd-1`); empty until it has started once.
    #[serde(default)]
    pub name: String,
    /// Where clients reach it.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

/// One change in etcd's history, as a watch replays it.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `PUT` (left out: the zero value) or `DELETE`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The key after the change (for a delete: the key and the revision only).
    pub kv: KeyValue,
}

#[derive(Debug, Deserialize)]
struct WatchMessage {
    result: Option<WatchResult>,
    error: Option<GatewayError>,
}

#[derive(Debug, Deserialize)]
struct WatchResult {
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default, deserialize_with = "number")]
    compact_revision: u64,
    #[serde(default)]
    canceled: bool,
}

/// An error as the gateway sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayError {
    /// etcd's message (`etcdserver: request is too large`).
    #[serde(default)]
    pub message: String,
    /// The gRPC status code.
    #[serde(default)]
    pub code: i32,
}

/// How long a write may wait for its answer. A put sent to a follower just as the leader
/// dies is forwarded to the dead leader and dropped; etcd answers "request timed out" only
/// after 7 s. Giving up sooner (the write is not acknowledged; it may or may not apply)
/// lets the next write go to the new leader soon after the election (1 s) instead. A
/// healthy cluster here answers a put in milliseconds, a busy one in tens.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The lab's calls to one cluster.
#[derive(Debug)]
pub struct Gateway {
    client: Endpoints,
}

/// What a watch over a window of history found.
#[derive(Debug, Default)]
pub struct History {
    /// The changes, oldest first.
    pub events: Vec<Event>,
    /// Set when etcd had already compacted part of the window: history starts here.
    pub compacted_to: Option<u64>,
}

impl Gateway {
    /// A gateway over `endpoints`, each answer within `timeout`.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Gateway, StoreError> {
        Ok(Gateway {
            client: Endpoints::new(endpoints, timeout).map_err(StoreError::Invalid)?,
        })
    }

    /// Run `call` (one of these) and wait for it: see [`Endpoints::wait`].
    pub fn wait<F: std::future::Future>(&self, call: F) -> F::Output {
        self.client.wait(call)
    }

    /// Run `call` without waiting for it: see [`Endpoints::spawn`].
    pub fn spawn(&self, call: impl std::future::Future<Output = ()> + Send + 'static) {
        self.client.spawn(call);
    }

    /// Send the next requests elsewhere than `url` (see [`Endpoints::avoid`]).
    pub fn avoid(&self, url: &str) {
        self.client.avoid(url);
    }

    /// The endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        self.client.urls().map(str::to_owned).collect()
    }

    /// Every key in `[key, range_end)` (`count_only`: only how many).
    pub async fn range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        count_only: bool,
    ) -> Result<RangeAnswer, StoreError> {
        let mut body = json!({ "key": B64.encode(key) });
        if let Some(end) = range_end {
            body["range_end"] = json!(B64.encode(end));
        }
        if count_only {
            body["count_only"] = json!(true);
        }
        self.call("/v3/kv/range", &body).await
    }

    /// Store `value` under `key`.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<PutAnswer, StoreError> {
        self.change(
            "/v3/kv/put",
            &json!({ "key": B64.encode(key), "value": B64.encode(value) }),
            Some(WRITE_TIMEOUT),
        )
        .await
    }

    /// Delete `[key, range_end)`, or `key` alone: one Raft proposal, so all or nothing.
    pub async fn delete(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
    ) -> Result<DeleteAnswer, StoreError> {
        let mut body = json!({ "key": B64.encode(key) });
        if let Some(end) = range_end {
            body["range_end"] = json!(B64.encode(end));
        }
        self.change("/v3/kv/deleterange", &body, Some(WRITE_TIMEOUT))
            .await
    }

    /// Drop the history before `revision` (physically: wait until it is gone from disk).
    pub async fn compact(&self, revision: u64) -> Result<Header, StoreError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            header: Header,
        }
        let a: Answer = self
            .change(
                "/v3/kv/compaction",
                &json!({ "revision": revision.to_string(), "physical": true }),
                None,
            )
            .await?;
        Ok(a.header)
    }

    /// The cluster's members, as any reachable member lists them.
    pub async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let list: MemberList = self.call("/v3/cluster/member/list", &json!({})).await?;
        Ok(list.members)
    }

    /// The member that leads now, as whichever member answers sees it; `None` during an
    /// election.
    pub async fn leader(&self) -> Result<Option<Member>, StoreError> {
        let members = self.members().await?;
        let status = self.status().await?;
        Ok(members
            .into_iter()
            .find(|m| status.leader != 0 && m.id == status.leader))
    }

    /// One member's own status, asked at `url` within `timeout`.
    pub async fn status_of(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<StatusAnswer, StoreError> {
        let answer = self
            .client
            .post_to_url(url, "/v3/maintenance/status", b"{}", timeout)
            .await
            .map_err(unavailable)?;
        decode(answer.status, &answer.body)
    }

    /// Status from whichever member answers.
    pub async fn status(&self) -> Result<StatusAnswer, StoreError> {
        self.call("/v3/maintenance/status", &json!({})).await
    }

    /// The changes to `[key, range_end)` from `start_revision` on, as etcd's history has
    /// them, up to `until` (the newest revision to wait for).
    pub async fn history(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: u64,
        until: u64,
    ) -> Result<History, StoreError> {
        // `fragment`: etcd splits a history larger than one message may be (the gateway's
        // gRPC client takes 4 MiB) into several, instead of sending none.
        let body = json!({ "create_request": {
            "key": B64.encode(key),
            "range_end": B64.encode(range_end),
            "start_revision": start_revision.to_string(),
            "fragment": true,
        }});
        let body = serde_json::to_vec(&body).map_err(|e| StoreError::Storage(e.to_string()))?;
        let mut history = History::default();
        let mut failure = None;
        self.client
            .stream(
                "/v3/watch",
                &body,
                Duration::from_millis(150),
                Duration::from_secs(5),
                |line| {
                    let message: WatchMessage = match serde_json::from_slice(line) {
                        Ok(m) => m,
                        Err(e) => {
                            failure = Some(format!("an unreadable watch message: {e}"));
                            return true;
                        }
                    };
                    if let Some(e) = message.error {
                        failure = Some(e.message);
                        return true;
                    }
                    let Some(result) = message.result else {
                        return false;
                    };
                    if result.compact_revision > 0 {
                        history.compacted_to = Some(result.compact_revision);
                    }
                    history.events.extend(result.events);
                    result.canceled
                        || history
                            .events
                            .last()
                            .is_some_and(|e| e.kv.mod_revision >= until)
                },
            )
            .await
            .map_err(unavailable)?;
        match failure {
            Some(why) => Err(StoreError::Storage(format!("etcd's watch failed: {why}"))),
            None => Ok(history),
        }
    }

    /// A call that changes nothing: it may be asked again of another member.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, StoreError> {
        self.send(path, body, None, Repeat::Safe).await
    }

    /// A call that changes the store, answered within `timeout` (or the client's own):
    /// never sent twice (see [`Repeat::Never`]).
    async fn change<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<T, StoreError> {
        self.send(path, body, timeout, Repeat::Never).await
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Option<Duration>,
        repeat: Repeat,
    ) -> Result<T, StoreError> {
        let body = serde_json::to_vec(body).map_err(|e| StoreError::Storage(e.to_string()))?;
        let answer = self
            .client
            .post(path, &body, timeout, repeat)
            .await
            .map_err(unavailable)?;
        decode(answer.status, &answer.body)
    }
}

fn unavailable(e: CallError) -> StoreError {
    StoreError::Storage(format!("etcd is unavailable: {e}"))
}

/// An answer's body, or the error it carries, as the lab's error.
fn decode<T: for<'de> Deserialize<'de>>(status: u16, body: &[u8]) -> Result<T, StoreError> {
    if status == 200 {
        return serde_json::from_slice(body)
            .map_err(|e| StoreError::Storage(format!("etcd answered something unreadable: {e}")));
    }
    let error: GatewayError = serde_json::from_slice(body).unwrap_or_else(|_| GatewayError {
        message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        code: 0,
    });
    Err(classify(status, &error))
}

/// gRPC codes to the lab's errors: what the client can fix is 4xx, the rest is 503.
fn classify(status: u16, error: &GatewayError) -> StoreError {
    let message = format!("etcd: {}", error.message);
    match error.code {
        // InvalidArgument, from a request etcd refuses for its content.
        3 if error.message.contains("too large") => StoreError::TooLarge(format!(
            "{message} (etcd's --max-request-bytes, 1.5 MiB by default, limits a value)"
        )),
        3 | 11 => StoreError::Invalid(message),
        _ => StoreError::Storage(format!(
            "{message} (HTTP {status}, gRPC code {})",
            error.code
        )),
    }
}

/// A 64-bit number, as a string (how the gateway sends them) or as a number.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Text(String),
        Plain(u64),
    }
    match Number::deserialize(d)? {
        Number::Plain(n) => Ok(n),
        Number::Text(s) => s.parse().map_err(de::Error::custom),
    }
}

/// Bytes, as base64 text.
fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    B64.decode(text.as_bytes()).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_as_the_gateway_writes_them() {
        let range: RangeAnswer = decode(
            200,
            br#"{"header":{"cluster_id":"1","member_id":"7","revision":"2","raft_term":"2"},"kvs":[{"key":"d2FsYWIvYQ==","create_revision":"2","mod_revision":"2","version":"1","value":"eyJ4IjoxfQ=="}],"count":"1"}"#,
        )
        .unwrap();
        assert_eq!(range.header.revision, 2);
        assert_eq!(range.kvs[0].key, b"walab/a");
        assert_eq!(range.kvs[0].value, br#"{"x":1}"#);
        assert_eq!(range.count, 1);
        let empty: RangeAnswer = decode(200, br#"{"header":{"revision":"9"}}"#).unwrap();
        assert_eq!((empty.count, empty.kvs.len()), (0, 0));
        let deleted: DeleteAnswer = decode(200, br#"{"header":{}}"#).unwrap();
        assert_eq!(deleted.deleted, 0);
    }

    #[test]
    fn errors_become_the_labs_errors() {
        let too_large = decode::<PutAnswer>(
            400,
            br#"{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}"#,
        )
        .unwrap_err();
        assert!(
            matches!(too_large, StoreError::TooLarge(_)),
            "{too_large:?}"
        );
        let no_leader = decode::<PutAnswer>(
            503,
            br#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#,
        )
        .unwrap_err();
        assert!(matches!(no_leader, StoreError::Storage(ref m) if m.contains("no leader")));
        let garbage = decode::<PutAnswer>(502, b"Bad Gateway").unwrap_err();
        assert!(matches!(garbage, StoreError::Storage(ref m) if m.contains("Bad Gateway")));
    }
}
