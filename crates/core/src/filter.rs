//! Which paths a run works on: `.fileconsulignore` (gitignore syntax, at the top of the base
//! directory) excludes paths on both sides, and the optional path patterns of the command line
//! (`fileconsul status 'config/*'`) limit a run to the paths they match.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};
use crate::layout::RelPath;

/// The ignore file, read from the top of the base directory.
pub const IGNORE_FILE: &str = ".fileconsulignore";

/// Names fileconsul gives its temporary files; never synchronized on either side.
pub const TEMP_PREFIX: &str = ".fctmp.";

#[derive(Debug)]
pub struct Filter {
    ignore: Option<Gitignore>,
    patterns: Option<GlobSet>,
}

impl Filter {
    /// Reads `<base>/.fileconsulignore` (if any) and compiles the patterns.
    pub fn new(base: &Path, patterns: &[String]) -> Result<Filter> {
        let ignore_path = base.join(IGNORE_FILE);
        let ignore = if ignore_path.is_file() {
            let mut builder = GitignoreBuilder::new(base);
            if let Some(err) = builder.add(&ignore_path) {
                return Err(Error::Refused(format!("{}: {err}", ignore_path.display())));
            }
            Some(
                builder
                    .build()
                    .map_err(|e| Error::Refused(format!("{}: {e}", ignore_path.display())))?,
            )
        } else {
            None
        };
        let patterns = if patterns.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for pattern in patterns {
                let glob = GlobBuilder::new(pattern.trim_start_matches("./").trim_end_matches('/'))
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::Config(format!("invalid path pattern {pattern:?}: {e}")))?;
                set.add(glob);
            }
            Some(set.build().map_err(|e| Error::Config(e.to_string()))?)
        };
        Ok(Filter { ignore, patterns })
    }

    /// A filter that lets everything through (no ignore file, no pattern).
    pub fn everything() -> Filter {
        Filter {
            ignore: None,
            patterns: None,
        }
    }

    fn is_temp(path: &str) -> bool {
        path.rsplit('/')
            .next()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX))
    }

    /// Whether the walk should descend into this directory.
    pub fn enters_dir(&self, dir: &str) -> bool {
        match &self.ignore {
            Some(ignore) => !ignore.matched_path_or_any_parents(dir, true).is_ignore(),
            None => true,
        }
    }

    /// Whether this file (or symlink) takes part in the run.
    pub fn includes(&self, path: &RelPath) -> bool {
        let path = path.as_str();
        if Self::is_temp(path) {
            return false;
        }
        if let Some(ignore) = &self.ignore {
            if ignore.matched_path_or_any_parents(path, false).is_ignore() {
                return false;
            }
        }
        match &self.patterns {
            None => true,
            Some(set) => {
                // A pattern matching a directory takes in everything below it.
                let mut candidate = path;
                loop {
                    if set.is_match(candidate) {
                        return true;
                    }
                    match candidate.rsplit_once('/') {
                        Some((parent, _)) => candidate = parent,
                        None => return false,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn patterns_limit_and_ignore_file_excludes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IGNORE_FILE), "*.swp\nsecret/\n!keep.swp\n").unwrap();
        let f = Filter::new(dir.path(), &["config/*".into()]).unwrap();
        assert!(f.includes(&rel("config/a.json")));
        assert!(f.includes(&rel("config/sub/b.json")));
        assert!(!f.includes(&rel("bin/ntp")));
        assert!(!f.includes(&rel("config/a.json.swp")));
        assert!(!f.includes(&rel("config/.fctmp.1.2")));
        let all = Filter::new(dir.path(), &[]).unwrap();
        assert!(all.includes(&rel("bin/ntp")));
        assert!(!all.includes(&rel("secret/key")));
        assert!(!all.enters_dir("secret"));
        assert!(all.includes(&rel("keep.swp")));
        assert!(Filter::new(dir.path(), &["a[".into()]).is_err());
    }
}
