//! Tool schemas that every client can read.
//!
//! schemars writes an optional field as `"type": ["string", "null"]`. That is valid JSON Schema,
//! but clients that map tool schemas onto a single-`type` dialect (the OpenAPI subset behind
//! some model providers' function declarations) reject the tool or drop the constraint, and MCP
//! Inspector flags each such field as a portability warning. [`portable_nullables`] rewrites
//! them as `anyOf` branches with one `type` each, which every dialect reads:
//!
//! ```
//! #[derive(serde::Serialize, schemars::JsonSchema)]
//! #[schemars(transform = gatehouse::mcp::portable_nullables)]
//! struct Invoice {
//!     voided_by: Option<String>,
//! }
//! let schema = schemars::schema_for!(Invoice);
//! assert_eq!(
//!     schema.get("properties").unwrap()["voided_by"]["anyOf"],
//!     serde_json::json!([{ "type": "string" }, { "type": "null" }])
//! );
//! ```

use rmcp::schemars::Schema;
use rmcp::schemars::transform::transform_subschemas;
use serde_json::{Map, Value, json};

/// Keywords that describe a schema rather than constrain it: they stay beside the `anyOf`.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// A schemars transform (`#[schemars(transform = gatehouse::mcp::portable_nullables)]`, on the
/// types of a tool's input and output): every `"type": [T, "null"]` in the schema and its
/// subschemas becomes `"anyOf": [{"type": T, …T's keywords}, {"type": "null"}]`, annotations
/// kept outside. The values the schema accepts do not change.
pub fn portable_nullables(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        rewrite(obj);
    }
    transform_subschemas(&mut portable_nullables, schema);
}

fn rewrite(obj: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = obj.get("type") else {
        return;
    };
    let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    if others.len() != 1 || others.len() == types.len() {
        // Not "one type or null": several non-null types are left as they are.
        return;
    }
    let mut branch = Map::new();
    for (k, v) in std::mem::take(obj) {
        if ANNOTATIONS.contains(&k.as_str()) {
            obj.insert(k, v);
        } else {
            branch.insert(k, v);
        }
    }
    branch.insert("type".into(), others[0].clone());
    // An enum of an optional value lists `null` among its values; it belongs to the other branch.
    if let Some(Value::Array(values)) = branch.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    obj.insert(
        "anyOf".into(),
        json!([Value::Object(branch), { "type": "null" }]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transformed(v: Value) -> Value {
        let mut s = Schema::try_from(v).unwrap();
        portable_nullables(&mut s);
        s.to_value()
    }

    #[test]
    fn nullable_types_become_any_of_with_keywords_inside_and_annotations_outside() {
        let out = transformed(json!({
            "type": "object",
            "properties": {
                "at": { "type": ["string", "null"], "format": "date-time", "description": "when" },
                "n": { "type": ["integer", "null"], "minimum": 0 },
                "status": { "type": ["string", "null"], "enum": ["open", "void", null] },
                "list": { "type": "array", "items": { "type": ["number", "null"] } },
                "plain": { "type": "string" },
                "multi": { "type": ["string", "integer", "null"] }
            },
            "$defs": { "D": { "type": ["boolean", "null"] } }
        }));
        let p = &out["properties"];
        assert_eq!(
            p["at"],
            json!({ "description": "when",
                    "anyOf": [{ "type": "string", "format": "date-time" }, { "type": "null" }] })
        );
        assert_eq!(
            p["n"],
            json!({ "anyOf": [{ "type": "integer", "minimum": 0 }, { "type": "null" }] })
        );
        assert_eq!(
            p["status"]["anyOf"][0],
            json!({ "type": "string", "enum": ["open", "void"] })
        );
        assert_eq!(
            p["list"]["items"],
            json!({ "anyOf": [{ "type": "number" }, { "type": "null" }] })
        );
        assert_eq!(p["plain"], json!({ "type": "string" }));
        assert_eq!(p["multi"], json!({ "type": ["string", "integer", "null"] }));
        assert_eq!(
            out["$defs"]["D"],
            json!({ "anyOf": [{ "type": "boolean" }, { "type": "null" }] })
        );
        // No type array is left anywhere a client would have to read one.
        assert!(!out.to_string().contains(r#"["string","null"]"#), "{out}");
    }
}
