//! Values shared by the inventory, variables, modules and reports: the variable map, and how a
//! template value is built from serde data, recognised as a template, and shown as text.

use indexmap::IndexMap;
use minijinja::Value;
use minijinja::value::ValueKind;

/// Variables by name, in the order they were defined.
pub type VarMap = IndexMap<String, Value>;

/// Any serde value as a template value.
pub fn from_serde<T: serde::Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// True if a string holds template syntax and must be rendered before use.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// How a value reads in a command line or message: strings bare, `None` empty, the rest as JSON.
pub fn value_to_string(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or("").to_string(),
        ValueKind::None | ValueKind::Undefined => String::new(),
        ValueKind::Bool => {
            if v.is_true() {
                "True".into()
            } else {
                "False".into()
            }
        }
        ValueKind::Seq | ValueKind::Map => serde_json::to_string(v).unwrap_or_else(|_| v.to_string()),
        _ => v.to_string(),
    }
}
