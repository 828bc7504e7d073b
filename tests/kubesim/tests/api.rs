//! The simulated API behaves like Kubernetes where the operator depends on
//! it: watches deliver later changes, server-side apply prunes, and
//! StatefulSet updates Kubernetes refuses are refused.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use partita_kubesim::KubeSim;
use serde_json::json;

async fn sim() -> KubeSim {
    KubeSim::new(kube_fake_client::ClientBuilder::new())
        .await
        .unwrap()
}

fn configmap(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop",
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

/// A watcher started before a change receives it: creations, updates and
/// deletions of matching objects, and nothing about other objects.
#[tokio::test]
async fn a_watch_delivers_changes_made_after_it_started() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "shop");
    let mut events = watcher(
        api.clone(),
        watcher::Config::default().labels("app=partita"),
    )
    .touched_objects()
    .boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let _ = tx.send(event.map(|cm| {
                (
                    cm.metadata.name.unwrap_or_default(),
                    cm.data.unwrap_or_default().get("v").cloned(),
                )
            }));
        }
    });
    // Give the watcher time to list (an empty list) and start watching.
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.create(
        &PostParams::default(),
        &configmap("other", &[("app", "else")], &[("v", "0")]),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &configmap("topology", &[("app", "partita")], &[("v", "1")]),
    )
    .await
    .unwrap();
    let got = next(&mut rx).await;
    assert_eq!(
        got.unwrap(),
        ("topology".to_string(), Some("1".to_string()))
    );
    api.patch(
        "topology",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    let got = next(&mut rx).await;
    assert_eq!(
        got.unwrap(),
        ("topology".to_string(), Some("2".to_string()))
    );
    // A raw watch sees the deletion.
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut raw = api
        .watch(&WatchParams::default().labels("app=partita"), &rv)
        .await
        .unwrap()
        .boxed();
    api.delete("topology", &DeleteParams::default())
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), raw.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Deleted(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("topology")),
        other => panic!("expected the deletion, got {other:?}"),
    }
}

/// A watch from a resource version replays what happened after it: a
/// client that listed, then started watching late, misses nothing.
#[tokio::test]
async fn a_watch_from_a_resource_version_misses_nothing() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "shop");
    api.create(&PostParams::default(), &configmap("a", &[], &[("v", "1")]))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    // Changes between the list and the watch.
    api.create(&PostParams::default(), &configmap("b", &[], &[("v", "1")]))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut watch = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Ok(Some(event)) = watch.try_next().await {
        seen.push(match event {
            WatchEvent::Added(cm) => format!("added {}", cm.metadata.name.unwrap()),
            WatchEvent::Modified(cm) => format!("modified {}", cm.metadata.name.unwrap()),
            WatchEvent::Deleted(cm) => format!("deleted {}", cm.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["added b", "deleted a"]);
}

/// Server-side apply removes the fields a manager applied before and
/// stopped applying, and keeps what another manager applies.
#[tokio::test]
async fn server_side_apply_prunes_what_a_manager_stopped_applying() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "shop");
    let operator = PatchParams::apply("partita-operator").force();
    api.patch(
        "cfg",
        &operator,
        &Patch::Apply(configmap("cfg", &[("a", "1")], &[("x", "1"), ("y", "2")])),
    )
    .await
    .unwrap();
    api.patch(
        "cfg",
        &PatchParams::apply("someone-else").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "labels": {"theirs": "t"}}})),
    )
    .await
    .unwrap();
    let after = api
        .patch(
            "cfg",
            &operator,
            &Patch::Apply(configmap("cfg", &[], &[("x", "1")])),
        )
        .await
        .unwrap();
    assert_eq!(
        after.data.unwrap(),
        BTreeMap::from([("x".to_string(), "1".to_string())])
    );
    assert_eq!(
        after.metadata.labels.unwrap(),
        BTreeMap::from([("theirs".to_string(), "t".to_string())])
    );
}

type Seen = Result<(String, Option<String>), watcher::Error>;

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the watcher runs")
}

fn statefulset(storage: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "orders-zone-a", "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "serviceName": "orders",
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {"metadata": {"labels": {"app": "orders"}},
                "spec": {"containers": [{"name": "partita", "image": format!("partita:{replicas}")}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}]
        }
    })
}

/// A StatefulSet change Kubernetes refuses (its volumeClaimTemplates) is
/// refused with Kubernetes' error; replicas and the template may change.
#[tokio::test]
async fn a_statefulset_change_kubernetes_refuses_is_refused() {
    let sim = sim().await;
    let api: Api<StatefulSet> = Api::namespaced(sim.client(), "shop");
    let apply = PatchParams::apply("partita-operator").force();
    api.patch(
        "orders-zone-a",
        &apply,
        &Patch::Apply(statefulset("1Gi", 1)),
    )
    .await
    .unwrap();
    let changed = api
        .patch(
            "orders-zone-a",
            &apply,
            &Patch::Apply(statefulset("1Gi", 3)),
        )
        .await
        .unwrap();
    assert_eq!(changed.spec.unwrap().replicas, Some(3));
    let refused = api
        .patch(
            "orders-zone-a",
            &apply,
            &Patch::Apply(statefulset("2Gi", 3)),
        )
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert_eq!(status.reason, "Invalid");
            assert!(
                status
                    .message
                    .contains("spec: Forbidden: updates to statefulset spec for fields other than"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
    // A merge patch of the selector is refused too; the object is unchanged.
    let refused = api
        .patch(
            "orders-zone-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "x"}}}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref s) if s.code == 422),
        "{refused:?}"
    );
    let stored = api.get("orders-zone-a").await.unwrap();
    let spec = stored.spec.unwrap();
    assert_eq!(
        spec.volume_claim_templates.unwrap()[0]
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "1Gi"
    );
    assert_eq!(spec.selector.match_labels.unwrap()["app"], "orders");
}

/// A Secret written with `stringData` reads back with it in `data`, as
/// from the API server.
#[tokio::test]
async fn a_secrets_string_data_reads_back_as_data() {
    use k8s_openapi::api::core::v1::Secret;
    let sim = sim().await;
    let api: Api<Secret> = Api::namespaced(sim.client(), "shop");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "keys", "namespace": "shop"},
        "data": {"kept": "a2VwdA=="},
        "stringData": {"accessKeyId": "AKIA1"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &secret).await.unwrap();
    let mut read = api.get("keys").await.unwrap();
    assert_eq!(read.string_data, None);
    let data = read.data.clone().unwrap();
    assert_eq!(data["accessKeyId"].0, b"AKIA1");
    assert_eq!(data["kept"].0, b"kept");
    read.string_data = Some(BTreeMap::from([("accessKeyId".into(), "AKIA2".into())]));
    api.replace("keys", &PostParams::default(), &read)
        .await
        .unwrap();
    let data = api.get("keys").await.unwrap().data.unwrap();
    assert_eq!(data["accessKeyId"].0, b"AKIA2");
}

/// A write that changes nothing (the same status applied again) makes no
/// watch event, as with the API server; a real change does.
#[tokio::test]
async fn a_write_that_changes_nothing_makes_no_watch_event() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "shop");
    api.create(
        &PostParams::default(),
        &configmap("same", &[], &[("v", "1")]),
    )
    .await
    .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    // The creation first.
    let first = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");
    let params = PatchParams::apply("test");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "same", "namespace": "shop"}, "data": {"v": "1"}});
    api.patch("same", &params, &Patch::Apply(&body))
        .await
        .unwrap();
    api.patch("same", &params, &Patch::Apply(&body))
        .await
        .unwrap();
    api.patch(
        "same",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "same", "namespace": "shop"}, "data": {"v": "2"}});
    api.patch("same", &params, &Patch::Apply(&changed))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap();
    match next {
        Some(WatchEvent::Modified(cm)) => {
            assert_eq!(
                cm.data.unwrap()["v"],
                "2",
                "the first event is the real change"
            )
        }
        other => panic!("expected the change, got {other:?}"),
    }
}

/// Deleting an object with finalizers marks it (`deletionTimestamp`, a
/// `MODIFIED` event) and keeps it until its finalizers are removed; then
/// it goes (a `DELETED` event).
#[tokio::test]
async fn an_object_with_finalizers_stays_until_they_are_removed() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "shop");
    let mut cm = configmap("held", &[], &[("v", "1")]);
    cm.metadata.finalizers = Some(vec!["partita.dev/test".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    let mut events = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    async fn next<S>(events: &mut S) -> WatchEvent<ConfigMap>
    where
        S: futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin,
    {
        tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }
    assert!(matches!(next(&mut events).await, WatchEvent::Added(_)));
    api.delete("held", &DeleteParams::default()).await.unwrap();
    match next(&mut events).await {
        WatchEvent::Modified(cm) => assert!(cm.metadata.deletion_timestamp.is_some()),
        other => panic!("expected the deletion mark, got {other:?}"),
    }
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    // An update that keeps the finalizer keeps the object.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut events).await, WatchEvent::Modified(_)));
    assert!(api.get_opt("held").await.unwrap().is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::<()>::Json(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers/0"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    let mut saw_deleted = false;
    for _ in 0..2 {
        if let WatchEvent::Deleted(_) = next(&mut events).await {
            saw_deleted = true;
            break;
        }
    }
    assert!(saw_deleted, "the object went with its last finalizer");
    assert!(api.get_opt("held").await.unwrap().is_none());
}
