//! Applying a ProjectionExpression: the result keeps the item's nesting, with
//! only the projected parts. Projected list elements keep their relative
//! order and are packed (`a[3]` alone yields a one-element list); maps and
//! lists left empty because nothing under them exists are omitted.

use std::collections::BTreeMap;

use partita_model::{AttributeValue, Item, Map};

use crate::ast::{Path, PathElement, ProjectionExpression};

/// The projected paths merged into a tree.
#[derive(Default)]
struct Node {
    /// A projected path ends here: take the whole value.
    whole: bool,
    fields: BTreeMap<String, Node>,
    indexes: BTreeMap<usize, Node>,
}

impl Node {
    fn insert(&mut self, elems: &[PathElement]) {
        let mut node = self;
        for elem in elems {
            node = match elem {
                PathElement::Attribute(name) => node.fields.entry(name.clone()).or_default(),
                PathElement::Index(i) => node.indexes.entry(*i).or_default(),
            };
        }
        node.whole = true;
    }

    /// Projects `value` through this node. Paths are at most a few dozen
    /// elements long, which bounds the recursion.
    fn project(&self, value: &AttributeValue) -> Option<AttributeValue> {
        if self.whole {
            return Some(value.clone());
        }
        match value {
            AttributeValue::M(m) if !self.fields.is_empty() => {
                let out = self.project_map(m);
                (!out.is_empty()).then_some(AttributeValue::M(out))
            }
            AttributeValue::L(l) if !self.indexes.is_empty() => {
                let out: Vec<AttributeValue> = self
                    .indexes
                    .iter()
                    .filter_map(|(i, node)| l.get(*i).and_then(|v| node.project(v)))
                    .collect();
                (!out.is_empty()).then_some(AttributeValue::L(out))
            }
            _ => None,
        }
    }

    fn project_map(&self, m: &Map) -> Map {
        self.fields
            .iter()
            .filter_map(|(name, node)| {
                m.get(name)
                    .and_then(|v| node.project(v))
                    .map(|v| (name.clone(), v))
            })
            .collect()
    }
}

impl ProjectionExpression {
    /// Returns the projected part of `item`.
    pub fn apply(&self, item: &Item) -> Item {
        let mut root = Node::default();
        for path in &self.0 {
            if matches!(path.0.first(), Some(PathElement::Attribute(_))) {
                root.insert(&path.0);
            }
        }
        root.project_map(item)
    }

    /// Returns the distinct top-level attribute names projected.
    pub fn top_level_attributes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in self.0.iter().filter_map(Path::top_level) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}
