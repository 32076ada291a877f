//! Authorization: which scopes an operation needs, and whether a [`Caller`] has them.
//!
//! HTTP-agnostic: a refusal is a [`PolicyError`]; the HTTP edge renders it (`403
//! insufficient_scope` with the scopes to step up to).
//!
//! - Route scopes apply to every request on the MCP endpoint.
//! - Tool scopes apply to `tools/call` of one tool, in addition to the route scopes.
//! - A scope hierarchy (MCP 2026-07-28 §Step-Up Authorization Flow: servers MUST account for scope
//!   hierarchies, spec-requirements A19) lets a broader scope stand in for narrower ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::caller::{Caller, InvalidScope, Scope, ScopeSet};

pub mod rate_limit;
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
}

/// Route and per-tool scope requirements. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy(Arc<PolicyInner>);

#[derive(Debug, Default)]
struct PolicyInner {
    route: ScopeSet,
    tools: HashMap<String, ScopeSet>,
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
            hierarchy,
            list_mode,
        }))
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

    /// True when some tool has its own scopes (so `tools/call` needs the tool name).
    pub fn has_tool_rules(&self) -> bool {
        !self.0.tools.is_empty()
    }

    /// Scopes one tool needs beyond the route scopes (empty when none are configured).
    pub fn tool_scopes(&self, tool: &str) -> Option<&ScopeSet> {
        self.0.tools.get(tool)
    }

    /// Every scope the policy mentions (route and tools), for `scopes_supported` when none is
    /// configured explicitly.
    pub fn all_scopes(&self) -> ScopeSet {
        self.0
            .tools
            .values()
            .fold(self.0.route.clone(), |acc, s| acc.union(s))
    }

    /// Checks the route scopes.
    pub fn check_route(&self, caller: &Caller) -> Result<(), PolicyError> {
        self.check(&caller.scopes, &self.0.route)
    }

    /// Checks a `tools/call` of `tool`: route scopes plus the tool's own. The challenge lists
    /// everything the call needs, not only what is missing from the route check.
    pub fn check_tool(&self, caller: &Caller, tool: &str) -> Result<(), PolicyError> {
        match self.0.tools.get(tool) {
            Some(extra) => self.check(&caller.scopes, &self.0.route.union(extra)),
            None => self.check_route(caller),
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
