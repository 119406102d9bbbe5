//! A JSON document that keeps its keys in file order ([`Doc`]), so that
//! merging into an administrator's `daemon.json` changes only what it must,
//! and the YAML rendering of a generated document ([`Doc::to_yaml`]).
//!
//! serde_json's own `Value` sorts keys unless its `preserve_order` feature
//! is on, which would change every other user of serde_json in the build.
//! A repeated key keeps its first position and its last value (what
//! Docker's decoder does with a repeated key).
//!
//! YAML is emitted for a fixed set of shapes (objects, arrays, strings,
//! numbers, booleans): block style, two-space indent, and every string that
//! is not plainly a word or a path written as a JSON string (a valid YAML
//! double-quoted scalar), so that `"0"`, `"yes"` or `"a: b"` stay strings.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value with ordered objects.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as serde_json read it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Doc>),
    /// An object, in file order.
    Object(Vec<(String, Doc)>),
}

impl Doc {
    /// An empty object.
    pub fn object() -> Doc {
        Doc::Object(Vec::new())
    }

    /// A string.
    pub fn string(s: impl Into<String>) -> Doc {
        Doc::String(s.into())
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entries of an object.
    pub fn as_object_mut(&mut self) -> Option<&mut Vec<(String, Doc)>> {
        match self {
            Doc::Object(entries) => Some(entries),
            _ => None,
        }
    }

    /// Sets `key` in an object: replaced in place, or appended. No-op on
    /// anything but an object.
    pub fn set(&mut self, key: &str, value: Doc) {
        if let Doc::Object(entries) = self {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => entries.push((key.to_owned(), value)),
            }
        }
    }

    /// The value of `key` in an object, inserted as `default` when absent.
    /// `None` when `self` is not an object.
    pub fn entry(&mut self, key: &str, default: impl FnOnce() -> Doc) -> Option<&mut Doc> {
        let Doc::Object(entries) = self else {
            return None;
        };
        let i = match entries.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                entries.push((key.to_owned(), default()));
                entries.len() - 1
            }
        };
        Some(&mut entries[i].1)
    }

    /// Pretty JSON (two-space indent) with a final newline.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Block-style YAML with a final newline (module docs).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match self {
            Doc::Object(entries) if !entries.is_empty() => yaml_object(&mut out, entries, 0),
            Doc::Array(items) if !items.is_empty() => yaml_array(&mut out, items, 0),
            other => {
                out.push_str(&yaml_scalar(other));
                out.push('\n');
            }
        }
        out
    }
}

impl From<serde_json::Value> for Doc {
    fn from(v: serde_json::Value) -> Doc {
        use serde_json::Value;
        match v {
            Value::Null => Doc::Null,
            Value::Bool(b) => Doc::Bool(b),
            Value::Number(n) => Doc::Number(n),
            Value::String(s) => Doc::String(s),
            Value::Array(a) => Doc::Array(a.into_iter().map(Doc::from).collect()),
            Value::Object(o) => Doc::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    (first.is_ascii_alphabetic() || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '='))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

fn yaml_scalar(d: &Doc) -> String {
    match d {
        Doc::Null => "null".to_owned(),
        Doc::Bool(b) => b.to_string(),
        Doc::Number(n) => n.to_string(),
        Doc::String(s) if plain_ok(s) => s.clone(),
        Doc::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Doc::Array(_) => "[]".to_owned(),
        Doc::Object(_) => "{}".to_owned(),
    }
}

fn is_block(d: &Doc) -> bool {
    match d {
        Doc::Array(a) => !a.is_empty(),
        Doc::Object(o) => !o.is_empty(),
        _ => false,
    }
}

fn yaml_key(k: &str) -> String {
    if plain_ok(k) {
        k.to_owned()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

fn yaml_object(out: &mut String, entries: &[(String, Doc)], indent: usize) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first key of an object in a list goes on the "- " line.
        if i > 0 || indent == 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        let _ = write!(out, "{}:", yaml_key(k));
        match v {
            Doc::Object(o) if !o.is_empty() => {
                out.push('\n');
                yaml_object(out, o, indent + 2);
            }
            Doc::Array(a) if !a.is_empty() => {
                out.push('\n');
                yaml_array(out, a, indent);
            }
            scalar => {
                let _ = writeln!(out, " {}", yaml_scalar(scalar));
            }
        }
    }
}

fn yaml_array(out: &mut String, items: &[Doc], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Doc::Object(o) if !o.is_empty() => yaml_object(out, o, indent + 2),
            Doc::Array(a) if !a.is_empty() => {
                out.push('\n');
                yaml_array(out, a, indent + 2);
            }
            scalar => {
                debug_assert!(!is_block(scalar));
                let _ = writeln!(out, "{}", yaml_scalar(scalar));
            }
        }
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Null => s.serialize_unit(),
            Doc::Bool(b) => s.serialize_bool(*b),
            Doc::Number(n) => n.serialize(s),
            Doc::String(v) => s.serialize_str(v),
            Doc::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Doc::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Doc, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Doc, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Doc, E> {
        serde_json::Number::from_f64(v)
            .map(Doc::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Doc, E> {
        Ok(Doc::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Doc, E> {
        Ok(Doc::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Doc::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut doc = Doc::object();
        while let Some((k, v)) = map.next_entry::<String, Doc>()? {
            doc.set(&k, v);
        }
        Ok(doc)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_values() {
        let text = r#"{"z": 1, "a": {"y": [1, 2.5, null, true], "b": "x"}, "z": 2}"#;
        let doc: Doc = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"z":2,"a":{"y":[1,2.5,null,true],"b":"x"}}"#
        );
    }

    #[test]
    fn yaml_shapes() {
        let doc: Doc = serde_json::from_str(
            r#"{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
                "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0", "major": 195}]}},
                            {"name": "all", "containerEdits": {}}],
                "containerEdits": {"env": ["A=b c", "NVIDIA_VISIBLE_DEVICES=void"], "hooks": []},
                "yes": "no", "n": 1.5, "t": true}"#,
        )
        .unwrap();
        assert_eq!(
            doc.to_yaml(),
            r#"cdiVersion: "0.5.0"
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      major: 195
- name: all
  containerEdits: {}
containerEdits:
  env:
  - "A=b c"
  - NVIDIA_VISIBLE_DEVICES=void
  hooks: []
"yes": "no"
"n": 1.5
t: true
"#
        );
    }
}
