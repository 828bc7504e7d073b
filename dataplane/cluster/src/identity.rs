//! A replica's identity, kept on its own disk: `member.json` in the data
//! directory names the Raft member the directory belongs to — its member
//! id, table and partition — from the first start on.
//!
//! What it guards today: a data directory is only ever opened as the
//! member it was created for. A volume mounted on the wrong pod (another
//! partition, another table, or a zone whose member id differs) is refused
//! with a clear error instead of being opened as somebody else's replica.
//! Data directories written before this file existed (a Raft log, no
//! `member.json`) are adopted as the member their flags name.
//!
//! Not yet (see `docs/membership.md`): an *empty* data directory still
//! starts as the member its zone names and initializes the group again; the
//! plan gives it a new identity and a membership change instead.
//!
//! Format (version 1):
//!
//! ```json
//! {"formatVersion": 1, "memberId": 2, "table": "Orders", "partition": 0, "createdAtMs": 1796635429723}
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// The identity file's name in a replica's data directory.
pub const FILE_NAME: &str = "member.json";
const FORMAT_VERSION: u32 = 1;

/// The member a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub format_version: u32,
    pub member_id: u64,
    pub table: String,
    pub partition: u32,
    pub created_at_ms: u64,
}

fn config(message: String) -> ClusterError {
    ClusterError::Config(message)
}

fn path_of(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

impl Identity {
    /// Reads the identity of `dir`; `None` when it has none yet.
    pub fn load(dir: &Path) -> Result<Option<Identity>, ClusterError> {
        let path = path_of(dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(config(format!("reading {}: {e}", path.display()))),
        };
        let identity: Identity = serde_json::from_slice(&bytes)
            .map_err(|e| config(format!("{} is not a member identity: {e}", path.display())))?;
        if identity.format_version != FORMAT_VERSION {
            return Err(config(format!(
                "{} has format version {}; this partita reads version {FORMAT_VERSION}",
                path.display(),
                identity.format_version
            )));
        }
        Ok(Some(identity))
    }

    /// Writes the identity durably: a temporary file, fsynced, renamed over
    /// the file, and the directory fsynced.
    pub fn save(&self, dir: &Path) -> Result<(), ClusterError> {
        let path = path_of(dir);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| config(format!("encoding the member identity: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| config(format!("writing {}: {e}", path.display())))
    }

    /// Returns the identity of `dir` when it belongs to member `member_id`
    /// of `table`'s partition `partition`, creating it when the directory
    /// has none; refuses a directory that belongs to another member.
    pub fn establish(
        dir: &Path,
        table: &str,
        partition: u32,
        member_id: u64,
        now_ms: u64,
    ) -> Result<Identity, ClusterError> {
        let wanted = Identity {
            format_version: FORMAT_VERSION,
            member_id,
            table: table.to_string(),
            partition,
            created_at_ms: now_ms,
        };
        match Identity::load(dir)? {
            Some(found) => {
                if (found.table.as_str(), found.partition, found.member_id)
                    != (table, partition, member_id)
                {
                    return Err(config(format!(
                        "data directory {} belongs to member {} of table {} partition {}, not to member {member_id} of table {table} partition {partition}: a volume mounted on the wrong replica is never opened",
                        dir.display(),
                        found.member_id,
                        found.table,
                        found.partition
                    )));
                }
                Ok(found)
            }
            None => {
                wanted.save(dir)?;
                tracing::info!(dir = %dir.display(), member_id, table, partition,
                    "member identity written to the data directory");
                Ok(wanted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap(), None);
        let first = Identity::establish(dir.path(), "T", 1, 2, 100).unwrap();
        assert_eq!(first.member_id, 2);
        // A later start keeps the first identity (its creation time too).
        let again = Identity::establish(dir.path(), "T", 1, 2, 999).unwrap();
        assert_eq!(again, first);
        assert_eq!(Identity::load(dir.path()).unwrap(), Some(first));
        assert!(!dir.path().join("member.json.tmp").exists());
    }

    #[test]
    fn a_directory_of_another_member_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::establish(dir.path(), "T", 1, 2, 100).unwrap();
        for (table, partition, member) in [("U", 1, 2), ("T", 0, 2), ("T", 1, 0)] {
            let err = Identity::establish(dir.path(), table, partition, member, 100)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("belongs to member 2 of table T partition 1"),
                "{err}"
            );
        }
    }

    #[test]
    fn unreadable_or_newer_identities_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(Identity::load(dir.path()).is_err());
        std::fs::write(
            dir.path().join(FILE_NAME),
            br#"{"formatVersion": 2, "memberId": 1, "table": "T", "partition": 0, "createdAtMs": 0}"#,
        )
        .unwrap();
        let err = Identity::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
    }
}
