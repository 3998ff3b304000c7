//! Rendering reports: the human listing (the original fileconsul's wording and sections, one path
//! a line, paths relative to the base) or JSON for scripts. Only data goes to the writer given
//! (stdout); warnings are rendered separately for stderr.

use std::io::{self, Write};

use crate::plan::{Change, ConflictKind};
use crate::sync::Report;

/// How reports are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

fn remote_label(c: Change) -> &'static str {
    match c {
        Change::Add => "add remote file:    ",
        Change::Modify => "modify remote file: ",
        Change::Delete => "delete remote file: ",
    }
}

fn local_label(c: Change) -> &'static str {
    match c {
        Change::Add => "add local file:     ",
        Change::Modify => "modify local file:  ",
        Change::Delete => "delete local file:  ",
    }
}

fn conflict_label(k: ConflictKind) -> &'static str {
    match k {
        ConflictKind::BothModified => "both modified:      ",
        ConflictKind::BothAdded => "both added:         ",
        ConflictKind::DeletedLocally => "deleted locally:    ",
        ConflictKind::DeletedRemotely => "deleted in Consul:  ",
    }
}

/// Writes the report's data.
pub fn render(report: &Report, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer(&mut *out, report)?;
        return writeln!(out);
    }
    let mut nothing = true;
    match report.command {
        "status" => {
            if !report.push.is_empty() {
                nothing = false;
                writeln!(out, "Changes to be pushed:")?;
                writeln!(
                    out,
                    "  (use \"fileconsul push [command options]\" to synchronize local files)"
                )?;
                for c in &report.push {
                    writeln!(out, "\t{}{}", remote_label(c.change), c.path)?;
                }
            }
            if !report.pull.is_empty() {
                nothing = false;
                writeln!(out, "Changes to be pulled:")?;
                writeln!(
                    out,
                    "  (use \"fileconsul pull [command options]\" to synchronize remote files)"
                )?;
                for c in &report.pull {
                    writeln!(out, "\t{}{}", local_label(c.change), c.path)?;
                }
            }
        }
        "push" => {
            for c in &report.push {
                nothing = false;
                let label = match c.change {
                    Change::Add => "push new file:      ",
                    Change::Modify => "push modified file: ",
                    Change::Delete => "push deleted file:  ",
                };
                writeln!(out, "{label}{}", c.path)?;
            }
        }
        _ => {
            if !report.pull.is_empty() {
                nothing = false;
                writeln!(out, "Synchronize remote files:")?;
                for c in &report.pull {
                    let label = match c.change {
                        Change::Add => "new file:   ",
                        Change::Modify => "modified:   ",
                        Change::Delete => "deleted:    ",
                    };
                    writeln!(out, "\t{label}{}", c.path)?;
                }
            }
        }
    }
    if !report.conflicts.is_empty() {
        nothing = false;
        writeln!(
            out,
            "Conflicts (changed on both sides since the last sync):"
        )?;
        writeln!(
            out,
            "  (use \"fileconsul pull --force\" to take Consul's version and keep a copy of yours)"
        )?;
        for c in &report.conflicts {
            writeln!(out, "\t{}{}", conflict_label(c.kind), c.path)?;
        }
    }
    if !report.held.is_empty() {
        nothing = false;
        writeln!(out, "Kept (deleted in Consul, not deleted here):")?;
        for n in &report.held {
            writeln!(out, "\tkept local file:    {}", n.path)?;
        }
    }
    if nothing
        && report.refused.is_empty()
        && report.bad_keys.is_empty()
        && report.failed.is_empty()
    {
        writeln!(out, "Already up-to-date.")?;
    }
    Ok(())
}

/// The lines for stderr: warnings, refused paths and keys, failures, kept copies.
pub fn diagnostics(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if report.dry_run {
        lines.push("dry run: nothing was written".to_owned());
    }
    lines.extend(report.warnings.iter().map(|w| format!("warning: {w}")));
    for n in &report.refused {
        lines.push(format!("error: {}: {}", n.path, n.reason));
    }
    for k in &report.bad_keys {
        lines.push(format!("error: key {:?} skipped: {}", k.key, k.reason));
    }
    for n in &report.failed {
        lines.push(format!("error: {}: {}", n.path, n.reason));
    }
    for n in &report.kept {
        lines.push(format!("kept your version of {} at {}", n.path, n.reason));
    }
    if let Some(n) = report.held.first() {
        lines.push(format!("warning: {}", n.reason));
    }
    lines
}

/// Writes the list of watchers (`fileconsul nodes`).
pub fn render_nodes(
    report: &crate::watch::NodesReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer(&mut *out, report)?;
        return writeln!(out);
    }
    writeln!(out, "revision {} in Consul", report.revision)?;
    if report.nodes.is_empty() {
        return writeln!(out, "no watcher is running");
    }
    writeln!(
        out,
        "{:<20} {:>9}  {:<8} {:>11}  BASEPATH",
        "NODE", "REVISION", "STATE", "APPLIED"
    )?;
    let now = (crate::state::now_ns() / 1_000_000_000) as u64;
    for n in &report.nodes {
        let ago = format!("{}s ago", now.saturating_sub(n.record.applied_at));
        let state = match (n.alive, n.current) {
            (false, _) => "gone",
            (true, true) => "current",
            (true, false) => "behind",
        };
        writeln!(
            out,
            "{:<20} {:>9}  {:<8} {:>11}  {}",
            n.record.node, n.record.revision, state, ago, n.record.basepath
        )?;
    }
    Ok(())
}
