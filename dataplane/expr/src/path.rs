//! Document paths: display, lookup in items, and the overlap/conflict
//! relation DynamoDB forbids between the paths of one expression.

use std::cmp::Ordering;
use std::fmt;

use partita_model::{AttributeValue, Item};

use crate::ast::{Path, PathElement};

impl Path {
    /// Returns the path of one top-level attribute.
    pub fn attribute(name: impl Into<String>) -> Path {
        Path(vec![PathElement::Attribute(name.into())])
    }

    /// Returns the top-level attribute name the path starts with.
    pub fn top_level(&self) -> Option<&str> {
        match self.0.first() {
            Some(PathElement::Attribute(name)) => Some(name),
            _ => None,
        }
    }

    /// Returns the path as DynamoDB prints it in error messages: `[a, b, [2]]`.
    pub fn bracketed(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| match e {
                PathElement::Attribute(name) => name.clone(),
                PathElement::Index(i) => format!("[{i}]"),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }

    /// Returns the value at this path in `item`, if there is one.
    pub fn get<'v>(&self, item: &'v Item) -> Option<&'v AttributeValue> {
        let mut elems = self.0.iter();
        let mut current = match elems.next()? {
            PathElement::Attribute(name) => item.get(name)?,
            PathElement::Index(_) => return None,
        };
        for elem in elems {
            current = match (elem, current) {
                (PathElement::Attribute(name), AttributeValue::M(m)) => m.get(name)?,
                (PathElement::Index(i), AttributeValue::L(l)) => l.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

impl fmt::Display for Path {
    /// Writes the path in expression syntax: `a.b[2].c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, elem) in self.0.iter().enumerate() {
            match elem {
                PathElement::Attribute(name) if i == 0 => write!(f, "{name}")?,
                PathElement::Attribute(name) => write!(f, ".{name}")?,
                PathElement::Index(idx) => write!(f, "[{idx}]")?,
            }
        }
        Ok(())
    }
}

/// How two paths of one expression relate, when DynamoDB forbids it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clash {
    /// Equal, or one is a prefix of the other.
    Overlap,
    /// They agree up to an element that is a map key in one and a list index
    /// in the other.
    Conflict,
}

/// Returns how `a` and `b` clash, or `None` when both can be used together.
pub fn clash(a: &Path, b: &Path) -> Option<Clash> {
    for (x, y) in a.0.iter().zip(b.0.iter()) {
        match (x, y) {
            (PathElement::Attribute(p), PathElement::Attribute(q)) if p != q => return None,
            (PathElement::Index(p), PathElement::Index(q)) if p != q => return None,
            (PathElement::Attribute(_), PathElement::Index(_))
            | (PathElement::Index(_), PathElement::Attribute(_)) => return Some(Clash::Conflict),
            _ => {}
        }
    }
    Some(Clash::Overlap)
}

/// Returns DynamoDB's message for the first clashing pair among `paths`
/// (in order), without the "Invalid XExpression: " prefix.
pub fn first_clash(paths: &[&Path]) -> Option<String> {
    for (j, later) in paths.iter().enumerate() {
        for earlier in &paths[..j] {
            if let Some(c) = clash(earlier, later) {
                let what = match c {
                    Clash::Overlap => "overlap",
                    Clash::Conflict => "conflict",
                };
                return Some(format!(
                    "Two document paths {what} with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    earlier.bracketed(),
                    later.bracketed()
                ));
            }
        }
    }
    None
}

/// Orders path elements for processing removals: names by text, indexes by
/// number.
pub fn cmp_elements(a: &[PathElement], b: &[PathElement]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let o = match (x, y) {
            (PathElement::Attribute(p), PathElement::Attribute(q)) => p.cmp(q),
            (PathElement::Index(p), PathElement::Index(q)) => p.cmp(q),
            (PathElement::Attribute(_), PathElement::Index(_)) => Ordering::Less,
            (PathElement::Index(_), PathElement::Attribute(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(elems: &[&str]) -> Path {
        Path(
            elems
                .iter()
                .map(|e| match e.parse::<usize>() {
                    Ok(i) => PathElement::Index(i),
                    Err(_) => PathElement::Attribute(e.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn displays_in_both_forms() {
        let p = path(&["a", "b", "2", "c"]);
        assert_eq!(p.to_string(), "a.b[2].c");
        assert_eq!(p.bracketed(), "[a, b, [2], c]");
    }

    #[test]
    fn clash_relation() {
        assert_eq!(
            clash(&path(&["a"]), &path(&["a", "b"])),
            Some(Clash::Overlap)
        );
        assert_eq!(
            clash(&path(&["a", "b"]), &path(&["a", "b"])),
            Some(Clash::Overlap)
        );
        assert_eq!(
            clash(&path(&["a", "b"]), &path(&["a", "0"])),
            Some(Clash::Conflict)
        );
        assert_eq!(clash(&path(&["a", "b"]), &path(&["a", "c"])), None);
        assert_eq!(clash(&path(&["a", "1"]), &path(&["a", "2"])), None);
        assert_eq!(
            first_clash(&[&path(&["x"]), &path(&["a"]), &path(&["a", "b"])]).as_deref(),
            Some("Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]")
        );
    }

    #[test]
    fn get_follows_maps_and_lists() {
        let mut inner = partita_model::Map::new();
        inner.insert("c".into(), AttributeValue::S("deep".into()));
        let mut item = Item::new();
        item.insert(
            "a".into(),
            AttributeValue::L(vec![AttributeValue::Null, AttributeValue::M(inner)]),
        );
        assert_eq!(
            path(&["a", "1", "c"]).get(&item),
            Some(&AttributeValue::S("deep".into()))
        );
        assert_eq!(path(&["a", "2", "c"]).get(&item), None);
        assert_eq!(path(&["a", "c"]).get(&item), None);
        assert_eq!(path(&["b"]).get(&item), None);
    }
}
