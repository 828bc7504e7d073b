//! DynamoDB Streams through the gateway.
//!
//! Every replica of a partition's group keeps the same change log (the
//! commands carry their clock, see [`Command::Timed`]), so the group's
//! leader answers for it. A table's streams are the union of its
//! partitions' streams: each group's store holds its partition as
//! partition 0, so its shards come back renumbered with the cluster
//! partition, and their ids rewritten with it (the stores of two groups
//! would give the first shards of two partitions the same id). Records of
//! shard `p` are read from group `p`.
//!
//! The key that signs shard iterators is a replicated secret of one home
//! group — partition 0 of the dynamic-tables entry, else of the first
//! table of the topology — proposed once (the first value wins), then
//! cached.

use partita_storage::{random_secret, ChangePage, StorageError, StreamInfo};
use partita_topology::topology::DYNAMIC_TABLES;

use super::{unavailable, Router};
use crate::rpc::{Request, Response};
use crate::types::{Command, Reply};

impl Router {
    /// The table's incarnation id and its streams, over every partition.
    pub(super) async fn cluster_streams(
        &self,
        table: &str,
    ) -> Result<(String, Vec<StreamInfo>), StorageError> {
        let topo = self.table_topology(table)?;
        let mut table_id = String::new();
        let mut merged: Vec<StreamInfo> = Vec::new();
        for part in &topo.partitions {
            let (id, streams) = self
                .call(
                    &topo,
                    part.id,
                    true,
                    true,
                    |t| Request::Streams {
                        target: t,
                        table: table.to_string(),
                    },
                    |r| match r {
                        Response::Streams(r) => Some(r),
                        _ => None,
                    },
                )
                .await?;
            table_id = id;
            for mut stream in streams {
                for shard in &mut stream.shards {
                    shard.partition = part.id;
                    shard.id = cluster_shard_id(&shard.id, part.id);
                    shard.parent = shard.parent.take().map(|p| cluster_shard_id(&p, part.id));
                }
                match merged.iter_mut().find(|s| s.label == stream.label) {
                    Some(known) => {
                        known.enabled &= stream.enabled;
                        known.shards.extend(stream.shards);
                    }
                    None => merged.push(stream),
                }
            }
        }
        Ok((table_id, merged))
    }

    /// A page of partition `partition`'s change log, from its leader.
    pub(super) async fn cluster_read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<ChangePage, StorageError> {
        let topo = self.table_topology(table)?;
        if topo.partitions.get(partition as usize).is_none() {
            return Err(StorageError::InvalidSegment {
                segment: partition,
                total_segments: topo.partitions.len() as u32,
            });
        }
        self.call(
            &topo,
            partition,
            true,
            true,
            |t| Request::ReadChanges {
                target: t,
                table: table.to_string(),
                from,
                until,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            },
            |r| match r {
                Response::Changes(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    /// The replicated secret `name` of the home group.
    pub(super) async fn cluster_secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        if let Some(secret) = self.secrets.lock().get(name) {
            return Ok(*secret);
        }
        let home = {
            let topology = self.topology.read();
            topology
                .table(DYNAMIC_TABLES)
                .or_else(|| topology.tables.first())
                .cloned()
                .ok_or_else(|| unavailable("the topology has no tables".into()))?
        };
        let command = Command::Secret(name.to_string(), random_secret());
        let secret = match self.write_group(&home, 0, command).await? {
            Reply::Secret(Ok(secret)) => secret,
            Reply::Secret(Err(e)) => return Err(e.into()),
            _ => return Err(unavailable("malformed secret reply".into())),
        };
        self.secrets.lock().insert(name.to_string(), secret);
        Ok(secret)
    }
}

/// Returns the cluster-wide id of shard `id` of partition `partition`:
/// DynamoDB's shape (`shardId-<time>-<8 hex digits>`) with the hex part
/// hashed together with the partition (FNV-1a, stable across builds).
pub(super) fn cluster_shard_id(id: &str, partition: u32) -> String {
    let (head, tail) = id.rsplit_once('-').unwrap_or((id, ""));
    let mut hash: u32 = 0x811c_9dc5;
    for byte in tail.bytes().chain(partition.to_be_bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{head}-{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_differ_per_partition_and_keep_their_shape() {
        let id = "shardId-00000001800000000000-1a2b3c4d";
        let (a, b) = (cluster_shard_id(id, 0), cluster_shard_id(id, 1));
        assert_ne!(a, b);
        assert_eq!(a, cluster_shard_id(id, 0));
        for s in [&a, &b] {
            assert_eq!(s.len(), id.len());
            assert!(s.starts_with("shardId-00000001800000000000-"));
        }
    }
}
