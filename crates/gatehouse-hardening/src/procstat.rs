//! What the kernel says about the server process: resident memory and open descriptors.

/// One reading of `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// Resident set size, MB (`VmRSS`).
    pub(crate) rss_mb: f64,
    /// Its anonymous part (heap, stacks), MB (`RssAnon`); the rest is file-backed (the binary,
    /// SQLite's memory-mapped WAL index).
    pub(crate) anon_mb: f64,
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
        fds,
        sockets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(
            s.rss_mb > 0.0 && s.anon_mb > 0.0 && s.anon_mb <= s.rss_mb,
            "{s:?}"
        );
        assert!(s.fds >= 3, "{s:?}"); // stdin, stdout, stderr at least
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let with = sample(std::process::id()).unwrap();
        assert!(with.sockets >= 1 && with.sockets <= with.fds, "{with:?}");
        drop(listener);
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
        assert!(sample(u32::MAX).is_err());
    }
}
