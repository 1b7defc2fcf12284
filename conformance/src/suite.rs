//! Loading the suite's YAML files (config, test suites) as their protobuf messages, and the test
//! case name patterns of known-failing files.

use std::path::Path;

use serde_json::Value;

use crate::proto::connectrpc::conformance::v1 as pb;

/// Registers the types that the suites' `Any` fields (`"@type"`) hold: the conformance messages
/// and the descriptor types. Cheap to call again.
pub fn install_type_registry() {
    connect_typed::register_json_types(pb::register_types);
    connect_typed::register_json_types(
        buffa_descriptor::generated::descriptor::__buffa::register_types,
    );
}

/// YAML as the proto-JSON value it stands for. An empty message written as a key with no value
/// (`beforeCloseSend:`) is YAML null, which proto JSON reads as "unset": it becomes `{}`.
fn yaml_to_json(text: &str) -> Result<Value, String> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut json = serde_json::to_value(yaml).map_err(|e| e.to_string())?;
    fix_empty_messages(&mut json);
    Ok(json)
}

fn fix_empty_messages(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if value.is_null() && (key == "beforeCloseSend" || key == "before_close_send") {
                    *value = Value::Object(Default::default());
                }
                fix_empty_messages(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fix_empty_messages),
        _ => {}
    }
}

/// Parses a YAML file as message `M` in its proto-JSON form.
pub fn load_yaml<M: serde::de::DeserializeOwned>(path: &Path) -> Result<M, String> {
    install_type_registry();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json = yaml_to_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_value(json).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every `*.yaml` test suite in `dir`, sorted by file name.
pub fn load_suites(dir: &Path) -> Result<Vec<pb::TestSuite>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_yaml(p)).collect()
}

/// A test case name pattern: `*` matches one `/`-separated component, `**` zero or more.
#[derive(Clone, Debug)]
pub struct Pattern {
    text: String,
    components: Vec<String>,
}

impl Pattern {
    /// Parses a pattern.
    pub fn new(text: &str) -> Self {
        Pattern {
            text: text.to_owned(),
            components: text.split('/').map(str::to_owned).collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('/').collect();
        matches(&self.components, &parts)
    }
}

fn matches(pattern: &[String], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=name.len()).any(|skip| matches(rest, &name[skip..]))
        }
        Some((first, rest)) => match name.split_first() {
            Some((part, name_rest)) => (first == "*" || first == part) && matches(rest, name_rest),
            None => false,
        },
    }
}

/// Reads a known-failing file: one pattern per line, `#` comments and blank lines ignored.
pub fn load_patterns(path: &Path) -> Result<Vec<Pattern>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Pattern::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let name = "Basic/HTTPVersion:1/Protocol:PROTOCOL_GRPC_WEB/Codec:CODEC_PROTO/Compression:COMPRESSION_IDENTITY/TLS:false/server-stream/success";
        assert!(Pattern::new(name).matches(name));
        assert!(Pattern::new("Basic/**").matches(name));
        assert!(Pattern::new("**/server-stream/success").matches(name));
        assert!(Pattern::new("Basic/*/*/*/*/*/server-stream/*").matches(name));
        assert!(!Pattern::new("Basic/*/server-stream/*").matches(name));
        assert!(!Pattern::new("Other/**").matches(name));
    }
}
