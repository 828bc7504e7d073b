//! Day-two scenarios: changes to a running table made while a writer and
//! a reader use it through the gateway (`workload`), checked with the
//! acknowledged-writes checker and the pod runtime's record of every pod
//! start, stop and readiness change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, ListParams};
use partita_kubesim::pods::PodEvent;
use partita_operator::build::TABLE_LABEL;
use partita_operator::definition::{Credentials, DataPlane};

use crate::workload::Workload;
use crate::{orders_cluster, run_orders_program, Args, Cluster, APP_NAMESPACE};

/// The first moment at or after `since_ms` when two or more members of one
/// partition were down at once (stopping, stopped, starting, or not
/// ready), from the
/// pod runtime's history; `members` maps each pod name to its partition.
pub fn two_members_down(
    history: &[PodEvent],
    members: &BTreeMap<String, u32>,
    since_ms: u64,
) -> Option<String> {
    let mut up: BTreeMap<&str, bool> = BTreeMap::new();
    for event in history {
        let Some(partition) = members.get(&event.pod) else {
            continue;
        };
        let now_up = match event.what.as_str() {
            "ready" => true,
            "not ready" | "terminating" | "stopped" | "started" => false,
            what if what.starts_with("exited") => false,
            _ => continue,
        };
        up.insert(&event.pod, now_up);
        if event.at_ms < since_ms || now_up {
            continue;
        }
        let down: Vec<&str> = members
            .iter()
            .filter(|(_, p)| *p == partition)
            .map(|(pod, _)| pod.as_str())
            .filter(|pod| !up.get(pod).copied().unwrap_or(false))
            .collect();
        if down.len() >= 2 {
            return Some(format!(
                "at {} ms ({} of {}) members {down:?} of partition {partition} were down together",
                event.at_ms, event.what, event.pod
            ));
        }
    }
    None
}

/// The history of the data pods in `members`, one `ms pod what` a line.
fn data_pod_events(history: &[PodEvent], members: &BTreeMap<String, u32>) -> String {
    let mut out = String::from("data pod history:");
    for e in history.iter().filter(|e| members.contains_key(&e.pod)) {
        out.push_str(&format!("\n  {} {} {}", e.at_ms, e.pod, e.what));
    }
    out
}

impl Cluster {
    /// The table's StatefulSets.
    async fn statefulsets(&self, table: &str) -> anyhow::Result<Vec<StatefulSet>> {
        Ok(
            Api::<StatefulSet>::namespaced(self.client.clone(), APP_NAMESPACE)
                .list(&ListParams::default().labels(&format!("{TABLE_LABEL}={table}")))
                .await?
                .items,
        )
    }

    /// Pod name → partition of every data pod of `table`.
    async fn members(&self, table: &str) -> anyhow::Result<BTreeMap<String, u32>> {
        let mut members = BTreeMap::new();
        for sts in self.statefulsets(table).await? {
            let name = sts.metadata.name.clone().unwrap_or_default();
            let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            for ordinal in 0..replicas.max(0) as u32 {
                members.insert(format!("{name}-{ordinal}"), ordinal);
            }
        }
        Ok(members)
    }

    /// Waits until every StatefulSet of `table` satisfies `done` and runs
    /// all its pods at its template's revision, ready.
    async fn wait_rolled_out(
        &self,
        table: &str,
        done: impl Fn(&StatefulSet) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let sets = self.statefulsets(table).await?;
            let pending: Vec<String> = sets
                .iter()
                .filter(|s| {
                    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let status = s.status.clone().unwrap_or_default();
                    !(done(s)
                        && status.observed_generation == s.metadata.generation
                        && status.updated_replicas == Some(want)
                        && status.ready_replicas.unwrap_or(0) == want
                        && status.replicas == want)
                })
                .map(|s| s.metadata.name.clone().unwrap_or_default())
                .collect();
            if !sets.is_empty() && pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "not rolled out in {timeout:?}: {pending:?}; pods: {:?}{}",
                    self.runtime
                        .history()
                        .iter()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A writer and reader on Orders through the gateway pods, as the
    /// sample's user.
    fn orders_workload(&self) -> Workload {
        let book = self.runtime.address_book();
        let client = DataPlane {
            target: self.controllers.gateway.clone(),
            region: self.region.clone(),
            endpoints: std::sync::Arc::new(move || {
                book.get()
                    .into_iter()
                    .filter(|((ns, pod), _)| {
                        ns == "partita-system" && pod.starts_with("partita-gateway-")
                    })
                    .map(|(_, ip)| format!("{ip}:8000"))
                    .collect()
            }),
        };
        Workload::start(
            client,
            Credentials {
                access_key_id: "AKIASHOP000000000001".into(),
                secret_access_key: "shop-secret".into(),
            },
        )
    }
}

impl Cluster {
    /// The data pods of `table` that run now.
    fn members_running(&self, table: &str) -> Vec<String> {
        self.runtime
            .addresses()
            .into_keys()
            .filter(|(ns, pod)| ns == APP_NAMESPACE && pod.starts_with(&format!("{table}-")))
            .map(|(_, pod)| pod)
            .collect()
    }
}

/// The image of a StatefulSet's data container.
fn image(sts: &StatefulSet) -> Option<&str> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
}

/// `rolling-update`: an operator upgrade changes the data pods' image
/// while a writer and reader use Orders. Every data pod restarts on the
/// new image, never two members of a partition down at once, no
/// acknowledged write lost, and writes keep being acknowledged.
pub async fn rolling_update(args: &Args) -> anyhow::Result<()> {
    let (mut cluster, [first, _]) = orders_cluster(args).await?;
    // The user's policy has reached the gateways once the program runs.
    run_orders_program(&cluster, &first).await?;
    let members = cluster.members("orders").await?;
    let workload = cluster.orders_workload();
    workload
        .wait_progress(0, 20, Duration::from_secs(30))
        .await
        .context("before the upgrade")?;
    let change_ms = workload.now_ms();
    let since = cluster.runtime.now_ms();
    cluster.upgrade_operator(|config| config.image = "partita:v2".into())?;
    cluster
        .wait_rolled_out(
            "orders",
            |s| image(s) == Some("partita:v2"),
            Duration::from_secs(300),
        )
        .await?;
    let rolled_ms = workload.now_ms();
    workload
        .wait_progress(rolled_ms, 20, Duration::from_secs(30))
        .await
        .context("after the upgrade")?;
    let history = cluster.runtime.history();
    let report = workload
        .stop_and_check((change_ms, rolled_ms), Duration::from_secs(10))
        .await?;
    if let Some(outage) = two_members_down(&history, &members, since) {
        bail!("{outage}; {}", data_pod_events(&history, &members));
    }
    let restarted = history
        .iter()
        .filter(|e| e.at_ms >= since && e.what == "stopped" && members.contains_key(&e.pod))
        .count();
    if restarted < members.len() {
        bail!("only {restarted} of {} data pods restarted", members.len());
    }
    println!(
        "rolling-update: {} writes acknowledged ({} not), {} reads ({} failed) in {} ms; rollout took {} ms",
        report.acknowledged.len(),
        report.failed_writes,
        report.reads,
        report.failed_reads,
        report.ran_ms,
        rolled_ms - change_ms
    );
    Ok(())
}

impl Cluster {
    /// Waits until every data pod of `table` runs and is ready, and the
    /// Table is ACTIVE.
    async fn wait_table_ready(&self, table: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_rolled_out(table, |_| true, timeout).await?;
        self.wait_table_status(APP_NAMESPACE, table, "ACTIVE", timeout)
            .await
            .map(|_| ())
    }
}

/// The workload's check for the Orders scenarios: what it printed.
fn summary(scenario: &str, report: &crate::workload::Report) -> String {
    format!(
        "{scenario}: {} writes acknowledged ({} not), {} reads ({} failed) in {} ms",
        report.acknowledged.len(),
        report.failed_writes,
        report.reads,
        report.failed_reads,
        report.ran_ms
    )
}

/// `pod-delete`: each data pod of Orders deleted in turn (as a node drain
/// or `kubectl delete pod` would), waiting for it to come back ready; the
/// table keeps taking writes and loses none.
pub async fn pod_delete(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, _]) = orders_cluster(args).await?;
    run_orders_program(&cluster, &first).await?;
    let members = cluster.members("orders").await?;
    let workload = cluster.orders_workload();
    workload
        .wait_progress(0, 20, Duration::from_secs(30))
        .await?;
    let start_ms = workload.now_ms();
    let since = cluster.runtime.now_ms();
    let pods =
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(cluster.client.clone(), APP_NAMESPACE);
    for pod in members.keys() {
        let before = pods.get(pod).await?.metadata.uid;
        pods.delete(pod, &Default::default()).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = pods.get_opt(pod).await?.and_then(|p| p.metadata.uid);
            if now.is_some() && now != before {
                break;
            }
            if Instant::now() > deadline {
                bail!("pod {pod} was not recreated in 60 s{}", cluster.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Its own Ready condition (the StatefulSet's and the Table's status
        // may still show the pod it replaced), then every member's.
        wait_pods_ready(&pods, members.keys(), Duration::from_secs(120))
            .await
            .with_context(|| format!("after deleting {pod}"))?;
        cluster
            .wait_table_ready("orders", Duration::from_secs(120))
            .await
            .with_context(|| format!("after deleting {pod}"))?;
    }
    let end_ms = workload.now_ms();
    workload
        .wait_progress(end_ms, 20, Duration::from_secs(30))
        .await?;
    let history = cluster.runtime.history();
    let report = workload
        .stop_and_check((start_ms, end_ms), Duration::from_secs(10))
        .await?;
    if let Some(outage) = two_members_down(&history, &members, since) {
        bail!("{outage}; {}", data_pod_events(&history, &members));
    }
    println!("{}", summary("pod-delete", &report));
    Ok(())
}

/// Waits until every pod of `names` reports its Ready condition True.
async fn wait_pods_ready(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    names: impl Iterator<Item = &String> + Clone,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for name in names.clone() {
            let ready = pods.get_opt(name).await?.is_some_and(|p| {
                p.status
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if !ready {
                waiting.push(name.clone());
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pods not ready in {timeout:?}: {waiting:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `stop-resume`: Orders stopped (`clusterOperation.stopped`: STOPPED, no
/// data pod) and resumed (ACTIVE again) with every acknowledged write
/// still there; then, with `reconciliationPaused`, a change of the spec is
/// not applied until reconciliation resumes.
pub async fn stop_resume(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, _]) = orders_cluster(args).await?;
    run_orders_program(&cluster, &first).await?;
    let workload = cluster.orders_workload();
    workload
        .wait_progress(0, 50, Duration::from_secs(30))
        .await?;
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"clusterOperation": {"stopped": true}}),
        )
        .await?;
    let stopped = cluster
        .wait_table_status(APP_NAMESPACE, "orders", "STOPPED", Duration::from_secs(60))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.members_running("orders").is_empty() {
        if Instant::now() > deadline {
            bail!(
                "data pods still run after the Table was stopped: {:?}",
                cluster.members_running("orders")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let available = stopped
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Available"))
        .map(|c| (c.status.clone(), c.reason.clone()));
    if available != Some(("False".into(), "Stopped".into())) {
        bail!("a stopped Table's Available condition is {available:?}");
    }
    // While stopped, the table takes no writes.
    let stopped_ms = workload.now_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resume_ms = workload.now_ms();
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"clusterOperation": {"stopped": false}}),
        )
        .await?;
    cluster
        .wait_table_ready("orders", Duration::from_secs(120))
        .await?;
    let resumed_ms = workload.now_ms();
    workload
        .wait_progress(resumed_ms, 20, Duration::from_secs(60))
        .await
        .context("after resuming")?;
    // Paused: a new resource request is not applied.
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"clusterOperation": {"reconciliationPaused": true}}),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resources = serde_json::json!({"requests": {"cpu": "100m"}});
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"placement": {"resources": resources}}),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let applied = |sets: &[StatefulSet]| {
        sets.iter().all(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("cpu"))
                .map(|q| q.0.as_str())
                == Some("100m")
        })
    };
    if applied(&cluster.statefulsets("orders").await?) {
        bail!("a paused Table's change was applied");
    }
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"clusterOperation": {"reconciliationPaused": false}}),
        )
        .await?;
    cluster
        .wait_rolled_out(
            "orders",
            |s| applied(std::slice::from_ref(s)),
            Duration::from_secs(180),
        )
        .await
        .context("after reconciliation resumed")?;
    let end_ms = workload.now_ms();
    workload
        .wait_progress(end_ms, 20, Duration::from_secs(30))
        .await?;
    let report = workload
        .stop_and_check((resumed_ms, end_ms), Duration::from_secs(10))
        .await?;
    let during_stop = report
        .acknowledged
        .iter()
        .filter(|(_, at)| *at > stopped_ms && *at < resume_ms)
        .count();
    if during_stop > 0 {
        bail!("{during_stop} writes were acknowledged while the table was stopped");
    }
    println!("{}", summary("stop-resume", &report));
    Ok(())
}

/// Writes a fresh CA into `dir` (`tls.crt`, `tls.key`, as the kubelet
/// refreshes the operator's mount of `partita-rpc-ca`); its PEM files.
fn new_ca(dir: &std::path::Path) -> anyhow::Result<(String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "partita-rpc-ca-2");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key)?;
    let (cert, key) = (cert.pem(), key.serialize_pem());
    // The key first: the operator reads the pair whenever the certificate
    // changes.
    std::fs::write(dir.join("tls.key.new"), &key)?;
    std::fs::write(dir.join("tls.crt.new"), &cert)?;
    std::fs::rename(dir.join("tls.key.new"), dir.join("tls.key"))?;
    std::fs::rename(dir.join("tls.crt.new"), dir.join("tls.crt"))?;
    Ok((cert, key))
}

/// `ca-rotation`: the internal RPC's CA replaced while a writer and reader
/// use Orders: every certificate Secret ends issued by the new CA and
/// trusting it alone, the data pods and the gateways restarted onto it one
/// at a time, never two members of a partition down, no acknowledged write
/// lost, writes acknowledged all along.
pub async fn ca_rotation(args: &Args) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use partita_operator::tls::{tls_state, RpcCa};
    let (cluster, [first, _]) = orders_cluster(args).await?;
    let ca_dir = cluster
        .operator_config
        .rpc_ca_dir
        .clone()
        .context("the chart's operator has no RPC CA (rpc.tls.enabled is off)")?;
    run_orders_program(&cluster, &first).await?;
    let members = cluster.members("orders").await?;
    let workload = cluster.orders_workload();
    workload
        .wait_progress(0, 20, Duration::from_secs(30))
        .await?;
    let start_ms = workload.now_ms();
    let since = cluster.runtime.now_ms();
    let (cert, key) = new_ca(&ca_dir)?;
    let fingerprint = RpcCa::from_pem(&cert, &key)?.fingerprint().to_string();
    let secrets = [
        (APP_NAMESPACE, "orders-rpc-tls"),
        ("partita-system", "partita-gateway-rpc-tls"),
    ];
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut pending = Vec::new();
        for (ns, name) in secrets {
            let secret = Api::<Secret>::namespaced(cluster.client.clone(), ns)
                .get(name)
                .await?;
            let state = tls_state(&secret);
            let done = state.as_ref().is_some_and(|s| {
                s.issuer == fingerprint && s.trust == [fingerprint.clone()] && s.rolled
            });
            if !done {
                pending.push(format!("{name}: {state:?}"));
            }
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the CA rotation did not finish in 300 s: {pending:?}; {}{}",
                data_pod_events(&cluster.runtime.history(), &members),
                cluster.logs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cluster
        .wait_table_ready("orders", Duration::from_secs(120))
        .await?;
    cluster.wait_all_ready(Duration::from_secs(120)).await?;
    let end_ms = workload.now_ms();
    workload
        .wait_progress(end_ms, 20, Duration::from_secs(30))
        .await
        .context("after the rotation")?;
    let history = cluster.runtime.history();
    let report = workload
        .stop_and_check((start_ms, end_ms), Duration::from_secs(10))
        .await?;
    if let Some(outage) = two_members_down(&history, &members, since) {
        bail!("{outage}; {}", data_pod_events(&history, &members));
    }
    let restarts = history
        .iter()
        .filter(|e| e.at_ms >= since && e.what == "terminating" && members.contains_key(&e.pod))
        .count();
    if restarts < 3 * members.len() {
        bail!(
            "{restarts} data pod restarts: each of the {} pods should restart once per step (3)",
            members.len()
        );
    }
    println!(
        "{}; rotation took {} ms",
        summary("ca-rotation", &report),
        end_ms - start_ms
    );
    Ok(())
}

/// The storage request of each StatefulSet's claim template and of each
/// claim of `table`.
async fn claim_sizes(cluster: &Cluster, table: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let size = |spec: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>| {
        spec.and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default()
    };
    let templates = cluster
        .statefulsets(table)
        .await?
        .iter()
        .map(|s| {
            size(
                s.spec
                    .as_ref()
                    .and_then(|s| s.volume_claim_templates.as_ref())
                    .and_then(|t| t.first())
                    .and_then(|t| t.spec.as_ref()),
            )
        })
        .collect();
    let claims = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), APP_NAMESPACE)
        .list(&ListParams::default().labels(&format!("{TABLE_LABEL}={table}")))
        .await?
        .items
        .iter()
        .map(|c| size(c.spec.as_ref()))
        .collect();
    Ok((templates, claims))
}

/// `storage-resize`: with an expanding default StorageClass, Orders' volumes
/// grow from 1Gi to 2Gi while the writer and reader run: every claim is
/// expanded and the StatefulSets re-created around their pods, which keep
/// running (no data pod stops); then a smaller size is refused (Degraded
/// StorageShrinkRefused, the volumes kept) until the spec asks for what the
/// volumes have again.
pub async fn storage_resize(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, _]) = orders_cluster(args).await?;
    // Cluster-scoped: no namespace.
    crate::apply(
        &cluster.client,
        &serde_json::json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "example.com/local", "allowVolumeExpansion": true}),
    )
    .await?;
    run_orders_program(&cluster, &first).await?;
    let members = cluster.members("orders").await?;
    let workload = cluster.orders_workload();
    workload
        .wait_progress(0, 20, Duration::from_secs(30))
        .await?;
    let start_ms = workload.now_ms();
    let since = cluster.runtime.now_ms();
    let generation = cluster
        .patch_table(
            "orders",
            serde_json::json!({"placement": {"storage": {"size": "2Gi"}}}),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (templates, claims) = claim_sizes(&cluster, "orders").await?;
        let grown = templates.len() == 3
            && claims.len() == 3
            && templates.iter().chain(&claims).all(|s| s == "2Gi");
        if grown {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "volumes not resized in 120 s: templates {templates:?}, claims {claims:?}{}",
                cluster.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.wait_settled("orders", generation).await?;
    let history = cluster.runtime.history();
    let stopped: Vec<String> = history
        .iter()
        .filter(|e| e.at_ms >= since && members.contains_key(&e.pod))
        .filter(|e| e.what == "terminating" || e.what == "stopped")
        .map(|e| format!("{} {}", e.pod, e.what))
        .collect();
    if !stopped.is_empty() {
        bail!("data pods stopped during the resize: {stopped:?}");
    }
    // Smaller: refused, the volumes kept.
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"placement": {"storage": {"size": "1Gi"}}}),
        )
        .await?;
    let api = Api::<partita_operator::crd::table::Table>::namespaced(
        cluster.client.clone(),
        APP_NAMESPACE,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = api.get("orders").await?.status.unwrap_or_default();
        let refused = status.conditions.iter().any(|c| {
            c.type_ == "Degraded" && c.status == "True" && c.reason == "StorageShrinkRefused"
        });
        if refused {
            break;
        }
        if Instant::now() > deadline {
            bail!("a smaller size was not refused: {:?}", status.conditions);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (templates, claims) = claim_sizes(&cluster, "orders").await?;
    if templates.iter().chain(&claims).any(|s| s != "2Gi") {
        bail!("a refused shrink changed the volumes: templates {templates:?}, claims {claims:?}");
    }
    let generation = cluster
        .patch_table(
            "orders",
            serde_json::json!({"placement": {"storage": {"size": "2Gi"}}}),
        )
        .await?;
    cluster.wait_settled("orders", generation).await?;
    let end_ms = workload.now_ms();
    workload
        .wait_progress(end_ms, 20, Duration::from_secs(30))
        .await?;
    let report = workload
        .stop_and_check((start_ms, end_ms), Duration::from_secs(10))
        .await?;
    println!("{}", summary("storage-resize", &report));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: u64, pod: &str, what: &str) -> PodEvent {
        PodEvent {
            at_ms,
            namespace: "shop".into(),
            pod: pod.into(),
            what: what.into(),
        }
    }

    fn members() -> BTreeMap<String, u32> {
        [
            ("t-a-0", 0),
            ("t-b-0", 0),
            ("t-c-0", 0),
            ("t-a-1", 1),
            ("t-b-1", 1),
        ]
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect()
    }

    #[test]
    fn one_member_at_a_time_is_no_outage() {
        let mut history = Vec::new();
        for (i, pod) in ["t-a-0", "t-b-0", "t-c-0", "t-a-1", "t-b-1"]
            .iter()
            .enumerate()
        {
            history.push(event(i as u64, pod, "started"));
            history.push(event(10 + i as u64, pod, "ready"));
        }
        for (i, pod) in ["t-a-0", "t-a-1", "t-b-0", "t-c-0"].iter().enumerate() {
            let at = 100 + 10 * i as u64;
            history.push(event(at, pod, "stopped"));
            history.push(event(at + 1, pod, "started"));
            history.push(event(at + 5, pod, "ready"));
        }
        assert_eq!(two_members_down(&history, &members(), 50), None);
    }

    #[test]
    fn two_members_of_a_partition_down_together_are_found() {
        let mut history = Vec::new();
        for pod in ["t-a-0", "t-b-0", "t-c-0", "t-a-1", "t-b-1"] {
            history.push(event(0, pod, "ready"));
        }
        history.push(event(100, "t-a-0", "stopped"));
        history.push(event(101, "t-a-0", "started"));
        history.push(event(102, "t-b-0", "not ready"));
        history.push(event(103, "t-a-0", "ready"));
        let found = two_members_down(&history, &members(), 50).expect("an outage");
        assert!(
            found.contains("t-a-0") && found.contains("t-b-0"),
            "{found}"
        );
        // Before `since`, nothing is reported.
        assert_eq!(two_members_down(&history, &members(), 200), None);
        // Members of different partitions down together are no outage.
        let other = vec![
            event(0, "t-a-0", "ready"),
            event(0, "t-b-0", "ready"),
            event(0, "t-c-0", "ready"),
            event(0, "t-a-1", "ready"),
            event(0, "t-b-1", "ready"),
            event(100, "t-a-0", "stopped"),
            event(101, "t-a-1", "stopped"),
        ];
        assert_eq!(two_members_down(&other, &members(), 50), None);
    }
}
