//! What an upstream is: the command that starts it, the environment it gets, and how its
//! processes are shared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an upstream's processes are shared between callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// One process per principal (issuer, subject, tenant): one user's identity, state and
    /// files are never another's (default).
    #[default]
    PerPrincipal,
    /// One process for everyone: only for an upstream that holds no per-user state and gets no
    /// per-user identity.
    Shared,
}

/// The command that starts a stdio MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioCommand {
    /// The program (a path, or a name looked up in the allowed `PATH`).
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its working directory. Default: the gateway's.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Variables of the gateway's environment the child may see (by name). Default: `PATH`
    /// and `HOME` only — never everything, so the gateway's secrets stay its own.
    #[serde(default = "default_env_allow")]
    pub env_allow: Vec<String>,
    /// Variables set for the child (override allowed ones).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_env_allow() -> Vec<String> {
    vec!["PATH".into(), "HOME".into()]
}

impl StdioCommand {
    /// `command` with `args`, the default allow-list and no extra variables.
    pub fn new(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: None,
            env_allow: default_env_allow(),
            env: BTreeMap::new(),
        }
    }

    /// The child's whole environment: the allowed variables of `parent`, then `env`.
    pub fn environment(
        &self,
        parent: impl IntoIterator<Item = (String, String)>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = parent
            .into_iter()
            .filter(|(k, _)| self.env_allow.iter().any(|a| a == k))
            .collect();
        out.extend(self.env.clone());
        out
    }
}

/// A stdio upstream and the bounds on its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioUpstream {
    /// How to start it.
    pub command: StdioCommand,
    /// How processes are shared.
    pub isolation: Isolation,
    /// Most processes at once; the least recently used idle one is stopped to make room.
    pub max_processes: u64,
    /// A process unused this long is stopped.
    pub idle_timeout: Duration,
    /// Longest wait for a new process to finish the MCP handshake.
    pub start_timeout: Duration,
}

impl StdioUpstream {
    /// `command` per principal, at most 100 processes, stopped after 10 minutes idle, 20 s to
    /// start.
    pub fn new(command: StdioCommand) -> Self {
        Self {
            command,
            isolation: Isolation::PerPrincipal,
            max_processes: 100,
            idle_timeout: Duration::from_secs(600),
            start_timeout: Duration::from_secs(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_sees_only_allowed_and_set_variables() {
        let mut c = StdioCommand::new("srv", ["--x"]);
        c.env.insert("API_URL".into(), "https://api".into());
        c.env.insert("HOME".into(), "/srv".into());
        let parent = [
            ("PATH".to_owned(), "/bin".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
            ("GATEHOUSE_CLIENT_SECRET".to_owned(), "s3cret".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "k".to_owned()),
        ];
        let env = c.environment(parent);
        assert_eq!(
            env.into_iter().collect::<Vec<_>>(),
            [
                ("API_URL".to_owned(), "https://api".to_owned()),
                ("HOME".to_owned(), "/srv".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ]
        );
    }
}
