//! A small pod runtime: realises the StatefulSets and Deployments of the
//! simulated API as real processes, the way the StatefulSet and Deployment
//! controllers and a kubelet would.
//!
//! - Each pod runs in its own network namespace with its own address on a
//!   bridge (a new address when the pod is recreated) and its own mount
//!   namespace: a tmpfs over each mount path's parent, the pod's volumes
//!   bind-mounted there (PVCs as per-pod directories that outlive pods,
//!   with their PersistentVolumeClaim objects; a directory goes once its
//!   object was deleted and no pod uses it;
//!   ConfigMaps and Secrets written out and kept current, emptyDirs), and
//!   a hosts file so pod and Service DNS names resolve. Nothing is created
//!   on the host's own paths.
//! - The container's image names a local binary ([`RuntimeOptions::images`]);
//!   its args, env (values and the `metadata.*`/`status.podIP` field refs)
//!   and ports come from the pod template. A container that exits is
//!   restarted (restartPolicy Always).
//! - Readiness comes from the rendered readiness probe (HTTP GET on the
//!   pod's address); Pod status (`podIP`, phase, the `Ready` condition) and
//!   the owners' status (`replicas`, `readyReplicas`, `updatedReplicas`,
//!   revisions, `observedGeneration`) are written back to the API.
//! - StatefulSets: pods `<name>-<ordinal>` with the `apps.kubernetes.io/
//!   pod-index` label, scaled to `replicas` (Parallel); a changed template
//!   rolls out like the StatefulSet controller: RollingUpdate replaces the
//!   highest outdated ordinal at or above `partition` once every pod is
//!   ready, one at a time; OnDelete only when a pod is deleted. Every
//!   StatefulSet rolls on its own, so several roll at once, as in
//!   Kubernetes. Deployments: pods `<name>-<n>`, replaced one at a time.
//! - A pod deleted through the API stops (SIGTERM, SIGKILL after its
//!   `terminationGracePeriodSeconds`) and its owner recreates it.
//!
//! [`Runtime::history`] is the record of every pod start, stop and
//! readiness change, for checks such as "never two members of a partition
//! down at once". Dropping the runtime kills every process and removes
//! every namespace, link and mount it made (also when a test fails).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec, Secret,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// Where the runtime keeps its files and which binaries images are.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Directory for PVCs, volumes and logs (`pvc/`, `pods/`, `hosts`).
    pub root: PathBuf,
    /// Image name (without tag) → local binary.
    pub images: BTreeMap<String, PathBuf>,
    /// Extra environment of every container (e.g. `PARTITA_LOG`).
    pub env: Vec<(String, String)>,
}

/// One change of a pod, as recorded in [`Runtime::history`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// Milliseconds since the runtime started.
    pub at_ms: u64,
    pub namespace: String,
    pub pod: String,
    pub what: String,
}

/// The pod runtime; see the module docs.
/// The current address of every running pod; see
/// [`Runtime::address_book`].
#[derive(Clone)]
pub struct AddressBook(Arc<Inner>);

impl AddressBook {
    /// (namespace, pod) → IP of every running pod.
    pub fn get(&self) -> BTreeMap<(String, String), String> {
        self.0
            .pods
            .lock()
            .iter()
            .map(|(k, p)| (k.clone(), p.ip.clone()))
            .collect()
    }
}

pub struct Runtime {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    client: kube::Client,
    options: RuntimeOptions,
    net: Network,
    pods: Mutex<BTreeMap<(String, String), RunningPod>>,
    history: Mutex<Vec<PodEvent>>,
    started: Instant,
}

struct RunningPod {
    uid: String,
    owner: (String, String),
    ordinal: Option<u32>,
    revision: String,
    host: u8,
    ip: String,
    child: Child,
    restarts: u32,
    ready: bool,
    /// The pod's volumes on the host: ConfigMap/Secret name → directory.
    projected: Vec<(String, String, PathBuf)>,
    spec: PodSpec,
    labels: BTreeMap<String, String>,
    name: String,
    namespace: String,
}

/// The bridge and the per-pod namespaces.
struct Network {
    prefix: String,
    subnet: u8,
    free: Mutex<BTreeSet<u8>>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Network {
    fn create() -> Result<Network, String> {
        static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id() % 100_000;
        let prefix = format!("ks{id}{}", seq % 10);
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-o", "-4", "addr", "show"])
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .into_owned();
        let subnet = (0..100u32)
            .map(|k| 20 + ((id + seq * 7 + k) % 80) as u8)
            .find(|s| !used.contains(&format!(" 10.{s}.")))
            .ok_or("no free 10.x subnet")?;
        let net = Network {
            prefix,
            subnet,
            free: Mutex::new((2..=250).collect()),
        };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.{subnet}.0.1/24"),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    fn namespace(&self, host: u8) -> String {
        format!("{}n{host}", self.prefix)
    }

    fn link(&self, host: u8) -> String {
        format!("{}v{host}", self.prefix)
    }

    /// A fresh address and its namespace, wired to the bridge.
    fn attach(&self) -> Result<(u8, String), String> {
        let host = self.free.lock().pop_first().ok_or("no free pod address")?;
        let ns = self.namespace(host);
        let link = self.link(host);
        let address = format!("10.{}.0.{host}", self.subnet);
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["link", "set", &link, "master", &self.bridge()])?;
        ip(&["link", "set", &link, "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.{}.0.1", self.subnet),
        ])?;
        Ok((host, address))
    }

    /// Removes a pod's namespace and link; its address is not reused (a
    /// recreated pod gets a new one, as in Kubernetes).
    fn detach(&self, host: u8) {
        let _ = ip(&["link", "del", &self.link(host)]);
        let _ = ip(&["netns", "del", &self.namespace(host)]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in 2..=250u8 {
            if !self.free.lock().contains(&host) {
                self.detach(host);
            }
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

/// The revision of a pod template (what a rollout compares).
fn revision(template: &PodTemplateSpec) -> String {
    use std::hash::{Hash, Hasher};
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

impl Runtime {
    /// Starts the runtime on `client`'s API.
    pub fn start(client: kube::Client, options: RuntimeOptions) -> Result<Runtime, String> {
        std::fs::create_dir_all(options.root.join("pvc")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(options.root.join("pods")).map_err(|e| e.to_string())?;
        std::fs::write(options.root.join("hosts"), "127.0.0.1 localhost\n")
            .map_err(|e| e.to_string())?;
        let inner = Arc::new(Inner {
            client,
            options,
            net: Network::create()?,
            pods: Mutex::new(BTreeMap::new()),
            history: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let task = {
            let inner = inner.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = inner.round().await {
                        tracing::warn!(error = %e, "pod runtime round failed");
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        Ok(Runtime { inner, task })
    }

    /// The pods running now: (namespace, name) → address.
    pub fn addresses(&self) -> BTreeMap<(String, String), String> {
        self.address_book().get()
    }

    /// A handle that reads the pods' current addresses, for code outside
    /// the pods (an in-process operator calling a Service's pods).
    pub fn address_book(&self) -> AddressBook {
        AddressBook(self.inner.clone())
    }

    /// Every pod start, stop and readiness change so far.
    pub fn history(&self) -> Vec<PodEvent> {
        self.inner.history.lock().clone()
    }

    /// Milliseconds since the runtime started (the clock of [`Runtime::history`]).
    pub fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    /// The log file of a pod's container (all its runs).
    pub fn log_path(&self, namespace: &str, pod: &str) -> PathBuf {
        self.inner.pod_dir(namespace, pod).join("container.log")
    }

    /// The PVC directory of a claim of a pod (`<claim>-<pod>`).
    pub fn pvc_path(&self, namespace: &str, claim: &str, pod: &str) -> PathBuf {
        self.inner
            .options
            .root
            .join("pvc")
            .join(namespace)
            .join(format!("{claim}-{pod}"))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.task.abort();
        let mut pods = self.inner.pods.lock();
        for (_, mut pod) in std::mem::take(&mut *pods) {
            let _ = pod.child.kill();
            let _ = pod.child.wait();
            self.inner.net.detach(pod.host);
        }
    }
}

impl Inner {
    fn note(&self, namespace: &str, pod: &str, what: impl Into<String>) {
        let event = PodEvent {
            at_ms: self.started.elapsed().as_millis() as u64,
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            what: what.into(),
        };
        tracing::info!(namespace, pod, what = %event.what, "pod");
        self.history.lock().push(event);
    }

    fn pod_dir(&self, namespace: &str, pod: &str) -> PathBuf {
        self.options.root.join("pods").join(namespace).join(pod)
    }

    async fn round(self: &Arc<Self>) -> Result<(), String> {
        let sets: Api<StatefulSet> = Api::all(self.client.clone());
        let deployments: Api<Deployment> = Api::all(self.client.clone());
        let sets = sets
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        let deployments = deployments
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        self.stop_deleted_pods().await;
        self.restart_exited();
        self.probe().await;
        for set in &sets {
            if let Err(e) = self.statefulset(set).await {
                tracing::warn!(set = %set.name_any(), error = %e, "statefulset not realised");
            }
        }
        for deployment in &deployments {
            if let Err(e) = self.deployment(deployment).await {
                tracing::warn!(deployment = %deployment.name_any(), error = %e, "deployment not realised");
            }
        }
        self.write_hosts(&sets);
        self.refresh_projected().await;
        self.release_volumes().await;
        Ok(())
    }

    /// Creates the PersistentVolumeClaim object `name` from a claim
    /// template (labels and spec), as the StatefulSet controller does, when
    /// it does not exist; it outlives the pod.
    /// Creates claim `name` from `template` unless it exists; true when it
    /// was created now.
    async fn claim(
        &self,
        namespace: &str,
        name: &str,
        template: &PersistentVolumeClaim,
    ) -> Result<bool, String> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        if api
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(false);
        }
        let object = PersistentVolumeClaim {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                labels: template.metadata.labels.clone(),
                ..Default::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Removes the directory of every claim whose PersistentVolumeClaim
    /// object was deleted, once no running pod uses it (the volume's data
    /// goes with its claim).
    async fn release_volumes(&self) {
        let api: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let Ok(listed) = api.list(&ListParams::default()).await else {
            return;
        };
        let claims: BTreeSet<(String, String)> = listed
            .items
            .iter()
            .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        let running: Vec<(String, String)> = self.pods.lock().keys().cloned().collect();
        let root = self.options.root.join("pvc");
        let Ok(namespaces) = std::fs::read_dir(&root) else {
            return;
        };
        for namespace in namespaces.flatten() {
            let ns = namespace.file_name().to_string_lossy().into_owned();
            let Ok(dirs) = std::fs::read_dir(namespace.path()) else {
                continue;
            };
            for dir in dirs.flatten() {
                let name = dir.file_name().to_string_lossy().into_owned();
                let in_use = running
                    .iter()
                    .any(|(pod_ns, pod)| *pod_ns == ns && name.ends_with(&format!("-{pod}")));
                if claims.contains(&(ns.clone(), name.clone())) || in_use {
                    continue;
                }
                if std::fs::remove_dir_all(dir.path()).is_ok() {
                    self.note(&ns, &name, "volume deleted");
                }
            }
        }
    }

    /// Stops pods whose Pod object was deleted (with their owner, unless it
    /// was deleted with the orphan policy: an orphaned pod keeps running,
    /// and a new owner of the same name takes it over, as the StatefulSet
    /// controller adopts orphans).
    async fn stop_deleted_pods(&self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let Ok(listed) = pods.list(&ListParams::default()).await else {
            return;
        };
        let present: HashMap<(String, String), String> = listed
            .items
            .iter()
            .map(|p| {
                (
                    (p.namespace().unwrap_or_default(), p.name_any()),
                    p.metadata.uid.clone().unwrap_or_default(),
                )
            })
            .collect();
        let gone: Vec<(String, String)> = self
            .pods
            .lock()
            .iter()
            .filter(|(key, pod)| present.get(*key) != Some(&pod.uid))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            self.stop(&key).await;
        }
    }

    /// Kills a pod's process, removes its network and its Pod object.
    async fn stop(&self, key: &(String, String)) {
        let Some(mut pod) = self.pods.lock().remove(key) else {
            return;
        };
        // As a kubelet: SIGTERM, then SIGKILL after the grace period.
        self.note(&key.0, &key.1, "terminating");
        let grace = pod
            .spec
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64;
        terminate(&mut pod.child, Duration::from_secs(grace)).await;
        self.net.detach(pod.host);
        self.note(&key.0, &key.1, "stopped");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        if let Ok(Some(current)) = api.get_opt(&key.1).await {
            if current.metadata.uid.as_deref() == Some(pod.uid.as_str()) {
                let _ = api.delete(&key.1, &DeleteParams::default()).await;
            }
        }
    }

    fn restart_exited(&self) {
        let mut pods = self.pods.lock();
        for ((ns, name), pod) in pods.iter_mut() {
            if let Ok(Some(status)) = pod.child.try_wait() {
                pod.restarts += 1;
                pod.ready = false;
                let what = format!("exited ({status}); restarting");
                match self.spawn(ns, name, &pod.spec, &pod.labels, pod.host, &pod.ip) {
                    Ok(child) => pod.child = child,
                    Err(e) => tracing::warn!(pod = %name, error = %e, "restart failed"),
                }
                let event = PodEvent {
                    at_ms: self.started.elapsed().as_millis() as u64,
                    namespace: ns.clone(),
                    pod: name.clone(),
                    what,
                };
                self.history.lock().push(event);
            }
        }
    }

    /// Runs every pod's readiness probe and records changes.
    async fn probe(&self) {
        let targets: Vec<((String, String), Option<String>)> = self
            .pods
            .lock()
            .iter()
            .map(|(k, p)| (k.clone(), readiness_url(&p.spec, &p.ip)))
            .collect();
        for (key, url) in targets {
            let ready = match url {
                Some(url) => http_ok(&url).await,
                None => true,
            };
            let changed = {
                let mut pods = self.pods.lock();
                match pods.get_mut(&key) {
                    Some(pod) if pod.ready != ready => {
                        pod.ready = ready;
                        true
                    }
                    _ => false,
                }
            };
            if changed {
                self.note(&key.0, &key.1, if ready { "ready" } else { "not ready" });
                self.write_pod_status(&key).await;
            }
        }
    }

    async fn write_pod_status(&self, key: &(String, String)) {
        let status = {
            let pods = self.pods.lock();
            let Some(pod) = pods.get(key) else {
                return;
            };
            json!({"status": {
                "phase": "Running",
                "podIP": pod.ip,
                "podIPs": [{"ip": pod.ip}],
                "conditions": [{"type": "Ready", "status": if pod.ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": pod.spec.containers.first().map(|c| c.name.clone()).unwrap_or_default(),
                    "ready": pod.ready, "restartCount": pod.restarts, "image": "", "imageID": ""}],
            }})
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        if let Err(e) = api
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::warn!(pod = %key.1, error = %e, "pod status not written");
        }
    }

    async fn statefulset(&self, set: &StatefulSet) -> Result<(), String> {
        let ns = set.namespace().unwrap_or_default();
        let name = set.name_any();
        let spec = set.spec.clone().ok_or("no spec")?;
        let replicas = spec.replicas.unwrap_or(1).max(0) as u32;
        let current = revision(&spec.template);
        // Scale: create missing ordinals, stop surplus ones.
        for ordinal in 0..replicas {
            let pod = format!("{name}-{ordinal}");
            if !self.pods.lock().contains_key(&(ns.clone(), pod.clone())) {
                self.create_pod(set, &spec.template, &pod, Some(ordinal), &current, &spec)
                    .await?;
            }
        }
        let surplus: Vec<(String, String)> = self
            .pods
            .lock()
            .iter()
            .filter(|(_, p)| p.owner.1 == name && p.namespace == ns)
            .filter(|(_, p)| p.ordinal.is_some_and(|o| o >= replicas))
            .map(|(k, _)| k.clone())
            .collect();
        for key in surplus {
            self.stop(&key).await;
        }
        // Roll out a changed template.
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rolling = strategy.type_.as_deref() != Some("OnDelete");
        let partition = strategy
            .rolling_update
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .max(0) as u32;
        let (all_ready, outdated) = {
            let pods = self.pods.lock();
            let mine: Vec<&RunningPod> = pods
                .values()
                .filter(|p| p.owner.1 == name && p.namespace == ns)
                .collect();
            let all_ready = mine.len() as u32 == replicas && mine.iter().all(|p| p.ready);
            let outdated = mine
                .iter()
                .filter(|p| p.revision != current)
                .filter(|p| p.ordinal.is_some_and(|o| o >= partition))
                .max_by_key(|p| p.ordinal)
                .map(|p| (p.namespace.clone(), p.name.clone()));
            (all_ready, outdated)
        };
        if rolling && all_ready {
            if let Some(key) = outdated {
                self.note(&key.0, &key.1, format!("replaced by rollout to {current}"));
                self.stop(&key).await;
            }
        }
        self.write_owner_status::<StatefulSet>(
            &ns,
            &name,
            set.metadata.generation,
            &current,
            replicas,
        )
        .await;
        Ok(())
    }

    async fn deployment(&self, deployment: &Deployment) -> Result<(), String> {
        let ns = deployment.namespace().unwrap_or_default();
        let name = deployment.name_any();
        let spec = deployment.spec.clone().ok_or("no spec")?;
        let replicas = spec.replicas.unwrap_or(1).max(0) as u32;
        let current = revision(&spec.template);
        let mine: Vec<(String, bool, String, Option<u32>)> = self
            .pods
            .lock()
            .values()
            .filter(|p| p.owner.1 == name && p.namespace == ns)
            .map(|p| (p.name.clone(), p.ready, p.revision.clone(), p.ordinal))
            .collect();
        let up_to_date = mine.iter().filter(|(_, _, r, _)| *r == current).count() as u32;
        if up_to_date < replicas && (mine.len() as u32) <= replicas {
            // One new pod at a time (maxSurge 1).
            let n = self.next_deployment_index(&ns, &name);
            let pod = format!("{name}-{n}");
            let sts_spec = k8s_openapi::api::apps::v1::StatefulSetSpec::default();
            self.create_pod(deployment, &spec.template, &pod, None, &current, &sts_spec)
                .await?;
        } else if mine.len() as u32 > replicas {
            // Remove an outdated pod once the new ones are ready, else a
            // surplus one.
            let ready_new = mine
                .iter()
                .filter(|(_, ready, r, _)| *ready && *r == current)
                .count();
            let victim = mine
                .iter()
                .find(|(_, _, r, _)| *r != current)
                .filter(|_| ready_new as u32 >= replicas.min(up_to_date))
                .or_else(|| (up_to_date > replicas).then(|| &mine[0]));
            if let Some((pod, ..)) = victim {
                self.stop(&(ns.clone(), pod.clone())).await;
            }
        }
        self.write_owner_status::<Deployment>(
            &ns,
            &name,
            deployment.metadata.generation,
            &current,
            replicas,
        )
        .await;
        Ok(())
    }

    fn next_deployment_index(&self, ns: &str, name: &str) -> u64 {
        let history = self.history.lock();
        history
            .iter()
            .filter(|e| e.namespace == ns && e.what == "started")
            .filter_map(|e| e.pod.strip_prefix(&format!("{name}-"))?.parse::<u64>().ok())
            .max()
            .map_or(0, |n| n + 1)
    }

    async fn write_owner_status<K>(
        &self,
        ns: &str,
        name: &str,
        generation: Option<i64>,
        current: &str,
        replicas: u32,
    ) where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let (count, ready, updated) = {
            let pods = self.pods.lock();
            let mine: Vec<&RunningPod> = pods
                .values()
                .filter(|p| p.owner.1 == name && p.namespace == ns)
                .collect();
            (
                mine.len(),
                mine.iter().filter(|p| p.ready).count(),
                mine.iter().filter(|p| p.revision == current).count(),
            )
        };
        let status = json!({"status": {
            "observedGeneration": generation,
            "replicas": count,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": updated,
            "currentReplicas": updated,
            "currentRevision": current,
            "updateRevision": current,
        }});
        let _ = replicas;
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let unchanged = match api.get_status(name).await {
            Ok(obj) => {
                let now = serde_json::to_value(&obj).unwrap_or(Value::Null);
                let want = &status["status"];
                [
                    "observedGeneration",
                    "replicas",
                    "readyReplicas",
                    "updatedReplicas",
                    "updateRevision",
                ]
                .iter()
                .all(|f| now["status"][f] == want[f])
            }
            Err(_) => false,
        };
        if !unchanged {
            if let Err(e) = api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                tracing::warn!(owner = name, error = %e, "owner status not written");
            }
        }
    }

    /// Creates the Pod object and starts its process.
    async fn create_pod<K: kube::Resource<DynamicType = ()>>(
        &self,
        owner: &K,
        template: &PodTemplateSpec,
        pod_name: &str,
        ordinal: Option<u32>,
        current: &str,
        set_spec: &k8s_openapi::api::apps::v1::StatefulSetSpec,
    ) -> Result<(), String> {
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        let owner_name = owner.meta().name.clone().unwrap_or_default();
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if let Some(ordinal) = ordinal {
            labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
            labels.insert("statefulset.kubernetes.io/pod-name".into(), pod_name.into());
        }
        labels.insert("controller-revision-hash".into(), current.into());
        let mut spec = template.spec.clone().ok_or("template without spec")?;
        if ordinal.is_some() {
            spec.hostname = Some(pod_name.to_string());
            spec.subdomain = set_spec.service_name.clone();
        }
        let object = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(pod_name.to_string()),
                namespace: Some(ns.clone()),
                labels: Some(labels.clone()),
                annotations: template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.clone()),
                owner_references: owner.controller_owner_ref(&()).map(|o| vec![o]),
                ..Default::default()
            },
            spec: Some(spec.clone()),
            status: None,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if api
            .get_opt(pod_name)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            // A leftover object (the previous pod is being replaced).
            let _ = api.delete(pod_name, &DeleteParams::default()).await;
        }
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| e.to_string())?;
        // Volumes: PVCs from the claim templates, ConfigMaps, Secrets,
        // emptyDirs, prepared on the host.
        let dir = self.pod_dir(&ns, pod_name);
        let _ = std::fs::remove_dir_all(dir.join("volumes"));
        std::fs::create_dir_all(dir.join("volumes")).map_err(|e| e.to_string())?;
        for claim in set_spec.volume_claim_templates.iter().flatten() {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            let object_name = format!("{claim_name}-{pod_name}");
            let pvc = self.options.root.join("pvc").join(&ns).join(&object_name);
            // A claim created now is a new, empty volume, even where a
            // deleted claim's directory was not released yet.
            if self.claim(&ns, &object_name, claim).await? && pvc.exists() {
                std::fs::remove_dir_all(&pvc).map_err(|e| e.to_string())?;
                self.note(&ns, pod_name, format!("new volume for claim {object_name}"));
            }
            std::fs::create_dir_all(&pvc).map_err(|e| e.to_string())?;
        }
        let mut projected = Vec::new();
        for volume in spec.volumes.iter().flatten() {
            let path = dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            if let Some(cm) = &volume.config_map {
                projected.push(("configmap".to_string(), cm.name.clone(), path.clone()));
            }
            if let Some(secret) = &volume.secret {
                projected.push((
                    "secret".to_string(),
                    secret.secret_name.clone().unwrap_or_default(),
                    path.clone(),
                ));
            }
        }
        for (kind, name, path) in &projected {
            self.project(&ns, kind, name, path).await;
        }
        let (host, address) = self.net.attach()?;
        let child = match self.spawn(&ns, pod_name, &spec, &labels, host, &address) {
            Ok(child) => child,
            Err(e) => {
                self.net.detach(host);
                return Err(e);
            }
        };
        self.note(&ns, pod_name, "started");
        self.note(&ns, pod_name, format!("address {address}"));
        self.pods.lock().insert(
            (ns.clone(), pod_name.to_string()),
            RunningPod {
                uid: created.metadata.uid.clone().unwrap_or_default(),
                owner: (ns.clone(), owner_name),
                ordinal,
                revision: current.to_string(),
                host,
                ip: address,
                child,
                restarts: 0,
                ready: false,
                projected,
                spec,
                labels,
                name: pod_name.to_string(),
                namespace: ns.clone(),
            },
        );
        self.write_pod_status(&(ns, pod_name.to_string())).await;
        Ok(())
    }

    /// Writes a ConfigMap's or Secret's keys as files in `dir` (each file
    /// rewritten in place when its content changes; absent objects leave
    /// the directory empty, as an optional volume).
    async fn project(&self, ns: &str, kind: &str, name: &str, dir: &Path) {
        let files: BTreeMap<String, Vec<u8>> = if kind == "configmap" {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
            match api.get_opt(name).await {
                Ok(Some(cm)) => cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect(),
                _ => BTreeMap::new(),
            }
        } else {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            match api.get_opt(name).await {
                Ok(Some(secret)) => secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .chain(
                        secret
                            .string_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.into_bytes())),
                    )
                    .collect(),
                _ => BTreeMap::new(),
            }
        };
        for (file, content) in files {
            let path = dir.join(&file);
            if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
                let tmp = dir.join(format!(".{file}.tmp"));
                if std::fs::write(&tmp, &content).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
        }
    }

    async fn refresh_projected(&self) {
        let all: Vec<(String, String, String, PathBuf)> = self
            .pods
            .lock()
            .values()
            .flat_map(|p| {
                p.projected
                    .iter()
                    .map(|(kind, name, dir)| {
                        (p.namespace.clone(), kind.clone(), name.clone(), dir.clone())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (ns, kind, name, dir) in all {
            self.project(&ns, &kind, &name, &dir).await;
        }
    }

    /// The hosts file every pod sees: pod DNS names of StatefulSet pods
    /// (`<pod>.<service>.<ns>.svc[.cluster.local]`) and, for every Service
    /// whose selector matches pods, `<service>.<ns>.svc` → one of them.
    fn write_hosts(&self, sets: &[StatefulSet]) {
        let services: BTreeMap<(String, String), String> = sets
            .iter()
            .filter_map(|s| {
                Some((
                    (s.namespace()?, s.name_any()),
                    s.spec.as_ref()?.service_name.clone()?,
                ))
            })
            .collect();
        let mut lines = vec!["127.0.0.1 localhost".to_string()];
        for pod in self.pods.lock().values() {
            let ns = &pod.namespace;
            let mut names = vec![pod.name.clone()];
            if let Some(service) = services.get(&(ns.clone(), pod.owner.1.clone())) {
                names.push(format!("{}.{service}.{ns}.svc", pod.name));
                names.push(format!("{}.{service}.{ns}.svc.cluster.local", pod.name));
            }
            lines.push(format!("{} {}", pod.ip, names.join(" ")));
        }
        lines.push(String::new());
        let text = lines.join("\n");
        let path = self.options.root.join("hosts");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            // In place: pods see the file through a bind mount.
            let _ = std::fs::write(&path, text);
        }
    }

    /// Starts a pod's container in its namespaces.
    fn spawn(
        &self,
        ns: &str,
        pod: &str,
        spec: &PodSpec,
        labels: &BTreeMap<String, String>,
        host: u8,
        address: &str,
    ) -> Result<Child, String> {
        let container: &Container = spec.containers.first().ok_or("no container")?;
        let image = container.image.clone().unwrap_or_default();
        let image_name = image.rsplit_once(':').map_or(image.as_str(), |(n, _)| n);
        let image_name = image_name.rsplit('/').next().unwrap_or(image_name);
        let binary = self
            .options
            .images
            .get(image_name)
            .ok_or_else(|| format!("no binary for image {image}"))?;
        let dir = self.pod_dir(ns, pod);
        // The mounts, in a script run inside the pod's mount namespace.
        let mut script = String::from("set -e\n");
        let mut mounted_parents = BTreeSet::new();
        let mut mounts: Vec<(PathBuf, String, bool)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let source = if spec.volumes.iter().flatten().any(|v| v.name == mount.name) {
                dir.join("volumes").join(&mount.name)
            } else {
                // A claim template's volume.
                self.options
                    .root
                    .join("pvc")
                    .join(ns)
                    .join(format!("{}-{pod}", mount.name))
            };
            mounts.push((
                source,
                mount.mount_path.clone(),
                mount.read_only.unwrap_or(false),
            ));
        }
        // The hosts file first, and last the mounts that hide the runtime's
        // own directory (an emptyDir on /tmp): every source is bound while
        // it is still visible.
        script.push_str(&format!(
            "mount --bind '{}' /etc/hosts\n",
            self.options.root.join("hosts").display()
        ));
        let root = self.options.root.clone();
        mounts.sort_by_key(|(_, target, _)| root.starts_with(target));
        for (source, target, read_only) in &mounts {
            if let Some(parent) = Path::new(target).parent() {
                let parent = parent.to_string_lossy().into_owned();
                if parent != "/"
                    && !root.starts_with(&parent)
                    && mounted_parents.insert(parent.clone())
                {
                    script.push_str(&format!(
                        "mkdir -p '{parent}'\nmount -t tmpfs tmpfs '{parent}'\n"
                    ));
                }
            }
            script.push_str(&format!(
                "mkdir -p '{target}'\nmount --bind '{}' '{target}'\n",
                source.display()
            ));
            if *read_only {
                script.push_str(&format!("mount -o remount,bind,ro '{target}'\n"));
            }
        }
        script.push_str("exec \"$@\"\n");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.net.namespace(host)])
            .args([
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                "pod",
            ])
            .arg(binary)
            .args(container.args.iter().flatten());
        command.env_clear();
        command.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        command.env("HOSTNAME", pod);
        for (k, v) in &self.options.env {
            command.env(k, v);
        }
        for env in container.env.iter().flatten() {
            let value = match (&env.value, &env.value_from) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) => from.field_ref.as_ref().and_then(|f| {
                    let path = f.field_path.as_str();
                    if let Some(label) = path
                        .strip_prefix("metadata.labels['")
                        .and_then(|l| l.strip_suffix("']"))
                    {
                        return labels.get(label).cloned();
                    }
                    match path {
                        "metadata.name" => Some(pod.to_string()),
                        "metadata.namespace" => Some(ns.to_string()),
                        "status.podIP" => Some(address.to_string()),
                        _ => None,
                    }
                }),
                _ => None,
            };
            if let Some(value) = value {
                command.env(&env.name, value);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("container.log"))
            .map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting pod {pod}: {e}"))
    }
}

/// The readiness probe's URL for a pod at `address`, if it has an HTTP one.
fn readiness_url(spec: &PodSpec, address: &str) -> Option<String> {
    let container = spec.containers.first()?;
    let get = container.readiness_probe.as_ref()?.http_get.as_ref()?;
    let port = match &get.port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))?
                .container_port
        }
    };
    Some(format!(
        "{address}:{port}{}",
        get.path.clone().unwrap_or_else(|| "/".into())
    ))
}

/// Sends SIGTERM to `child` and waits for it to exit, up to `grace`;
/// then kills it.
async fn terminate(child: &mut Child, grace: Duration) {
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let deadline = Instant::now() + grace;
    while signalled && Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// True when `GET http://<url>` answers 2xx within a second.
async fn http_ok(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((host_port, path)) = url
        .split_once('/')
        .map(|(h, p)| (h.to_string(), format!("/{p}")))
    else {
        return false;
    };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(&host_port).await.ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let code: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some((200..300).contains(&code))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
