//! `partita gateway --replication FILE`: the chart always passes the flag
//! and mounts the operator's Secret as optional, so a missing file must not
//! stop the gateway; an invalid file is refused at start as `partita serve`
//! refuses it. (Replication itself is tested through dev-clusters by the
//! black-box global-tables tests, `PARTITA_BLACKBOX_CLUSTER=2`.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_ports, Cluster, BIN};
use crate::put;

#[test]
fn gateway_accepts_a_missing_replication_file_and_refuses_an_invalid_one() {
    let missing = std::env::temp_dir().join(format!(
        "partita-missing-replication-{}.json",
        std::process::id()
    ));
    let missing_arg = missing.display().to_string();
    let cluster = Cluster::start_with_gateway(1, &["--replication", &missing_arg]);
    assert!(
        put(&cluster, "r", "1", 1),
        "gateway without its replication file serves writes"
    );

    let invalid = cluster.topology.with_file_name("replication.json");
    std::fs::write(
        &invalid,
        r#"{"formatVersion": 1, "peers": [], "tables": {"Items": ["eu-west-1"]}}"#,
    )
    .unwrap();
    let port = free_ports(1)[0].to_string();
    let mut gateway = Command::new(BIN)
        .args(["gateway", "--topology-file"])
        .arg(&cluster.topology)
        .args(["--port", &port, "--admin-port", "0", "--replication"])
        .arg(&invalid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = gateway.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = gateway.kill();
            panic!("a gateway with an invalid replication file kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut gateway.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("replication file refused")
            && stderr.contains("names region \"eu-west-1\", which is not a peer"),
        "{stderr}"
    );
}
