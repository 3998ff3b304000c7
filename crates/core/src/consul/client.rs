//! The HTTP side: one [`Client`] per agent, a timeout on every request, responses streamed so that
//! a large prefix is never held in memory at once.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use ureq::http::Response;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use super::config::{ConsulConfig, Secret};
use super::txn::{encode_body, TxnOp};
use crate::error::{Error, Result};

/// One KV entry as Consul returns it; the value stays base64 until [`KvEntry::value`] is called.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KvEntry {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Flags", default)]
    pub flags: u64,
    #[serde(rename = "Value", default)]
    pub value_b64: Option<String>,
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
    #[serde(rename = "Session", default)]
    pub session: Option<String>,
}

impl KvEntry {
    /// The decoded value (an empty value is `null` in Consul's JSON).
    pub fn value(&self) -> Result<Vec<u8>> {
        match &self.value_b64 {
            None => Ok(Vec::new()),
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| Error::Protocol {
                    what: format!("key {}", self.key),
                    detail: format!("value is not base64: {e}"),
                }),
        }
    }

    /// Whether a session holds the lock on this key.
    pub fn is_locked(&self) -> bool {
        self.session.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// The `X-Consul-Index` of a read: the Raft index the answer reflects.
pub type ReadIndex = u64;

/// What a transaction did.
#[derive(Debug)]
pub enum TxnOutcome {
    /// Applied; the entries the operations returned, in operation order: sets, CAS, locks and
    /// gets return theirs, `check-index` and `check-session` return theirs without value, deletes
    /// and `check-not-exists` return none.
    Applied(Vec<KvEntry>),
    /// Rolled back as a whole; each error names the operation that failed.
    RolledBack(Vec<(usize, String)>),
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(rename = "Results", default)]
    results: Option<Vec<TxnResult>>,
    #[serde(rename = "Errors", default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<KvEntry>,
}

#[derive(Deserialize)]
struct TxnError {
    #[serde(rename = "OpIndex")]
    op_index: usize,
    #[serde(rename = "What")]
    what: String,
}

/// Counts the bytes of response bodies read from the agent.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A Consul HTTP API client bound to one agent.
#[derive(Clone)]
pub struct Client {
    agent: Agent,
    base: String,
    address: String,
    token: Option<Secret>,
    datacenter: Option<String>,
    timeout: Duration,
    bytes_read: Arc<AtomicU64>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// Percent-encodes a KV key for a URL path, keeping `/` as the separator.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn tls_config(config: &ConsulConfig) -> Result<TlsConfig> {
    let mut builder = TlsConfig::builder().disable_verification(!config.tls.verify);
    if let Some(ca) = &config.tls.ca_file {
        let pem = read_pem(ca)?;
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Config(format!("{}: {e}", ca.display())));
                }
            }
        }
        if roots.is_empty() {
            return Err(Error::Config(format!(
                "{}: no certificate found",
                ca.display()
            )));
        }
        builder = builder.root_certs(RootCerts::Specific(Arc::new(roots)));
    }
    if let (Some(cert), Some(key)) = (&config.tls.client_cert, &config.tls.client_key) {
        let cert_pem = read_pem(cert)?;
        let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let key_pem = read_pem(key)?;
        let key = PrivateKey::from_pem(&key_pem)
            .map_err(|e| Error::Config(format!("{}: {e}", key.display())))?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}

impl Client {
    pub fn new(config: &ConsulConfig) -> Result<Client> {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.timeout.min(Duration::from_secs(5))))
            .timeout_recv_response(Some(config.timeout))
            .timeout_recv_body(Some(config.timeout * 6))
            .timeout_send_body(Some(config.timeout))
            .user_agent(concat!("fileconsul/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(8)
            .tls_config(tls_config(config)?)
            .build()
            .into();
        Ok(Client {
            agent,
            base: config.base_url(),
            address: config.address.clone(),
            token: config.token.clone(),
            datacenter: config.datacenter.clone(),
            timeout: config.timeout,
            bytes_read: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The agent's address, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Bytes of responses (status lines, headers and bodies) read so far by this client and its
    /// clones.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{}", self.base, path);
        let mut params: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.to_string()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        if let Some(dc) = &self.datacenter {
            params.push(format!("dc={}", encode_key(dc)));
        }
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        url
    }

    fn unreachable(&self, e: ureq::Error) -> Error {
        Error::Unreachable {
            addr: self.address.clone(),
            detail: e.to_string(),
        }
    }

    /// Sends a `GET` (any other `method` is a `PUT` with `body`), with the token and a response
    /// timeout of the configured one plus `extra_wait`.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
        extra_wait: Duration,
    ) -> Result<Response<Body>> {
        let url = self.url(path, query);
        let timeout = Some(self.timeout + extra_wait);
        let result = match method {
            "GET" => {
                let mut req = self.agent.get(&url);
                if let Some(token) = &self.token {
                    req = req.header("X-Consul-Token", token.expose());
                }
                req.config().timeout_recv_response(timeout).build().call()
            }
            _ => {
                let mut req = self.agent.put(&url);
                if let Some(token) = &self.token {
                    req = req.header("X-Consul-Token", token.expose());
                }
                let req = req.config().timeout_recv_response(timeout).build();
                req.send(body.unwrap_or_default())
            }
        };
        let response = result.map_err(|e| self.unreachable(e))?;
        self.count_head(&response);
        Ok(response)
    }

    fn read_body(&self, response: Response<Body>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader(response)
            .read_to_end(&mut out)
            .map_err(|e| Error::Unreachable {
                addr: self.address.clone(),
                detail: format!("reading the answer: {e}"),
            })?;
        Ok(out)
    }

    /// Counts the status line and headers of a response as bytes read from the agent.
    fn count_head(&self, response: &Response<Body>) {
        let headers: usize = response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        self.bytes_read
            .fetch_add((headers + 17) as u64, Ordering::Relaxed);
    }

    fn reader(&self, response: Response<Body>) -> impl Read {
        Counting {
            inner: response.into_body().into_reader(),
            counter: self.bytes_read.clone(),
        }
    }

    /// Turns a non-success status into an error naming `what`.
    fn status_error(&self, what: &str, response: Response<Body>) -> Error {
        let status = response.status().as_u16();
        let body = self.read_body(response).unwrap_or_default();
        let body = String::from_utf8_lossy(&body)
            .trim()
            .chars()
            .take(500)
            .collect::<String>();
        if status == 403 {
            Error::PermissionDenied {
                what: what.to_owned(),
                body,
            }
        } else {
            Error::Http {
                addr: self.address.clone(),
                status,
                what: what.to_owned(),
                body,
            }
        }
    }

    fn index_of(response: &Response<Body>) -> ReadIndex {
        response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Reads every entry under `prefix` with one recursive read, handing each to `each` as it is
    /// parsed. A prefix with no keys (404) is an empty read, not an error.
    pub fn list(
        &self,
        prefix: &str,
        mut each: impl FnMut(KvEntry) -> Result<()>,
    ) -> Result<ReadIndex> {
        let what = format!("the read of {prefix}");
        let response = self.send(
            "GET",
            &format!("/v1/kv/{}", encode_key(prefix)),
            &[("recurse", String::new())],
            None,
            Duration::ZERO,
        )?;
        let index = Self::index_of(&response);
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(index),
            _ => return Err(self.status_error(&what, response)),
        }
        let reader = BufReader::with_capacity(64 * 1024, self.reader(response));
        let mut failure: Option<Error> = None;
        let mut de = serde_json::Deserializer::from_reader(reader);
        let seed = EachEntry {
            each: &mut each,
            failure: &mut failure,
            _marker: PhantomData,
        };
        let parsed = seed.deserialize(&mut de);
        if let Some(err) = failure {
            return Err(err);
        }
        parsed.map_err(|e| {
            if e.is_io() {
                Error::Unreachable {
                    addr: self.address.clone(),
                    detail: format!("{what} broke off: {e}"),
                }
            } else {
                Error::Protocol {
                    what,
                    detail: e.to_string(),
                }
            }
        })?;
        Ok(index)
    }

    /// Reads one key; `None` when it does not exist. With `block`, this is a blocking query that
    /// returns when the key's index passes `index` or `wait` elapses.
    pub fn get(
        &self,
        key: &str,
        block: Option<(ReadIndex, Duration)>,
    ) -> Result<(Option<KvEntry>, ReadIndex)> {
        let mut query = Vec::new();
        let mut extra = Duration::ZERO;
        if let Some((index, wait)) = block {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", wait.as_millis())));
            // Consul adds up to wait/16 of jitter to a blocking query.
            extra = wait + wait / 16;
        }
        let response = self.send(
            "GET",
            &format!("/v1/kv/{}", encode_key(key)),
            &query,
            None,
            extra,
        )?;
        let index = Self::index_of(&response);
        match response.status().as_u16() {
            200 => {
                let body = self.read_body(response)?;
                let mut entries: Vec<KvEntry> =
                    serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                        what: format!("the read of {key}"),
                        detail: e.to_string(),
                    })?;
                Ok((entries.pop(), index))
            }
            404 => Ok((None, index)),
            _ => Err(self.status_error(&format!("the read of {key}"), response)),
        }
    }

    /// Writes `value` at `key` only if its `ModifyIndex` is `cas` (0: only if absent), through the
    /// plain KV endpoint (for values too large for a transaction). Returns whether it was written.
    pub fn put_cas(&self, key: &str, value: &[u8], flags: u64, cas: u64) -> Result<bool> {
        let response = self.send(
            "PUT",
            &format!("/v1/kv/{}", encode_key(key)),
            &[("cas", cas.to_string()), ("flags", flags.to_string())],
            Some(value),
            Duration::ZERO,
        )?;
        if response.status().as_u16() != 200 {
            return Err(self.status_error(&format!("the write of {key}"), response));
        }
        let body = self.read_body(response)?;
        Ok(body.trim_ascii() == b"true")
    }

    /// Runs one transaction. A 409 is not an error: it is [`TxnOutcome::RolledBack`].
    pub fn txn(&self, ops: &[TxnOp]) -> Result<TxnOutcome> {
        let body = encode_body(ops);
        let response = self.send("PUT", "/v1/txn", &[], Some(&body), Duration::ZERO)?;
        let status = response.status().as_u16();
        if status != 200 && status != 409 {
            return Err(self.status_error("a transaction", response));
        }
        let raw = self.read_body(response)?;
        let parsed: TxnResponse = serde_json::from_slice(&raw).map_err(|e| Error::Protocol {
            what: "a transaction".into(),
            detail: e.to_string(),
        })?;
        if status == 409 {
            let errors = parsed
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.op_index, e.what))
                .collect();
            return Ok(TxnOutcome::RolledBack(errors));
        }
        Ok(TxnOutcome::Applied(
            parsed
                .results
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.kv)
                .collect(),
        ))
    }

    /// Creates a session that releases its locks when it ends, and returns its ID.
    pub fn create_session(&self, name: &str, ttl: Duration, behavior: &str) -> Result<String> {
        let body = serde_json::json!({
            "Name": name,
            "TTL": format!("{}s", ttl.as_secs().max(10)),
            "LockDelay": "0s",
            "Behavior": behavior,
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let response = self.send(
            "PUT",
            "/v1/session/create",
            &[],
            Some(&body),
            Duration::ZERO,
        )?;
        if response.status().as_u16() != 200 {
            return Err(self.status_error("creating a session", response));
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let raw = self.read_body(response)?;
        let created: Created = serde_json::from_slice(&raw).map_err(|e| Error::Protocol {
            what: "creating a session".into(),
            detail: e.to_string(),
        })?;
        Ok(created.id)
    }

    /// Renews a session's TTL; `false` when the session no longer exists.
    pub fn renew_session(&self, id: &str) -> Result<bool> {
        let response = self.send(
            "PUT",
            &format!("/v1/session/renew/{id}"),
            &[],
            None,
            Duration::ZERO,
        )?;
        match response.status().as_u16() {
            200 => {
                let _ = self.read_body(response);
                Ok(true)
            }
            404 => Ok(false),
            _ => Err(self.status_error("renewing a session", response)),
        }
    }

    pub fn destroy_session(&self, id: &str) -> Result<()> {
        let response = self.send(
            "PUT",
            &format!("/v1/session/destroy/{id}"),
            &[],
            None,
            Duration::ZERO,
        )?;
        if response.status().as_u16() != 200 {
            return Err(self.status_error("destroying a session", response));
        }
        let _ = self.read_body(response);
        Ok(())
    }

    /// The name of the node the agent runs as.
    pub fn node_name(&self) -> Result<String> {
        let response = self.send("GET", "/v1/agent/self", &[], None, Duration::ZERO)?;
        if response.status().as_u16() != 200 {
            return Err(self.status_error("reading the agent's configuration", response));
        }
        let raw = self.read_body(response)?;
        let value: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::Protocol {
                what: "the agent's configuration".into(),
                detail: e.to_string(),
            })?;
        value["Config"]["NodeName"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol {
                what: "the agent's configuration".into(),
                detail: "no Config.NodeName".into(),
            })
    }
}

/// Deserializes a JSON array of entries one at a time, handing each to a callback.
struct EachEntry<'a, F> {
    each: &'a mut F,
    failure: &'a mut Option<Error>,
    _marker: PhantomData<()>,
}

impl<'de, F: FnMut(KvEntry) -> Result<()>> DeserializeSeed<'de> for EachEntry<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, F: FnMut(KvEntry) -> Result<()>> Visitor<'de> for EachEntry<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of KV entries or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<KvEntry>()? {
            if let Err(err) = (self.each)(entry) {
                *self.failure = Some(err);
                return Err(serde::de::Error::custom("stopped by the caller"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::encode_key;

    #[test]
    fn keys_are_percent_encoded_except_slashes() {
        assert_eq!(encode_key("p/a b/c?d#e%"), "p/a%20b/c%3Fd%23e%25");
        assert_eq!(encode_key("p/ü"), "p/%C3%BC");
    }
}
