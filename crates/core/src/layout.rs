//! How a directory tree is laid out in Consul's KV store.
//!
//! * A file `dir/name` is stored at key `<prefix>/dir/name`; its value is the file's bytes, raw,
//!   so `consul kv get` and other KV readers see the file itself.
//! * A symlink is stored at its path too; its value is the link's target.
//! * The entry's 64-bit `Flags` carry the file's metadata ([`encode_flags`]):
//!
//!   ```text
//!   bits 63..56  0xFC  magic: "written by fileconsul"
//!   bits 55..48  0x01  layout version
//!   bits 47..16  0     reserved
//!   bits 15..12  kind: 1 regular file, 2 symlink (3 is reserved for files split into chunks)
//!   bits 11..0   Unix permission bits (only rwx for user/group/other are kept: 0o777)
//!   ```
//!
//!   An entry whose flags lack the magic (written by `consul kv put`, another tool or the
//!   original fileconsul) is a regular file with mode 0644.
//! * fileconsul's own bookkeeping lives under `<prefix>/.fileconsul/` (see [`RESERVED_DIR`]); no
//!   file of that name is ever pushed, pulled or shown.
//! * The prefix is a directory boundary: everything is read as `<prefix>/…`, so `--prefix app`
//!   never touches `app2/…` or `apple`.

use std::fmt;

use crate::error::{Error, Result};

/// The reserved name inside the prefix (remote) and the base directory (local).
pub const RESERVED_DIR: &str = ".fileconsul";

/// Consul's default maximum value size (`limits.kv_max_value_size`).
pub const MAX_VALUE_SIZE: u64 = 512 * 1024;

const MAGIC: u64 = 0xFC01 << 48;
const MAGIC_MASK: u64 = 0xFFFF << 48;
const KIND_SHIFT: u32 = 12;
const PERM_MASK: u64 = 0o777;
const DEFAULT_FOREIGN_MODE: u32 = 0o644;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Symlink,
}

/// The metadata kept with every file: its kind and permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits (`0o777` at most); 0 for symlinks.
    pub mode: u32,
}

impl Meta {
    pub fn file(mode: u32) -> Self {
        Meta {
            kind: Kind::File,
            mode: mode & PERM_MASK as u32,
        }
    }

    pub fn symlink() -> Self {
        Meta {
            kind: Kind::Symlink,
            mode: 0,
        }
    }
}

/// Encodes metadata into an entry's `Flags`.
pub fn encode_flags(meta: Meta) -> u64 {
    let kind = match meta.kind {
        Kind::File => 1u64,
        Kind::Symlink => 2u64,
    };
    MAGIC | (kind << KIND_SHIFT) | (u64::from(meta.mode) & PERM_MASK)
}

/// Decodes an entry's `Flags`. Foreign flags (no magic) mean a regular file of mode 0644; flags
/// with the magic but a layout this version does not know are an error, so that an older binary
/// never writes something it does not understand.
pub fn decode_flags(flags: u64) -> Result<Meta, String> {
    if flags & MAGIC_MASK != MAGIC {
        return Ok(Meta::file(DEFAULT_FOREIGN_MODE));
    }
    match (flags >> KIND_SHIFT) & 0xF {
        1 => Ok(Meta::file((flags & PERM_MASK) as u32)),
        2 => Ok(Meta::symlink()),
        other => Err(format!(
            "entry kind {other} (flags {flags:#x}) is not known to this fileconsul version"
        )),
    }
}

/// A validated path relative to the base directory: `/`-separated, UTF-8, no empty, `.` or `..`
/// component, no NUL, not inside the reserved directory. Such a path can never leave the base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Checks a relative path; the error says why it cannot be a file name under the base.
    pub fn parse(path: &str) -> Result<RelPath, String> {
        if path.is_empty() {
            return Err("empty path".into());
        }
        if path.starts_with('/') {
            return Err("absolute path".into());
        }
        if path.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        if path.contains('\\') {
            return Err("contains a backslash".into());
        }
        for component in path.split('/') {
            match component {
                "" => return Err("empty path component (`//` or a trailing `/`)".into()),
                "." | ".." => return Err(format!("`{component}` path component")),
                _ if component.len() > 255 => {
                    return Err("a path component is longer than 255 bytes".into())
                }
                _ => {}
            }
        }
        if path == RESERVED_DIR || path.starts_with(&format!("{RESERVED_DIR}/")) {
            return Err(format!("inside fileconsul's reserved `{RESERVED_DIR}/`"));
        }
        Ok(RelPath(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent directory, if the path is not at the top of the tree.
    pub fn parent(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(dir, _)| dir)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key under the prefix is.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyClass {
    /// A file or symlink at this path.
    File(RelPath),
    /// fileconsul's bookkeeping: the name below `<prefix>/.fileconsul/`.
    Reserved(String),
    /// A "folder" key ending in `/` (the Consul UI makes them); carries no file.
    Folder,
    /// A key that cannot be a file name under the base directory.
    Invalid(String),
}

/// A normalized KV prefix: no leading or trailing `/`, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// `<prefix>/`: everything fileconsul reads or writes starts with it.
    dir: String,
}

impl Prefix {
    pub fn parse(prefix: &str) -> Result<Prefix> {
        let trimmed = prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Err(Error::Config(
                "the prefix must not be empty: fileconsul never works on the whole KV store".into(),
            ));
        }
        if trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::Config(format!(
                "invalid prefix {prefix:?}: empty, `.` or `..` component"
            )));
        }
        Ok(Prefix {
            dir: format!("{trimmed}/"),
        })
    }

    /// The prefix as given, without the trailing `/`.
    pub fn name(&self) -> &str {
        &self.dir[..self.dir.len() - 1]
    }

    /// `<prefix>/`, the directory every key lives in.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn key_for(&self, path: &RelPath) -> String {
        format!("{}{}", self.dir, path.as_str())
    }

    /// A key of fileconsul's bookkeeping: `<prefix>/.fileconsul/<name>`.
    pub fn reserved(&self, name: &str) -> String {
        format!("{}{RESERVED_DIR}/{name}", self.dir)
    }

    /// Sorts a key returned by a read of `<prefix>/` into file, bookkeeping or invalid.
    pub fn classify(&self, key: &str) -> KeyClass {
        let Some(rest) = key.strip_prefix(&self.dir) else {
            return KeyClass::Invalid("outside the prefix".into());
        };
        if let Some(name) = rest.strip_prefix(&format!("{RESERVED_DIR}/")) {
            return KeyClass::Reserved(name.to_owned());
        }
        if rest == RESERVED_DIR {
            return KeyClass::Reserved(String::new());
        }
        if rest.is_empty() || rest.ends_with('/') {
            return KeyClass::Folder;
        }
        match RelPath::parse(rest) {
            Ok(path) => KeyClass::File(path),
            Err(why) => KeyClass::Invalid(why),
        }
    }
}

/// Where a symlink at `link` pointing to `target` lands, as a path relative to the base, or why it
/// leaves the tree. The check is lexical: it does not follow other links, so it holds on every
/// node whatever their trees contain.
pub fn resolve_link_target(link: &RelPath, target: &str) -> Result<String, String> {
    if target.is_empty() {
        return Err("empty symlink target".into());
    }
    if target.starts_with('/') {
        return Err(format!("absolute target {target:?} leaves the tree"));
    }
    let mut parts: Vec<&str> = link
        .parent()
        .map(|p| p.split('/').collect())
        .unwrap_or_default();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("target {target:?} leaves the tree"));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_foreign_flags_are_files() {
        for meta in [Meta::file(0o755), Meta::file(0o600), Meta::symlink()] {
            assert_eq!(decode_flags(encode_flags(meta)), Ok(meta));
        }
        assert_eq!(decode_flags(0), Ok(Meta::file(0o644)));
        // Consul's own lock flag has no fileconsul magic.
        assert_eq!(decode_flags(0x2ddccbc058a50c18), Ok(Meta::file(0o644)));
        assert!(decode_flags(MAGIC | (3 << KIND_SHIFT)).is_err());
        assert_eq!(encode_flags(Meta::file(0o4755)) & 0o7777, 0o755);
    }

    #[test]
    fn rel_paths_never_leave_the_base() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "./a",
            "a\0b",
            ".fileconsul",
            ".fileconsul/state",
            "a\\..\\b",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "a",
            "a/b.txt",
            ".hidden",
            "..x",
            "a/.fileconsulignore",
            "sp ace/ü",
        ] {
            assert!(RelPath::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn prefix_is_a_directory_boundary() {
        let p = Prefix::parse("/app/").unwrap();
        assert_eq!(p.dir(), "app/");
        assert_eq!(
            p.classify("app2/x"),
            KeyClass::Invalid("outside the prefix".into())
        );
        assert_eq!(
            p.classify("apple"),
            KeyClass::Invalid("outside the prefix".into())
        );
        assert_eq!(
            p.classify("app/x/y"),
            KeyClass::File(RelPath::parse("x/y").unwrap())
        );
        assert_eq!(p.classify("app/dir/"), KeyClass::Folder);
        assert_eq!(
            p.classify("app/.fileconsul/head"),
            KeyClass::Reserved("head".into())
        );
        assert!(matches!(
            p.classify("app/a/../../etc"),
            KeyClass::Invalid(_)
        ));
        assert!(Prefix::parse("/").is_err());
        assert!(Prefix::parse("a/../b").is_err());
    }

    #[test]
    fn link_targets_are_checked_lexically() {
        let link = RelPath::parse("bin/tool").unwrap();
        assert_eq!(resolve_link_target(&link, "../lib/x").unwrap(), "lib/x");
        assert_eq!(resolve_link_target(&link, "real").unwrap(), "bin/real");
        assert!(resolve_link_target(&link, "../../etc").is_err());
        assert!(resolve_link_target(&link, "/etc/passwd").is_err());
    }
}
