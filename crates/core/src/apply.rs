//! Local writes: every file is written to a temporary file in its own directory and renamed into
//! place, so a reader never sees a torn file. Parents are created as real directories and a path
//! whose parent is a symlink (or a file) is never written through, so nothing lands outside the
//! base directory whatever the keys in Consul say. Directories a delete leaves empty are removed.
//!
//! [`LocalWriter`] stages files first and renames them all at the end (after one `syncfs`), so the
//! window in which a pull is half-applied on disk is as short as a series of renames. Temporary
//! files left by an error or a panic are removed when the writer is dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::filter::TEMP_PREFIX;
use crate::layout::{Kind, Meta, RelPath};

/// Why a path cannot be written where it should go.
#[derive(Debug)]
pub enum Blocked {
    /// An ancestor is a file or symlink (which may go away when this pull deletes it).
    Parent(String),
    Io(Error),
}

struct Staged {
    path: RelPath,
    tmp: PathBuf,
    target: PathBuf,
}

/// Stages files as temporary files next to their targets, then renames them into place.
pub struct LocalWriter {
    base: PathBuf,
    pid: u32,
    counter: u64,
    staged: Vec<Staged>,
}

/// Makes sure every ancestor of `path` below `base` is a real directory, creating missing ones.
/// Never follows a symlink: an ancestor that is a symlink or a file blocks the write.
pub fn prepare_parent(base: &Path, path: &RelPath) -> Result<PathBuf, Blocked> {
    fs::create_dir_all(base).map_err(|e| Blocked::Io(Error::io(base, e)))?;
    let mut dir = base.to_path_buf();
    if let Some(parent) = path.parent() {
        for component in parent.split('/') {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                Ok(md) => {
                    let what = if md.file_type().is_symlink() {
                        "a symlink"
                    } else {
                        "a file"
                    };
                    return Err(Blocked::Parent(format!(
                        "{} is {what}, not a directory",
                        dir.strip_prefix(base).unwrap_or(&dir).display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir).map_err(|e| Blocked::Io(Error::io(&dir, e)))?;
                }
                Err(e) => return Err(Blocked::Io(Error::io(&dir, e))),
            }
        }
    }
    Ok(dir)
}

impl LocalWriter {
    pub fn new(base: &Path) -> LocalWriter {
        LocalWriter {
            base: base.to_path_buf(),
            pid: std::process::id(),
            counter: 0,
            staged: Vec::new(),
        }
    }

    pub fn staged_count(&self) -> usize {
        self.staged.len()
    }

    /// Writes `bytes` (a file's content or a symlink's target) to a temporary file beside `path`.
    pub fn stage(&mut self, path: &RelPath, meta: Meta, bytes: &[u8]) -> Result<(), Blocked> {
        let dir = prepare_parent(&self.base, path)?;
        self.counter += 1;
        let tmp = dir.join(format!("{TEMP_PREFIX}{}.{}", self.pid, self.counter));
        let write = || -> io::Result<()> {
            match meta.kind {
                Kind::File => {
                    let mut f: File = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    f.write_all(bytes)?;
                    f.set_permissions(fs::Permissions::from_mode(meta.mode))?;
                    Ok(())
                }
                Kind::Symlink => {
                    let target = std::str::from_utf8(bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    std::os::unix::fs::symlink(target, &tmp)
                }
            }
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(Blocked::Io(Error::io(self.base.join(path.as_str()), e)));
        }
        self.staged.push(Staged {
            path: path.clone(),
            tmp,
            target: self.base.join(path.as_str()),
        });
        Ok(())
    }

    /// Renames every staged file into place after flushing them to disk. Returns the paths
    /// written and, separately, those that could not be (with the error).
    pub fn commit(mut self) -> (Vec<RelPath>, Vec<(RelPath, Error)>) {
        sync_filesystem(&self.base);
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for staged in std::mem::take(&mut self.staged) {
            let result = match fs::symlink_metadata(&staged.target) {
                // rename() would fail on a directory; never replace one with a file.
                Ok(md) if md.is_dir() => Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a directory is in the way",
                )),
                _ => fs::rename(&staged.tmp, &staged.target),
            };
            match result {
                Ok(()) => done.push(staged.path),
                Err(e) => {
                    let _ = fs::remove_file(&staged.tmp);
                    failed.push((staged.path, Error::io(&staged.target, e)));
                }
            }
        }
        sync_filesystem(&self.base);
        (done, failed)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        for staged in &self.staged {
            let _ = fs::remove_file(&staged.tmp);
        }
    }
}

/// Flushes the base directory's filesystem (one `syncfs`, not one `fsync` a file).
fn sync_filesystem(base: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(dir) = File::open(base) {
        // SAFETY: syncfs only reads the descriptor, which stays open for the call.
        unsafe {
            libc::syncfs(dir.as_raw_fd());
        }
    }
}

/// Deletes a file or symlink at `path` (never a directory), then the directories this leaves
/// empty, up to the base.
pub fn delete(base: &Path, path: &RelPath) -> Result<()> {
    if let Err(Blocked::Parent(why)) = check_parents(base, path) {
        return Err(Error::Refused(format!("{path}: not deleted, {why}")));
    }
    let target = base.join(path.as_str());
    match fs::symlink_metadata(&target) {
        Ok(md) if md.is_dir() => {
            return Err(Error::Refused(format!(
                "{path}: is a directory locally; not deleted"
            )))
        }
        Ok(_) => fs::remove_file(&target).map_err(|e| Error::io(&target, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&target, e)),
    }
    remove_empty_parents(base, path);
    Ok(())
}

fn check_parents(base: &Path, path: &RelPath) -> Result<(), Blocked> {
    let mut dir = base.to_path_buf();
    if let Some(parent) = path.parent() {
        for component in parent.split('/') {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(Blocked::Parent(format!(
                        "{} is not a directory",
                        dir.strip_prefix(base).unwrap_or(&dir).display()
                    )))
                }
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

fn remove_empty_parents(base: &Path, path: &RelPath) {
    let mut current = path.parent().map(str::to_owned);
    while let Some(dir) = current {
        // remove_dir only removes an empty directory.
        if fs::remove_dir(base.join(&dir)).is_err() {
            break;
        }
        current = dir.rsplit_once('/').map(|(p, _)| p.to_owned());
    }
}

/// Moves the local version of `path` to `dest` (inside `.fileconsul/conflicts/`), keeping it.
pub fn keep_copy(base: &Path, path: &RelPath, dest: &Path) -> Result<()> {
    let source = base.join(path.as_str());
    if fs::symlink_metadata(&source).is_err() {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    fs::copy(&source, dest)
        .map(|_| ())
        .or_else(|_| {
            // A symlink (possibly dangling) is kept as a symlink.
            let target = fs::read_link(&source)?;
            std::os::unix::fs::symlink(target, dest)
        })
        .map_err(|e| Error::io(dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn staged_files_land_atomically_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let mut w = LocalWriter::new(base);
        w.stage(&rel("a/b/run"), Meta::file(0o750), b"x\r\n ")
            .unwrap();
        w.stage(&rel("a/link"), Meta::symlink(), b"b/run").unwrap();
        assert!(!base.join("a/b/run").exists(), "visible before commit");
        let (done, failed) = w.commit();
        assert_eq!((done.len(), failed.len()), (2, 0));
        assert_eq!(fs::read(base.join("a/b/run")).unwrap(), b"x\r\n ");
        let mode = fs::metadata(base.join("a/b/run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        assert_eq!(
            fs::read_link(base.join("a/link")).unwrap(),
            Path::new("b/run")
        );
        delete(base, &rel("a/b/run")).unwrap();
        assert!(!base.join("a/b").exists(), "empty directory left behind");
        assert!(base.join("a").exists());
    }

    #[test]
    fn never_writes_through_a_symlinked_parent() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let base = dir.path();
        symlink(outside.path(), base.join("evil")).unwrap();
        let mut w = LocalWriter::new(base);
        assert!(matches!(
            w.stage(&rel("evil/x"), Meta::file(0o644), b"pwned"),
            Err(Blocked::Parent(_))
        ));
        drop(w);
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn dropped_writer_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LocalWriter::new(dir.path());
        w.stage(&rel("f"), Meta::file(0o644), b"1").unwrap();
        drop(w);
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
