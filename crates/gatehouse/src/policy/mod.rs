//! Authorization: which scopes an operation needs, and whether a [`Caller`] has them.
//!
//! HTTP-agnostic: a refusal is a [`PolicyError`]; the HTTP edge renders it (`403
//! insufficient_scope` with the scopes to step up to).
//!
//! - Route scopes apply to every request on the MCP endpoint.
//! - Tool scopes apply to `tools/call` of one tool, in addition to the route scopes. A rule names
//!   a tool exactly (`void_invoice`) or by a glob pattern (`search_*`, `*`); an exact name wins
//!   over patterns, and a tool matched by several patterns needs all of their scopes.
//! - A tool that no rule names is callable with the route scopes ([`UnnamedTools::Allow`], the
//!   default for a server's own tools) or hidden ([`UnnamedTools::Deny`], for tools someone else
//!   writes, as behind a gateway): left out of `tools/list` and answered exactly as a tool that
//!   does not exist, so a hidden tool cannot be told from a missing one.
//! - A scope hierarchy (MCP 2026-07-28 §Step-Up Authorization Flow: servers MUST account for scope
//!   hierarchies, spec-requirements A19) lets a broader scope stand in for narrower ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::caller::{Caller, InvalidScope, Scope, ScopeSet};

pub mod rate_limit;
#[cfg(feature = "redis")]
pub mod redis_rate_limit;
pub mod tool_name;

/// "`parent` implies each of `children`", transitively. Built once from configuration.
#[derive(Debug, Clone, Default)]
pub struct ScopeHierarchy {
    /// For each scope, every scope it implies (transitive closure, excluding itself).
    implies: HashMap<Scope, ScopeSet>,
}

/// A hierarchy that would make a scope imply itself through others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope hierarchy has a cycle through {0:?}")]
pub struct HierarchyCycle(pub String);

impl ScopeHierarchy {
    /// Builds the transitive closure of `edges` (parent → implied children).
    pub fn new<I, P, C>(edges: I) -> Result<Self, HierarchyError>
    where
        I: IntoIterator<Item = (P, C)>,
        P: AsRef<str>,
        C: IntoIterator,
        C::Item: AsRef<str>,
    {
        let mut direct: BTreeMap<Scope, BTreeSet<Scope>> = BTreeMap::new();
        for (parent, children) in edges {
            let parent = Scope::new(parent.as_ref())?;
            let entry = direct.entry(parent).or_default();
            for c in children {
                entry.insert(Scope::new(c.as_ref())?);
            }
        }
        let mut implies = HashMap::new();
        for start in direct.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&Scope> = direct[start].iter().collect();
            while let Some(s) = stack.pop() {
                if s == start {
                    return Err(HierarchyError::Cycle(HierarchyCycle(start.to_string())));
                }
                if seen.insert(s.clone())
                    && let Some(next) = direct.get(s)
                {
                    stack.extend(next.iter());
                }
            }
            implies.insert(start.clone(), seen.into_iter().collect());
        }
        Ok(Self { implies })
    }

    /// True when holding `held` grants `wanted` (equal, or implied through the hierarchy).
    pub fn grants(&self, held: &Scope, wanted: &Scope) -> bool {
        held == wanted || self.implies.get(held).is_some_and(|s| s.contains(wanted))
    }

    /// True when any scope in `held` grants `wanted`.
    pub fn set_grants(&self, held: &ScopeSet, wanted: &Scope) -> bool {
        held.contains(wanted) || held.iter().any(|h| self.grants(h, wanted))
    }

    /// Removes from `required` every scope implied by another member, so that a challenge names
    /// the smallest set that satisfies the operation (`invoices:write` rather than
    /// `invoices:read invoices:write` when write implies read).
    pub fn minimise(&self, required: &ScopeSet) -> ScopeSet {
        required
            .iter()
            .filter(|s| !required.iter().any(|o| o != *s && self.grants(o, s)))
            .cloned()
            .collect()
    }
}

/// Invalid hierarchy configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyError {
    /// A scope string is invalid.
    #[error(transparent)]
    Scope(#[from] InvalidScope),
    /// The hierarchy has a cycle.
    #[error(transparent)]
    Cycle(#[from] HierarchyCycle),
}

/// Whether `tools/list` shows every tool or only those the caller may call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolListMode {
    /// List every tool, so that clients can discover what to step up to (default).
    #[default]
    All,
    /// Hide tools whose scopes the caller's token does not grant (spec-requirements A36: lists may
    /// vary with the authorization on the request, never per connection).
    FilterByScope,
}

/// What the policy says of a tool that no rule names, neither exactly nor by a pattern.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnnamedTools {
    /// Callable with the route scopes (default: a server's own tools are its author's).
    #[default]
    Allow,
    /// Hidden from everyone: not listed, and a call is answered as for a tool that does not
    /// exist. For tools someone else writes (a gateway in front of another server): a tool
    /// added there stays unreachable until the policy names it.
    Deny,
}

/// A refusal by policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The caller lacks scopes. `required` is every scope the operation needs, minimised through
    /// the hierarchy, so that one challenge is enough (spec-requirements A18).
    #[error("insufficient scope")]
    InsufficientScope {
        /// All scopes the operation needs.
        required: ScopeSet,
    },
    /// The tool is hidden ([`UnnamedTools::Deny`]): answer exactly as for a tool that does not
    /// exist, never with a challenge that would reveal it.
    #[error("hidden tool")]
    Hidden,
}

/// A tool-name pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tool pattern {pattern:?}: {message}")]
pub struct InvalidToolPattern {
    /// The pattern.
    pub pattern: String,
    /// Why.
    pub message: String,
}

/// True when a rule key is a glob pattern rather than a tool name (tool names never contain
/// these characters: MCP tool names are letters, digits, `_`, `-`, `.` and `/`).
pub fn is_tool_pattern(key: &str) -> bool {
    key.contains(['*', '?', '[', '{'])
}

/// The patterns of the policy, matched all at once.
#[derive(Debug, Default)]
struct Patterns {
    set: globset::GlobSet,
    scopes: Vec<ScopeSet>,
}

/// Route and per-tool scope requirements. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy(Arc<PolicyInner>);

#[derive(Debug, Default)]
struct PolicyInner {
    route: ScopeSet,
    tools: HashMap<String, ScopeSet>,
    patterns: Patterns,
    unnamed: UnnamedTools,
    hierarchy: ScopeHierarchy,
    list_mode: ToolListMode,
}

impl ScopePolicy {
    /// A policy with route scopes, per-tool scopes, a hierarchy and a list mode.
    pub fn new(
        route: ScopeSet,
        tools: HashMap<String, ScopeSet>,
        hierarchy: ScopeHierarchy,
        list_mode: ToolListMode,
    ) -> Self {
        Self(Arc::new(PolicyInner {
            route,
            tools,
            patterns: Patterns::default(),
            unnamed: UnnamedTools::Allow,
            hierarchy,
            list_mode,
        }))
    }

    /// This policy with tool rules by pattern (`("search_*", scopes)`) and a rule for tools no
    /// rule names. Exact names (given to [`ScopePolicy::new`]) win over patterns.
    pub fn with_patterns(
        self,
        patterns: impl IntoIterator<Item = (String, ScopeSet)>,
        unnamed: UnnamedTools,
    ) -> Result<Self, InvalidToolPattern> {
        let mut builder = globset::GlobSetBuilder::new();
        let mut scopes = Vec::new();
        for (pattern, s) in patterns {
            let glob = globset::GlobBuilder::new(&pattern)
                .literal_separator(false)
                .build()
                .map_err(|e| InvalidToolPattern {
                    message: e.kind().to_string(),
                    pattern: pattern.clone(),
                })?;
            builder.add(glob);
            scopes.push(s);
        }
        let set = builder.build().map_err(|e| InvalidToolPattern {
            pattern: String::new(),
            message: e.to_string(),
        })?;
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| PolicyInner {
            route: shared.route.clone(),
            tools: shared.tools.clone(),
            patterns: Patterns::default(),
            unnamed: shared.unnamed,
            hierarchy: shared.hierarchy.clone(),
            list_mode: shared.list_mode,
        });
        Ok(Self(Arc::new(PolicyInner {
            patterns: Patterns { set, scopes },
            unnamed,
            ..inner
        })))
    }

    /// What the policy says of tools no rule names.
    pub fn unnamed_tools(&self) -> UnnamedTools {
        self.0.unnamed
    }

    /// True when some tool may be hidden (so `tools/list` is filtered for everyone).
    pub fn may_hide_tools(&self) -> bool {
        self.0.unnamed == UnnamedTools::Deny
    }

    /// Scopes every request on the route needs.
    pub fn route_scopes(&self) -> &ScopeSet {
        &self.0.route
    }

    /// The configured hierarchy.
    pub fn hierarchy(&self) -> &ScopeHierarchy {
        &self.0.hierarchy
    }

    /// The `tools/list` mode.
    pub fn list_mode(&self) -> ToolListMode {
        self.0.list_mode
    }

    /// True when some tool has its own rule or may be hidden (so `tools/call` needs the tool
    /// name).
    pub fn has_tool_rules(&self) -> bool {
        !self.0.tools.is_empty() || !self.0.patterns.scopes.is_empty() || self.may_hide_tools()
    }

    /// Scopes one tool needs beyond the route scopes, by its exact name (patterns aside; see
    /// [`ScopePolicy::tool_requirement`]).
    pub fn tool_scopes(&self, tool: &str) -> Option<&ScopeSet> {
        self.0.tools.get(tool)
    }

    /// Scopes `tool` needs beyond the route scopes — its exact rule, else the union of every
    /// pattern that matches, else none — or `None` when it is hidden.
    pub fn tool_requirement(&self, tool: &str) -> Option<std::borrow::Cow<'_, ScopeSet>> {
        use std::borrow::Cow;
        if let Some(s) = self.0.tools.get(tool) {
            return Some(Cow::Borrowed(s));
        }
        let matched = self.0.patterns.set.matches(tool);
        match (matched.as_slice(), self.0.unnamed) {
            ([], UnnamedTools::Allow) => Some(Cow::Owned(ScopeSet::new())),
            ([], UnnamedTools::Deny) => None,
            ([one], _) => Some(Cow::Borrowed(&self.0.patterns.scopes[*one])),
            (many, _) => Some(Cow::Owned(many.iter().fold(ScopeSet::new(), |acc, i| {
                acc.union(&self.0.patterns.scopes[*i])
            }))),
        }
    }

    /// True when `tool` is hidden (not listed, answered as missing).
    pub fn is_hidden(&self, tool: &str) -> bool {
        self.tool_requirement(tool).is_none()
    }

    /// Every scope the policy mentions (route, tools and patterns), for `scopes_supported` when
    /// none is configured explicitly.
    pub fn all_scopes(&self) -> ScopeSet {
        self.0
            .tools
            .values()
            .chain(&self.0.patterns.scopes)
            .fold(self.0.route.clone(), |acc, s| acc.union(s))
    }

    /// Checks the route scopes.
    pub fn check_route(&self, caller: &Caller) -> Result<(), PolicyError> {
        self.check(&caller.scopes, &self.0.route)
    }

    /// Checks a `tools/call` of `tool`: route scopes plus the tool's own. The challenge lists
    /// everything the call needs, not only what is missing from the route check.
    pub fn check_tool(&self, caller: &Caller, tool: &str) -> Result<(), PolicyError> {
        match self.tool_requirement(tool) {
            None => Err(PolicyError::Hidden),
            Some(extra) if extra.is_empty() => self.check_route(caller),
            Some(extra) => self.check(&caller.scopes, &self.0.route.union(&extra)),
        }
    }

    /// True when `caller` may call `tool` (for list filtering and checks inside tools).
    pub fn may_call(&self, caller: &Caller, tool: &str) -> bool {
        self.check_tool(caller, tool).is_ok()
    }

    /// True when the scopes `held` satisfy every scope in `required` under the hierarchy.
    pub fn satisfies(&self, held: &ScopeSet, required: &ScopeSet) -> bool {
        required
            .iter()
            .all(|r| self.0.hierarchy.set_grants(held, r))
    }

    fn check(&self, held: &ScopeSet, required: &ScopeSet) -> Result<(), PolicyError> {
        if self.satisfies(held, required) {
            Ok(())
        } else {
            Err(PolicyError::InsufficientScope {
                required: self.0.hierarchy.minimise(required),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Principal;

    fn caller(scopes: &str) -> Caller {
        Caller::new(Principal::for_test(scopes))
    }

    fn policy() -> ScopePolicy {
        let h = ScopeHierarchy::new([("invoices:write", ["invoices:read"])]).unwrap();
        let mut tools = HashMap::new();
        tools.insert(
            "void_invoice".to_owned(),
            ScopeSet::parse(["invoices:write"]).unwrap(),
        );
        tools.insert(
            "audit".to_owned(),
            ScopeSet::parse(["audit:read", "admin"]).unwrap(),
        );
        ScopePolicy::new(
            ScopeSet::parse(["invoices:read"]).unwrap(),
            tools,
            h,
            ToolListMode::All,
        )
    }

    fn required(e: Result<(), PolicyError>) -> String {
        match e {
            Err(PolicyError::InsufficientScope { required }) => required.to_space_separated(),
            Err(PolicyError::Hidden) => "hidden".into(),
            Ok(()) => "ok".into(),
        }
    }

    // spec-requirements A17, A18, A19: one challenge listing all scopes, hierarchy respected.
    #[test]
    fn route_and_tool_checks() {
        let p = policy();
        let cases = [
            ("invoices:read", "lookup_invoice", "ok"),
            ("invoices:write", "lookup_invoice", "ok"), // A19: write implies read
            ("", "lookup_invoice", "invoices:read"),
            ("invoices:read", "void_invoice", "invoices:write"), // minimised: write covers read
            ("invoices:write", "void_invoice", "ok"),
            ("", "void_invoice", "invoices:write"),
            // All the operation needs, in one challenge (A18), including the held route scope.
            ("invoices:read", "audit", "admin audit:read invoices:read"),
            (
                "invoices:read admin",
                "audit",
                "admin audit:read invoices:read",
            ),
        ];
        for (held, tool, want) in cases {
            assert_eq!(
                required(p.check_tool(&caller(held), tool)),
                want,
                "{held} / {tool}"
            );
        }
    }

    fn set(s: &str) -> ScopeSet {
        ScopeSet::from_space_separated(s)
    }

    // Exact names win over patterns; several matching patterns add up; an unnamed tool follows
    // the unnamed rule (route scopes only, or hidden).
    #[test]
    fn patterns_exact_names_and_unnamed_tools() {
        let mut tools = HashMap::new();
        tools.insert("read_secret".to_owned(), set("fs:read"));
        let patterns = [
            ("read_*".to_owned(), set("fs:read")),
            ("*_secret".to_owned(), set("fs:secret")),
            ("write_?ile".to_owned(), set("fs:write")),
        ];
        let route = set("mcp");
        let p = |unnamed| {
            ScopePolicy::new(
                route.clone(),
                tools.clone(),
                ScopeHierarchy::default(),
                ToolListMode::All,
            )
            .with_patterns(patterns.clone(), unnamed)
            .unwrap()
        };
        let deny = p(UnnamedTools::Deny);
        let req = |p: &ScopePolicy, t: &str| p.tool_requirement(t).map(|s| s.to_space_separated());
        assert_eq!(req(&deny, "read_secret").as_deref(), Some("fs:read")); // exact wins
        assert_eq!(req(&deny, "read_file").as_deref(), Some("fs:read"));
        assert_eq!(req(&deny, "dump_secret").as_deref(), Some("fs:secret"));
        assert_eq!(
            req(&deny, "read_all_secret").as_deref(),
            Some("fs:read fs:secret")
        );
        assert_eq!(req(&deny, "write_file").as_deref(), Some("fs:write"));
        assert_eq!(req(&deny, "write_files"), None);
        assert_eq!(req(&deny, "delete"), None);
        assert!(deny.is_hidden("delete") && deny.may_hide_tools() && deny.has_tool_rules());
        let allow = p(UnnamedTools::Allow);
        assert_eq!(req(&allow, "delete").as_deref(), Some(""));
        assert!(!allow.is_hidden("delete") && !allow.may_hide_tools());

        // A hidden tool is refused as hidden whatever the caller holds; a named one by scope.
        let all = caller("mcp fs:read fs:secret fs:write admin");
        assert_eq!(deny.check_tool(&all, "delete"), Err(PolicyError::Hidden));
        assert!(!deny.may_call(&all, "delete"));
        assert_eq!(
            required(deny.check_tool(&caller("mcp fs:read"), "read_all_secret")),
            "fs:read fs:secret mcp"
        );
        assert_eq!(required(allow.check_tool(&caller(""), "delete")), "mcp");
        assert_eq!(required(allow.check_tool(&caller("mcp"), "delete")), "ok");
        assert_eq!(
            deny.all_scopes().to_space_separated(),
            "fs:read fs:secret fs:write mcp"
        );
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_pattern() {
        let e = ScopePolicy::default()
            .with_patterns([("read_[".to_owned(), set("a"))], UnnamedTools::Deny)
            .unwrap_err();
        assert_eq!(e.pattern, "read_[");
        assert!(is_tool_pattern("a*") && is_tool_pattern("a?") && !is_tool_pattern("a.b-c_d/e"));
    }

    #[test]
    fn hierarchy_is_transitive_and_rejects_cycles() {
        let h = ScopeHierarchy::new([("a", vec!["b"]), ("b", vec!["c"])]).unwrap();
        let a = Scope::new("a").unwrap();
        let c = Scope::new("c").unwrap();
        assert!(h.grants(&a, &c));
        assert!(!h.grants(&c, &a));
        assert!(matches!(
            ScopeHierarchy::new([("a", vec!["b"]), ("b", vec!["a"])]),
            Err(HierarchyError::Cycle(_))
        ));
    }
}
