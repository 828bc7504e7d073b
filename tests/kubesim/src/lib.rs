//! A Kubernetes API for tests of the operator on a cluster of real
//! processes (issue 22): kube-fake-client's in-memory store behind a tower
//! service that behaves like the API server where the operator depends on
//! it.
//!
//! - **Watches deliver changes.** Every write goes through this service,
//!   which records it in an event log with the store's resource versions
//!   (the store's counter is global and grows with every write); a watch
//!   replays the log from the `resourceVersion` the client asks for (or
//!   lists first without one) and then streams `ADDED`, `MODIFIED` and
//!   `DELETED` events as they happen (a write that changes nothing makes
//!   none, and a server-side apply that changes nothing writes nothing), filtered by namespace, label selector
//!   and `metadata.name`/`metadata.namespace` field selectors, ending at
//!   `timeoutSeconds` (at most [`MAX_WATCH`]). Dependents the store deletes
//!   by owner reference produce `DELETED` events too. Lists carry a
//!   `resourceVersion` a watch can start from.
//! - **Server-side apply prunes.** An apply by a field manager removes the
//!   fields that manager applied before and no longer does, unless another
//!   manager applies them (kube-fake-client merges instead); lists are
//!   atomic. The service turns the apply into a replace of the result.
//! - **StatefulSet immutability.** An update that changes a StatefulSet's
//!   spec outside `replicas`, `ordinals`, `template`, `updateStrategy`,
//!   `persistentVolumeClaimRetentionPolicy` and `minReadySeconds` is
//!   refused with Kubernetes' 422 `Invalid` and its message.
//! - **Secrets' `stringData`** is moved into `data` when a Secret is
//!   created or replaced.
//! - **Graceful deletion.** Deleting an object with finalizers sets its
//!   `deletionTimestamp` (a `MODIFIED` event) and keeps it until a write
//!   leaves it without finalizers; then it is deleted (with its
//!   dependents, by owner reference).
//!
//! Not modelled: apply conflicts between managers (every apply
//! wins, as with `force`), admission webhooks, strategic merge of keyed
//! lists.

pub mod pods;
pub mod rules;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use kube::core::SelectorExt;
use parking_lot::Mutex;
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type SimBody = UnsyncBoxBody<Bytes, BoxError>;

/// The longest a watch stays open; the client then watches again from the
/// last resource version it saw, as with a real API server.
pub const MAX_WATCH: Duration = Duration::from_secs(60);

/// The API: build it from a kube-fake-client builder, hand out clients.
#[derive(Clone)]
pub struct KubeSim {
    service: SimService,
}

impl KubeSim {
    /// The API over the store `builder` makes (register the CRDs and status
    /// subresources there).
    pub async fn new(builder: kube_fake_client::ClientBuilder) -> Result<KubeSim, BoxError> {
        let store = builder.build().await?;
        Ok(KubeSim {
            service: SimService {
                store,
                state: Arc::new(State::default()),
            },
        })
    }

    /// A client of this API (as many as wanted; they share the store).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service.clone(), "default")
    }
}

/// One resource type and namespace ("" for all namespaces or cluster
/// scope) an event or a watch is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Collection {
    group: String,
    version: String,
    resource: String,
}

struct Path {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Path> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match *parts.first()? {
        "api" => (String::new(), &parts[1..]),
        "apis" => (parts.get(1)?.to_string(), &parts[2..]),
        _ => return None,
    };
    let version = rest.first()?.to_string();
    let rest = &rest[1..];
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    Some(Path {
        collection: Collection {
            group,
            version,
            resource: rest.first()?.to_string(),
        },
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Added,
    Modified,
    Deleted,
}

struct Entry {
    change: Change,
    collection: Collection,
    /// The store's resource version of the object (for a deletion: the
    /// highest version seen when it was recorded).
    rv: u64,
    object: Value,
}

#[derive(Default)]
struct Log {
    entries: Vec<Entry>,
    /// The highest resource version seen in any answer.
    max_rv: u64,
    /// The latest state of every object seen, by collection, namespace
    /// and name (for deletions and cascades).
    objects: HashMap<(Collection, String, String), Value>,
    /// What each field manager applied last, by object path.
    applied: HashMap<String, BTreeMap<String, Value>>,
}

#[derive(Default)]
struct State {
    log: Mutex<Log>,
    changed: tokio::sync::Notify,
    /// Objects being deleted that still have finalizers: their
    /// `deletionTimestamp` (the store cannot hold one set after creation).
    terminating: Mutex<HashMap<(Collection, String, String), String>>,
}

fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn key_of(collection: &Collection, object: &Value) -> (Collection, String, String) {
    let meta = &object["metadata"];
    (
        collection.clone(),
        meta["namespace"].as_str().unwrap_or("").to_string(),
        meta["name"].as_str().unwrap_or("").to_string(),
    )
}

impl State {
    /// Sets `metadata.deletionTimestamp` on `object` when it is being
    /// deleted.
    fn mark(&self, collection: &Collection, object: &mut Value) {
        let key = key_of(collection, object);
        if let Some(at) = self.terminating.lock().get(&key) {
            object["metadata"]["deletionTimestamp"] = Value::from(at.clone());
        }
    }

    fn record(&self, change: Change, collection: &Collection, mut object: Value) {
        self.mark(collection, &mut object);
        let mut log = self.log.lock();
        let key = key_of(collection, &object);
        let rv = match change {
            Change::Deleted => {
                log.objects.remove(&key);
                log.max_rv
            }
            _ => {
                let rv = rv_of(&object);
                log.max_rv = log.max_rv.max(rv);
                log.objects.insert(key, object.clone());
                rv
            }
        };
        log.entries.push(Entry {
            change,
            collection: collection.clone(),
            rv,
            object,
        });
        drop(log);
        self.changed.notify_waiters();
    }
}

#[derive(Clone)]
struct SimService {
    store: kube::Client,
    state: Arc<State>,
}

impl tower::Service<Request<Body>> for SimService {
    type Response = Response<SimBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        async move { this.handle(request).await }.boxed()
    }
}

/// The body of a create or replace of a Secret with its `stringData`
/// moved into `data` ([`rules::secret_string_data`]); any other body as
/// it is.
fn secret_body(path: &Path, method: &Method, body: Vec<u8>) -> Vec<u8> {
    let whole = *method == Method::POST || *method == Method::PUT;
    if path.collection.resource != "secrets" || path.subresource.is_some() || !whole {
        return body;
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(mut secret) => {
            rules::secret_string_data(&mut secret);
            serde_json::to_vec(&secret).unwrap_or(body)
        }
        Err(_) => body,
    }
}

fn full(status: StatusCode, body: Bytes) -> Response<SimBody> {
    let mut response = Response::new(Full::new(body).map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

fn status_error(code: StatusCode, reason: &str, message: &str) -> Response<SimBody> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    full(code, Bytes::from(body.to_string()))
}

fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes a query component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SimService {
    /// Sends a request to the store; returns its status and body.
    async fn store_call(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            request = request.header(http::header::CONTENT_TYPE, ct);
        }
        let response = self.store.send(request.body(Body::from(body))?).await?;
        let status = response.status();
        let bytes = response.into_body().collect_bytes().await?;
        Ok((status, bytes))
    }

    async fn handle(self, request: Request<Body>) -> Result<Response<SimBody>, BoxError> {
        let (parts, body) = request.into_parts();
        let body = body.collect_bytes().await?.to_vec();
        let uri = parts.uri.clone();
        let params = query_params(uri.query());
        let Some(path) = parse_path(uri.path()) else {
            let (status, bytes) = self
                .store_call(parts.method, &uri.to_string(), None, body)
                .await?;
            return Ok(full(status, bytes));
        };
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let watch = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
        match parts.method {
            Method::GET if watch => Ok(self.watch(path, params).await),
            Method::GET => {
                let (status, bytes) = self
                    .store_call(Method::GET, &uri.to_string(), None, body)
                    .await?;
                if !status.is_success() {
                    return Ok(full(status, bytes));
                }
                if path.name.is_some() {
                    let mut object: Value = serde_json::from_slice(&bytes)?;
                    self.state.mark(&path.collection, &mut object);
                    return Ok(full(status, Bytes::from(object.to_string())));
                }
                // A list: say which resource version it shows.
                let mut list: Value = serde_json::from_slice(&bytes)?;
                if let Some(items) = list["items"].as_array_mut() {
                    for item in items {
                        self.state.mark(&path.collection, item);
                    }
                }
                let items_max = list["items"]
                    .as_array()
                    .map(|items| items.iter().map(rv_of).max().unwrap_or(0))
                    .unwrap_or(0);
                let rv = self.state.log.lock().max_rv.max(items_max);
                list["metadata"]["resourceVersion"] = json!(rv.to_string());
                Ok(full(status, Bytes::from(list.to_string())))
            }
            Method::PATCH if content_type.as_deref() == Some("application/apply-patch+yaml") => {
                self.apply(&path, &uri, &params, &body).await
            }
            Method::PUT | Method::PATCH => {
                let body = secret_body(&path, &parts.method, body);
                let body = Self::without_deletion_timestamp(&parts.method, body);
                if path.collection.resource == "statefulsets" && path.subresource.is_none() {
                    if let Some(refused) = self
                        .check_statefulset(
                            &path,
                            &uri,
                            &parts.method,
                            content_type.as_deref(),
                            &body,
                        )
                        .await?
                    {
                        return Ok(refused);
                    }
                }
                if path.collection.resource == "persistentvolumeclaims"
                    && path.subresource.is_none()
                {
                    if let Some(refused) = self
                        .check_claim(&path, &uri, &parts.method, content_type.as_deref(), &body)
                        .await?
                    {
                        return Ok(refused);
                    }
                }
                let before = self.current(&path).await?;
                let (status, bytes) = self
                    .store_call(
                        parts.method,
                        &uri.to_string(),
                        content_type.as_deref(),
                        body,
                    )
                    .await?;
                if status.is_success() {
                    let mut after: Value = serde_json::from_slice(&bytes)?;
                    self.state.mark(&path.collection, &mut after);
                    // A write that changed nothing makes no watch event.
                    if !before.is_some_and(|b| rules::same_object(&b, &after)) {
                        self.state
                            .record(Change::Modified, &path.collection, after.clone());
                    }
                    self.finish_deletion(&path, &after).await?;
                    return Ok(full(status, Bytes::from(after.to_string())));
                }
                Ok(full(status, bytes))
            }
            Method::POST => {
                let body = secret_body(&path, &Method::POST, body);
                let (status, bytes) = self
                    .store_call(
                        Method::POST,
                        &uri.to_string(),
                        content_type.as_deref(),
                        body,
                    )
                    .await?;
                if status.is_success() {
                    let object: Value = serde_json::from_slice(&bytes)?;
                    if object["metadata"]["name"].is_string() {
                        self.state.record(Change::Added, &path.collection, object);
                    }
                }
                Ok(full(status, bytes))
            }
            Method::DELETE => {
                let one_object = path.name.is_some() && path.subresource.is_none();
                if one_object {
                    if let Some(response) = self.start_deletion(&path).await? {
                        return Ok(response);
                    }
                }
                let (status, bytes) = self
                    .store_call(
                        Method::DELETE,
                        &uri.to_string(),
                        content_type.as_deref(),
                        body,
                    )
                    .await?;
                if status.is_success() {
                    self.deleted(&path).await?;
                }
                Ok(full(status, bytes))
            }
            method => {
                let (status, bytes) = self
                    .store_call(method, &uri.to_string(), content_type.as_deref(), body)
                    .await?;
                Ok(full(status, bytes))
            }
        }
    }

    /// Deletion of an object with finalizers: it stays, with a
    /// `deletionTimestamp`, until its finalizers are removed (a
    /// `MODIFIED` event). `None` for an object without finalizers (deleted
    /// at once).
    async fn start_deletion(&self, path: &Path) -> Result<Option<Response<SimBody>>, BoxError> {
        let Some(mut object) = self.current(path).await? else {
            return Ok(None);
        };
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !finalizers {
            return Ok(None);
        }
        let key = key_of(&path.collection, &object);
        let started = {
            let mut terminating = self.state.terminating.lock();
            let fresh = !terminating.contains_key(&key);
            terminating.entry(key).or_insert_with(|| {
                k8s_openapi::jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            });
            fresh
        };
        self.state.mark(&path.collection, &mut object);
        if started {
            self.state
                .record(Change::Modified, &path.collection, object.clone());
        }
        Ok(Some(full(StatusCode::OK, Bytes::from(object.to_string()))))
    }

    /// Deletes a terminating object once `object` (as written) has no
    /// finalizers left.
    async fn finish_deletion(&self, path: &Path, object: &Value) -> Result<(), BoxError> {
        let key = key_of(&path.collection, object);
        let done = object["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if !done || !self.state.terminating.lock().contains_key(&key) {
            return Ok(());
        }
        let name = key.2.clone();
        let uri = object_uri(&path.collection, &key.1, &name);
        let (status, bytes) = self
            .store_call(Method::DELETE, &uri, None, Vec::new())
            .await?;
        self.state.terminating.lock().remove(&key);
        if status.is_success() {
            let path = Path {
                collection: path.collection.clone(),
                namespace: Some(key.1.clone()).filter(|n| !n.is_empty()),
                name: Some(name),
                subresource: None,
            };
            self.deleted(&path).await?;
        } else {
            tracing::warn!(%uri, body = %String::from_utf8_lossy(&bytes), "finishing a deletion failed");
        }
        Ok(())
    }

    /// A replace (PUT) of a terminating object without its
    /// `deletionTimestamp` (the store keeps it unset; this layer adds it).
    fn without_deletion_timestamp(method: &Method, body: Vec<u8>) -> Vec<u8> {
        if *method != Method::PUT {
            return body;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(mut object) if !object["metadata"]["deletionTimestamp"].is_null() => {
                if let Some(meta) = object["metadata"].as_object_mut() {
                    meta.remove("deletionTimestamp");
                }
                serde_json::to_vec(&object).unwrap_or(body)
            }
            _ => body,
        }
    }

    /// The object at `path` (its subresource's object) as stored now.
    async fn current(&self, path: &Path) -> Result<Option<Value>, BoxError> {
        let Some(name) = &path.name else {
            return Ok(None);
        };
        let uri = object_uri(
            &path.collection,
            path.namespace.as_deref().unwrap_or(""),
            name,
        );
        let (status, bytes) = self.store_call(Method::GET, &uri, None, Vec::new()).await?;
        Ok(status
            .is_success()
            .then(|| serde_json::from_slice(&bytes).ok())
            .flatten())
    }

    /// Records the deletion of the object at `path` and of every object
    /// the store removed with it (owner references).
    async fn deleted(&self, path: &Path) -> Result<(), BoxError> {
        let key = (
            path.collection.clone(),
            path.namespace.clone().unwrap_or_default(),
            path.name.clone().unwrap_or_default(),
        );
        let known: Vec<((Collection, String, String), Value)> = {
            let log = self.state.log.lock();
            log.objects
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if let Some((_, object)) = known.iter().find(|(k, _)| *k == key) {
            self.state
                .record(Change::Deleted, &path.collection, object.clone());
        }
        // Anything else known that is gone now went with it.
        for ((collection, namespace, name), object) in known {
            if (collection.clone(), namespace.clone(), name.clone()) == key {
                continue;
            }
            let owned = object["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| !refs.is_empty());
            if !owned {
                continue;
            }
            let uri = object_uri(&collection, &namespace, &name);
            let (status, _) = self.store_call(Method::GET, &uri, None, Vec::new()).await?;
            if status == StatusCode::NOT_FOUND {
                self.state.record(Change::Deleted, &collection, object);
            }
        }
        Ok(())
    }

    /// Refuses a write that changes an immutable part of a StatefulSet's
    /// spec (as the API server does).
    async fn check_statefulset(
        &self,
        path: &Path,
        uri: &http::Uri,
        method: &Method,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Response<SimBody>>, BoxError> {
        // JSON patches are not checked (the operator does not send them).
        let Some((old, new)) = self.updated(uri, method, content_type, body).await? else {
            return Ok(None);
        };
        let name = path.name.clone().unwrap_or_default();
        Ok(rules::statefulset_update_error(&name, &old, &new)
            .map(|message| status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message)))
    }

    /// Refuses a change of a claim's storage request the API server
    /// refuses (smaller; larger without an expanding StorageClass).
    async fn check_claim(
        &self,
        path: &Path,
        uri: &http::Uri,
        method: &Method,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Response<SimBody>>, BoxError> {
        let Some((old, new)) = self.updated(uri, method, content_type, body).await? else {
            return Ok(None);
        };
        let (status, bytes) = self
            .store_call(
                Method::GET,
                "/apis/storage.k8s.io/v1/storageclasses",
                None,
                Vec::new(),
            )
            .await?;
        let classes: Vec<Value> = if status.is_success() {
            serde_json::from_slice::<Value>(&bytes)?["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let name = path.name.clone().unwrap_or_default();
        Ok(
            rules::claim_update_error(&name, &old, &new, &classes).map(
                |(code, reason, message)| {
                    let code =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                    status_error(code, reason, &message)
                },
            ),
        )
    }

    /// The stored object at `uri` and what a PUT or merge PATCH of `body`
    /// makes of it (None: absent, or a JSON patch, which is not checked).
    async fn updated(
        &self,
        uri: &http::Uri,
        method: &Method,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Option<(Value, Value)>, BoxError> {
        let (status, bytes) = self
            .store_call(Method::GET, uri.path(), None, Vec::new())
            .await?;
        if !status.is_success() || content_type == Some("application/json-patch+json") {
            return Ok(None);
        }
        let old: Value = serde_json::from_slice(&bytes)?;
        let new = if *method == Method::PUT {
            serde_json::from_slice(body)?
        } else {
            let mut new = old.clone();
            rules::merge(&mut new, &serde_json::from_slice(body)?);
            new
        };
        Ok(Some((old, new)))
    }

    /// Server-side apply: prune and merge against the stored object, then
    /// replace it (or create it when absent).
    async fn apply(
        &self,
        path: &Path,
        uri: &http::Uri,
        params: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Result<Response<SimBody>, BoxError> {
        let Some(manager) = params.get("fieldManager").cloned() else {
            return Ok(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        };
        let config: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => serde_yaml::from_slice(body)?,
        };
        let object_path = uri.path().to_string();
        for _attempt in 0..5 {
            let (status, bytes) = self
                .store_call(Method::GET, &object_path, None, Vec::new())
                .await?;
            if status == StatusCode::NOT_FOUND {
                let (status, bytes) = self
                    .store_call(
                        Method::PATCH,
                        &uri.to_string(),
                        Some("application/apply-patch+yaml"),
                        body.to_vec(),
                    )
                    .await?;
                if status.is_success() {
                    self.remember(&object_path, &manager, &config);
                    self.state.record(
                        Change::Added,
                        &path.collection,
                        serde_json::from_slice(&bytes)?,
                    );
                }
                return Ok(full(status, bytes));
            }
            if !status.is_success() {
                return Ok(full(status, bytes));
            }
            let existing: Value = serde_json::from_slice(&bytes)?;
            let (previous, others) = {
                let log = self.state.log.lock();
                let applied = log.applied.get(&object_path);
                let previous = applied.and_then(|a| a.get(&manager)).cloned();
                let others: Vec<Value> = applied
                    .map(|a| {
                        a.iter()
                            .filter(|(m, _)| **m != manager)
                            .map(|(_, v)| v.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                (previous, others)
            };
            let other_refs: Vec<&Value> = others.iter().collect();
            let mut result = rules::apply(&existing, &config, previous.as_ref(), &other_refs);
            result["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
            if rules::same_object(&existing, &result) {
                // Nothing changes: no write, no new resource version, no
                // watch event (as the API server).
                self.remember(&object_path, &manager, &config);
                let mut existing = existing;
                self.state.mark(&path.collection, &mut existing);
                return Ok(full(StatusCode::OK, Bytes::from(existing.to_string())));
            }
            if path.collection.resource == "statefulsets" && path.subresource.is_none() {
                let name = path.name.clone().unwrap_or_default();
                if let Some(message) = rules::statefulset_update_error(&name, &existing, &result) {
                    return Ok(status_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        &message,
                    ));
                }
            }
            let (status, bytes) = self
                .store_call(
                    Method::PUT,
                    &object_path,
                    Some("application/json"),
                    serde_json::to_vec(&result)?,
                )
                .await?;
            if status == StatusCode::CONFLICT {
                continue;
            }
            if status.is_success() {
                self.remember(&object_path, &manager, &config);
                let mut after: Value = serde_json::from_slice(&bytes)?;
                self.state.mark(&path.collection, &mut after);
                self.state
                    .record(Change::Modified, &path.collection, after.clone());
                self.finish_deletion(path, &after).await?;
                return Ok(full(status, Bytes::from(after.to_string())));
            }
            return Ok(full(status, bytes));
        }
        Ok(status_error(
            StatusCode::CONFLICT,
            "Conflict",
            "the object keeps changing; apply again",
        ))
    }

    fn remember(&self, object_path: &str, manager: &str, config: &Value) {
        self.state
            .log
            .lock()
            .applied
            .entry(object_path.to_string())
            .or_default()
            .insert(manager.to_string(), config.clone());
    }

    /// A watch: the events after the client's resource version (or the
    /// current objects first when it gives none), then changes as they
    /// come, until `timeoutSeconds`.
    async fn watch(&self, path: Path, params: BTreeMap<String, String>) -> Response<SimBody> {
        let filter = match Filter::new(&path, &params) {
            Ok(f) => f,
            Err(message) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &message),
        };
        let since: Option<u64> = params
            .get("resourceVersion")
            .and_then(|rv| rv.parse().ok())
            .filter(|rv| *rv > 0);
        let timeout = params
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(MAX_WATCH)
            .min(MAX_WATCH);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(64);
        let state = self.state.clone();
        tokio::spawn(async move {
            let line = |change: Change, object: &Value| {
                let kind = match change {
                    Change::Added => "ADDED",
                    Change::Modified => "MODIFIED",
                    Change::Deleted => "DELETED",
                };
                let mut text = json!({"type": kind, "object": object}).to_string();
                text.push('\n');
                Ok(http_body::Frame::data(Bytes::from(text)))
            };
            // What the client has not seen yet.
            let (first, mut next) = {
                let log = state.log.lock();
                let first: Vec<(Change, Value)> = match since {
                    Some(since) => log
                        .entries
                        .iter()
                        .filter(|e| filter.matches(&e.collection, &e.object))
                        .filter(|e| match e.change {
                            Change::Deleted => e.rv >= since,
                            _ => e.rv > since,
                        })
                        .map(|e| (e.change, deleted_at(e)))
                        .collect(),
                    None => log
                        .objects
                        .iter()
                        .filter(|((c, _, _), o)| filter.matches(c, o))
                        .map(|(_, o)| (Change::Added, o.clone()))
                        .collect(),
                };
                (first, log.entries.len())
            };
            for (change, object) in first {
                if tx.send(line(change, &object)).await.is_err() {
                    return;
                }
            }
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let notified = state.changed.notified();
                let fresh: Vec<(Change, Value)> = {
                    let log = state.log.lock();
                    let fresh = log.entries[next..]
                        .iter()
                        .filter(|e| filter.matches(&e.collection, &e.object))
                        .map(|e| (e.change, deleted_at(e)))
                        .collect();
                    next = log.entries.len();
                    fresh
                };
                for (change, object) in fresh {
                    if tx.send(line(change, &object)).await.is_err() {
                        return;
                    }
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        response
    }
}

/// The object of an event, a deleted one stamped with the version its
/// deletion was recorded at (so a client resuming from it does not see
/// the deletion again).
fn deleted_at(entry: &Entry) -> Value {
    let mut object = entry.object.clone();
    if entry.change == Change::Deleted && entry.rv > rv_of(&object) {
        object["metadata"]["resourceVersion"] = json!(entry.rv.to_string());
    }
    object
}

fn object_uri(collection: &Collection, namespace: &str, name: &str) -> String {
    let mut uri = if collection.group.is_empty() {
        format!("/api/{}", collection.version)
    } else {
        format!("/apis/{}/{}", collection.group, collection.version)
    };
    if !namespace.is_empty() {
        uri.push_str(&format!("/namespaces/{namespace}"));
    }
    uri.push_str(&format!("/{}/{name}", collection.resource));
    uri
}

/// Which events a watch delivers.
struct Filter {
    collection: Collection,
    namespace: Option<String>,
    labels: kube::core::Selector,
    fields: Vec<(String, String)>,
}

impl Filter {
    fn new(path: &Path, params: &BTreeMap<String, String>) -> Result<Filter, String> {
        let labels = kube_fake_client::label_selector::parse_label_selector(
            params
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or(""),
        )?;
        let mut fields = Vec::new();
        for term in params
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
        {
            let (field, value) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .ok_or_else(|| format!("field selector {term:?} is not field=value"))?;
            fields.push((field.to_string(), value.to_string()));
        }
        if let Some(name) = &path.name {
            fields.push(("metadata.name".into(), name.clone()));
        }
        Ok(Filter {
            collection: path.collection.clone(),
            namespace: path.namespace.clone(),
            labels,
            fields,
        })
    }

    fn matches(&self, collection: &Collection, object: &Value) -> bool {
        if *collection != self.collection {
            return false;
        }
        let meta = &object["metadata"];
        if let Some(ns) = &self.namespace {
            if meta["namespace"].as_str() != Some(ns) {
                return false;
            }
        }
        let labels: BTreeMap<String, String> = meta["labels"]
            .as_object()
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if !self.labels.matches(&labels) {
            return false;
        }
        self.fields.iter().all(|(field, value)| {
            let found = match field.as_str() {
                "metadata.name" => meta["name"].as_str(),
                "metadata.namespace" => meta["namespace"].as_str(),
                _ => None,
            };
            found == Some(value.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_parse() {
        let p = parse_path("/apis/apps/v1/namespaces/shop/statefulsets/orders-a/status").unwrap();
        assert_eq!(p.collection.group, "apps");
        assert_eq!(p.collection.resource, "statefulsets");
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        assert_eq!(p.name.as_deref(), Some("orders-a"));
        assert_eq!(p.subresource.as_deref(), Some("status"));
        let p = parse_path("/api/v1/configmaps").unwrap();
        assert_eq!(
            (p.collection.group.as_str(), p.namespace, p.name),
            ("", None, None)
        );
        let q = query_params(Some("labelSelector=a%3Db%2Cc&watch=true"));
        assert_eq!(q["labelSelector"], "a=b,c");
        assert_eq!(q["watch"], "true");
    }
}
