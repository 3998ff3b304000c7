//! The sync state: what every path was at the last successful push or pull, kept in
//! `<basepath>/.fileconsul/` (never pushed). It makes `status` a three-way comparison (local,
//! Consul, last sync) and lets unchanged files skip hashing (same size and mtime).
//!
//! One state file per (datacenter, prefix), written atomically (temporary file + rename). A lock
//! file serializes the fileconsul processes that write to one base directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::layout::{Kind, Meta, RESERVED_DIR};

/// A SHA-256 content digest.
pub type Digest = [u8; 32];

pub fn digest(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

pub fn to_hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

mod hex_digest {
    use super::{from_hex, to_hex, Digest};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad digest"))
    }
}

/// What one path was at the last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    #[serde(rename = "h", with = "hex_digest")]
    pub digest: Digest,
    #[serde(rename = "k")]
    pub kind: Kind,
    #[serde(rename = "m")]
    pub mode: u32,
    #[serde(rename = "s")]
    pub size: u64,
    /// Local mtime (ns) when the file was last hashed.
    #[serde(rename = "t")]
    pub mtime_ns: i64,
    /// The key's `ModifyIndex` in Consul.
    #[serde(rename = "i")]
    pub index: u64,
}

impl StateEntry {
    pub fn meta(&self) -> Meta {
        Meta {
            kind: self.kind,
            mode: self.mode,
        }
    }
}

/// The whole sync state of one (datacenter, prefix) in one base directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub format: u32,
    pub prefix: String,
    pub datacenter: Option<String>,
    /// The revision of Consul's tree at the last sync (`None`: never synced).
    pub revision: Option<u64>,
    /// When the state was saved (ns since the epoch); files modified after it are re-hashed.
    pub saved_at_ns: i64,
    pub files: BTreeMap<String, StateEntry>,
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `<basepath>/.fileconsul/`: the sync state, the lock and the copies of overwritten files.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// Held while a process may write to the base directory.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

impl StateDir {
    pub fn new(base: &Path) -> StateDir {
        StateDir {
            dir: base.join(RESERVED_DIR),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn ensure(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))
    }

    /// Takes the base directory's lock, waiting for another fileconsul process to finish.
    pub fn lock(&self) -> Result<LockGuard> {
        self.ensure()?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard { _file: file })
    }

    fn file_for(&self, prefix: &str, datacenter: Option<&str>) -> PathBuf {
        let id = format!("{}\0{}", datacenter.unwrap_or(""), prefix);
        let short: String = to_hex(&digest(id.as_bytes())).chars().take(12).collect();
        let readable: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.dir.join(format!("state-{readable}-{short}.json"))
    }

    /// Loads the state, or an empty one (first run) when there is none.
    pub fn load(&self, prefix: &str, datacenter: Option<&str>) -> Result<SyncState> {
        let path = self.file_for(prefix, datacenter);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Refused(format!(
                    "{}: unreadable sync state ({e}); move it away to start over",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState {
                format: 1,
                prefix: prefix.to_owned(),
                datacenter: datacenter.map(str::to_owned),
                ..SyncState::default()
            }),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Saves the state atomically.
    pub fn save(&self, state: &mut SyncState) -> Result<()> {
        self.ensure()?;
        state.saved_at_ns = now_ns();
        let path = self.file_for(&state.prefix, state.datacenter.as_deref());
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let bytes = serde_json::to_vec(state).map_err(|e| Error::Refused(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(&path, e)
        })
    }

    /// Where `pull --force` keeps the local version of a file it replaced.
    pub fn conflict_copy(&self, stamp: &str, path: &str) -> PathBuf {
        self.dir.join("conflicts").join(stamp).join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_per_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let mut s = sd.load("app", None).unwrap();
        assert_eq!(s.revision, None);
        s.revision = Some(3);
        s.files.insert(
            "a/b".into(),
            StateEntry {
                digest: digest(b"x"),
                kind: Kind::File,
                mode: 0o755,
                size: 1,
                mtime_ns: 5,
                index: 9,
            },
        );
        sd.save(&mut s).unwrap();
        assert_eq!(sd.load("app", None).unwrap(), s);
        assert_eq!(sd.load("app2", None).unwrap().revision, None);
        assert_eq!(sd.load("app", Some("dc2")).unwrap().revision, None);
        let _guard = sd.lock().unwrap();
    }
}
