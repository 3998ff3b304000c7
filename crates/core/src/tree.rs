//! The local tree: a walk of the base directory that yields every regular file and symlink with
//! its metadata and content digest. A file whose size, mtime and mode match the sync state is not
//! read again. Entries that cannot be synchronized are collected as [`Refusal`]s (too large, a
//! symlink leaving the tree, a name that is not UTF-8) and other oddities as warnings (special
//! files, dangling or looping symlinks).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::layout::{resolve_link_target, Kind, Meta, RelPath, MAX_VALUE_SIZE, RESERVED_DIR};
use crate::state::{digest, Digest, SyncState};

/// One local file or symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    pub meta: Meta,
    pub size: u64,
    pub mtime_ns: i64,
    pub digest: Digest,
}

/// A local path that cannot be pushed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct LocalTree {
    pub files: BTreeMap<RelPath, LocalEntry>,
    pub refused: Vec<Refusal>,
    pub warnings: Vec<String>,
}

fn mtime_ns(md: &fs::Metadata) -> i64 {
    md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec()
}

/// Reads a file's bytes (or a symlink's target) as they would be stored in Consul.
pub fn read_content(path: &Path, kind: Kind) -> Result<Vec<u8>> {
    match kind {
        Kind::File => {
            let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
            Ok(buf)
        }
        Kind::Symlink => {
            let target = fs::read_link(path).map_err(|e| Error::io(path, e))?;
            Ok(target.into_os_string().into_encoded_bytes())
        }
    }
}

struct Walker<'a> {
    base: &'a Path,
    filter: &'a Filter,
    state: &'a SyncState,
    tree: LocalTree,
}

impl Walker<'_> {
    fn walk(&mut self, rel_dir: &str) -> Result<()> {
        let dir = if rel_dir.is_empty() {
            self.base.to_path_buf()
        } else {
            self.base.join(rel_dir)
        };
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(&dir, e))?;
        names.sort();
        for name in names {
            let Some(name) = name.to_str().map(str::to_owned) else {
                self.tree.refused.push(Refusal {
                    path: dir.join(&name).display().to_string(),
                    reason: "the name is not UTF-8, so it cannot be a Consul key".into(),
                });
                continue;
            };
            if rel_dir.is_empty() && name == RESERVED_DIR {
                continue;
            }
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            let full = dir.join(&name);
            let md = fs::symlink_metadata(&full).map_err(|e| Error::io(&full, e))?;
            if md.is_dir() {
                if self.filter.enters_dir(&rel) {
                    self.walk(&rel)?;
                }
                continue;
            }
            let path = match RelPath::parse(&rel) {
                Ok(p) => p,
                Err(reason) => {
                    self.tree.refused.push(Refusal { path: rel, reason });
                    continue;
                }
            };
            if !self.filter.includes(&path) {
                continue;
            }
            self.entry(path, &full, &md)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: RelPath, full: &Path, md: &fs::Metadata) -> Result<()> {
        let meta = if md.file_type().is_symlink() {
            Meta::symlink()
        } else if md.is_file() {
            Meta::file(md.permissions().mode())
        } else {
            self.tree.warnings.push(format!(
                "{path}: not a regular file, directory or symlink; skipped"
            ));
            return Ok(());
        };
        if meta.kind == Kind::File && md.len() > MAX_VALUE_SIZE {
            self.tree.refused.push(Refusal {
                path: path.to_string(),
                reason: format!(
                    "{} bytes is over Consul's value limit of {MAX_VALUE_SIZE} bytes",
                    md.len()
                ),
            });
            return Ok(());
        }
        let mtime = mtime_ns(md);
        // Reuse the digest when nothing observable changed and the file was not modified in the
        // same instant the state was saved (it could have changed again within that tick).
        if let Some(known) = self.state.files.get(path.as_str()) {
            if known.size == md.len()
                && known.mtime_ns == mtime
                && known.meta() == meta
                && mtime < self.state.saved_at_ns - 2_000_000_000
            {
                self.tree.files.insert(
                    path,
                    LocalEntry {
                        meta,
                        size: known.size,
                        mtime_ns: mtime,
                        digest: known.digest,
                    },
                );
                return Ok(());
            }
        }
        let content = read_content(full, meta.kind)?;
        if meta.kind == Kind::Symlink {
            let Ok(target) = std::str::from_utf8(&content) else {
                self.tree.refused.push(Refusal {
                    path: path.to_string(),
                    reason: "the symlink's target is not UTF-8".into(),
                });
                return Ok(());
            };
            match resolve_link_target(&path, target) {
                Err(reason) => {
                    self.tree.refused.push(Refusal {
                        path: path.to_string(),
                        reason: format!("symlink {reason}; only links inside the tree are shared"),
                    });
                    return Ok(());
                }
                Ok(_) => {
                    if let Some(problem) = link_problem(full) {
                        self.tree
                            .warnings
                            .push(format!("{path}: {problem} symlink (pushed as it is)"));
                    }
                }
            }
        }
        self.tree.files.insert(
            path,
            LocalEntry {
                meta,
                size: content.len() as u64,
                mtime_ns: mtime,
                digest: digest(&content),
            },
        );
        Ok(())
    }
}

/// "dangling" or "looping" when following the link fails, `None` when it resolves.
fn link_problem(full: &Path) -> Option<&'static str> {
    let mut seen = HashSet::new();
    let mut current = full.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Err(_) => return Some("dangling"),
            Ok(md) if !md.file_type().is_symlink() => return None,
            Ok(_) => {}
        }
        if !seen.insert(current.clone()) {
            return Some("looping");
        }
        let target = fs::read_link(&current).ok()?;
        current = match current.parent() {
            Some(parent) => parent.join(target),
            None => target,
        };
    }
    Some("looping")
}

/// Looks at the given paths only (for a watcher applying a change to a few files). Paths that do
/// not exist locally are absent from the result.
pub fn scan_paths<'p>(
    base: &Path,
    paths: impl IntoIterator<Item = &'p RelPath>,
    state: &SyncState,
) -> Result<LocalTree> {
    let filter = Filter::everything();
    let mut walker = Walker {
        base,
        filter: &filter,
        state,
        tree: LocalTree::default(),
    };
    for path in paths {
        let full = base.join(path.as_str());
        match fs::symlink_metadata(&full) {
            Ok(md) if md.is_dir() => walker.tree.refused.push(Refusal {
                path: path.to_string(),
                reason: "is a directory locally".into(),
            }),
            Ok(md) => walker.entry(path.clone(), &full, &md)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(e) => return Err(Error::io(&full, e)),
        }
    }
    Ok(walker.tree)
}

/// Walks the base directory. A missing base directory is an empty tree.
pub fn scan(base: &Path, filter: &Filter, state: &SyncState) -> Result<LocalTree> {
    match fs::symlink_metadata(base) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LocalTree::default()),
        Err(e) => return Err(Error::io(base, e)),
        Ok(_) => {}
    }
    let mut walker = Walker {
        base,
        filter,
        state,
        tree: LocalTree::default(),
    };
    walker.walk("")?;
    Ok(walker.tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn scan_finds_files_links_and_refuses_what_cannot_be_shared() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        fs::create_dir_all(base.join("bin")).unwrap();
        fs::write(base.join("bin/run"), b"#!/bin/sh\r\n").unwrap();
        fs::set_permissions(base.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("run", base.join("bin/alias")).unwrap();
        symlink("../../etc/passwd", base.join("bin/escape")).unwrap();
        symlink("missing", base.join("bin/dangling")).unwrap();
        fs::write(base.join("big"), vec![0u8; MAX_VALUE_SIZE as usize + 1]).unwrap();
        fs::create_dir_all(base.join(RESERVED_DIR)).unwrap();
        fs::write(base.join(RESERVED_DIR).join("x"), b"state").unwrap();

        let tree = scan(base, &Filter::everything(), &SyncState::default()).unwrap();
        let names: Vec<_> = tree.files.keys().map(|p| p.as_str()).collect();
        assert_eq!(names, ["bin/alias", "bin/dangling", "bin/run"]);
        let run = &tree.files[&RelPath::parse("bin/run").unwrap()];
        assert_eq!(run.meta, Meta::file(0o755));
        assert_eq!(run.digest, digest(b"#!/bin/sh\r\n"));
        assert_eq!(
            tree.files[&RelPath::parse("bin/alias").unwrap()].digest,
            digest(b"run")
        );
        let refused: Vec<_> = tree.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, ["big", "bin/escape"]);
        assert!(tree
            .warnings
            .iter()
            .any(|w| w.contains("bin/dangling: dangling")));
    }
}
