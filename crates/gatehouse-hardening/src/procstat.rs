//! What the kernel says about the server process: resident memory and open descriptors.

use std::collections::BTreeMap;

/// One reading of `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// Resident set size, MB (`VmRSS`).
    pub(crate) rss_mb: f64,
    /// Its anonymous part (heap, stacks), MB (`RssAnon`); the rest is file-backed (the binary,
    /// SQLite's memory-mapped WAL index).
    pub(crate) anon_mb: f64,
    /// Of the anonymous memory, how much is backed by transparent huge pages, MB
    /// (`AnonHugePages` of `smaps_rollup`): 2 MiB pages the kernel may fill in behind the
    /// allocator's back (khugepaged), which shows as resident memory no allocation asked for.
    pub(crate) huge_mb: f64,
    /// Open file descriptors (entries of `/proc/<pid>/fd`): sockets, the database, log files.
    pub(crate) fds: usize,
    /// Of which sockets (client connections come and go; the rest should not move).
    pub(crate) sockets: usize,
}

/// Reads `VmRSS` and the descriptor count of `pid`; an error when the process is gone.
pub(crate) fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |field: &str| -> anyhow::Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
    };
    let rss_kb = kb("VmRSS:")?;
    let anon_kb = kb("RssAnon:")?;
    // Not every kernel has `smaps_rollup`; without it the figure is 0.
    let huge_kb = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("AnonHugePages:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let (mut fds, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        fds += 1;
        // A descriptor closed between listing and reading is simply not a socket.
        if std::fs::read_link(entry?.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        {
            sockets += 1;
        }
    }
    Ok(ProcSample {
        rss_mb: rss_kb / 1024.0,
        anon_mb: anon_kb / 1024.0,
        huge_mb: huge_kb / 1024.0,
        fds,
        sockets,
    })
}

/// What the descriptors of `pid` other than sockets point at (paths, `pipe:[…]`,
/// `anon_inode:[eventfd]`…), with how many name each: read when their count rises, so that the
/// report names the descriptor instead of only counting it.
pub(crate) fn non_socket_targets(pid: u32) -> BTreeMap<String, usize> {
    let mut targets = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return targets;
    };
    for target in dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()) {
        let target = target.to_string_lossy().into_owned();
        if !target.starts_with("socket:") {
            *targets.entry(target).or_insert(0) += 1;
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(
            s.rss_mb > 0.0 && s.anon_mb > 0.0 && s.anon_mb <= s.rss_mb && s.huge_mb <= s.anon_mb,
            "{s:?}"
        );
        assert!(s.fds >= 3, "{s:?}"); // stdin, stdout, stderr at least
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let with = sample(std::process::id()).unwrap();
        assert!(with.sockets >= 1 && with.sockets <= with.fds, "{with:?}");
        drop(listener);
        let file = std::env::temp_dir().join(format!("procstat-test-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let (a, b) = (
            std::fs::File::open(&file).unwrap(),
            std::fs::File::open(&file).unwrap(),
        );
        let targets = non_socket_targets(std::process::id());
        assert_eq!(
            targets.get(&*file.to_string_lossy()),
            Some(&2),
            "two descriptors on {}: {targets:?}",
            file.display()
        );
        assert!(
            targets.keys().all(|t| !t.starts_with("socket:")),
            "{targets:?}"
        );
        drop((a, b));
        let _ = std::fs::remove_file(&file);
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
        assert!(sample(u32::MAX).is_err());
    }
}
