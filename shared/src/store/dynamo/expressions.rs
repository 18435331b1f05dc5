//! Update and condition expressions of one request, with their `#name` / `:value`
//! placeholders.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Collects `#name` / `:value` placeholders of one request's expressions.
#[derive(Debug, Clone, Default)]
pub struct Expr {
    names: HashMap<String, String>,
    by_attr: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// The placeholder of attribute `attr` (the same one each time).
    pub fn name(&mut self, attr: &str) -> String {
        if let Some(p) = self.by_attr.get(attr) {
            return p.clone();
        }
        let p = format!("#n{}", self.by_attr.len());
        self.by_attr.insert(attr.to_owned(), p.clone());
        self.names.insert(p.clone(), attr.to_owned());
        p
    }

    pub fn value(&mut self, v: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), v);
        p
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// An update expression under construction.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub expr: Expr,
    sets: Vec<String>,
    adds: Vec<String>,
    deletes: Vec<String>,
    removes: Vec<String>,
    conditions: Vec<String>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (n, v) = (self.expr.name(attr), self.expr.value(v));
        self.sets.push(format!("{n} = {v}"));
        self
    }

    pub fn add(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (n, v) = (self.expr.name(attr), self.expr.value(v));
        self.adds.push(format!("{n} {v}"));
        self
    }

    /// `DELETE attr :v`: removes the elements of the set `v` from a set attribute.
    pub fn delete(&mut self, attr: &str, v: AttributeValue) -> &mut Self {
        let (n, v) = (self.expr.name(attr), self.expr.value(v));
        self.deletes.push(format!("{n} {v}"));
        self
    }

    pub fn remove(&mut self, attr: &str) -> &mut Self {
        let n = self.expr.name(attr);
        self.removes.push(n);
        self
    }

    /// Adds a condition (all conditions are ANDed); `f` builds it from placeholders.
    pub fn condition(&mut self, f: impl FnOnce(&mut Expr) -> String) -> &mut Self {
        let c = f(&mut self.expr);
        self.conditions.push(c);
        self
    }

    pub fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        if !self.deletes.is_empty() {
            parts.push(format!("DELETE {}", self.deletes.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        parts.join(" ")
    }

    pub fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| {
            self.conditions
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamo::codec::{n, s};

    #[test]
    fn update_builder_reuses_names_and_joins_clauses() {
        let mut u = Update::new();
        u.add("c|x", n(1))
            .add("c|y", n(2))
            .set("s", s("v"))
            .remove("r|1");
        u.condition(|e| format!("attribute_exists({})", e.name("r|1")));
        assert_eq!(
            u.update_expression(),
            "SET #n2 = :v2 ADD #n0 :v0, #n1 :v1 REMOVE #n3"
        );
        assert_eq!(u.condition_expression().unwrap(), "(attribute_exists(#n3))");
        assert_eq!(u.expr.names().unwrap().len(), 4);
    }
}
