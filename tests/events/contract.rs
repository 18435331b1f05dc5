//! The three descriptions of the routes: `openapi.yaml` (with its schemas), `template.yaml`
//! (the HTTP API events of each function) and `shared/src/http/routes.rs` (what the routers
//! serve, read from the source text).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::repo;

/// `(METHOD, /api/subscription/path/{param})`.
pub type Route = (String, String);

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

pub struct Contract {
    doc: Value,
}

/// `~` and `/` escaped for a JSON pointer segment.
fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    pub fn load() -> Self {
        let text = std::fs::read_to_string(repo().join("openapi.yaml")).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&text).expect("openapi.yaml parses");
        assert_eq!(doc["openapi"], "3.1.0");
        Self { doc }
    }

    pub fn routes(&self) -> Vec<Route> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if item.get(*method).is_some() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    pub fn operation(&self, (method, path): &Route) -> Option<&Value> {
        self.doc["paths"].get(path)?.get(method.to_lowercase())
    }

    /// The JSON pointer (within openapi.yaml) of the body schema of `status` answers.
    pub fn response_schema(&self, route: &Route, status: u16) -> Result<String, String> {
        let op = self
            .operation(route)
            .ok_or_else(|| format!("{route:?} is not in openapi.yaml"))?;
        let status_key = status.to_string();
        let response = op["responses"]
            .get(&status_key)
            .ok_or_else(|| format!("{route:?} does not document status {status}"))?;
        let base = match response.get("$ref").and_then(Value::as_str) {
            Some(r) => r.trim_start_matches('#').to_owned(),
            None => format!(
                "/paths/{}/{}/responses/{status_key}",
                pointer_segment(&route.1),
                route.0.to_lowercase()
            ),
        };
        let pointer = format!("{base}/content/application~1json/schema");
        self.doc
            .pointer(&pointer)
            .ok_or_else(|| format!("{route:?} {status}: no application/json schema"))?;
        Ok(pointer)
    }

    /// Validates a response body against the schema openapi.yaml gives for it.
    pub fn validate(&self, route: &Route, status: u16, body: &Value) -> Result<(), String> {
        let pointer = self.response_schema(route, status)?;
        // The whole document is the root schema, so `#/components/...` references resolve;
        // the `$ref` selects the response's schema (JSON Schema 2020-12, as OpenAPI 3.1).
        let mut schema = self.doc.clone();
        let root = schema.as_object_mut().expect("an object");
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        // A URI fragment: the braces of path templates must be percent-encoded.
        let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
        root.insert("$ref".into(), json!(format!("#{fragment}")));
        let validator = jsonschema::validator_for(&schema).map_err(|e| format!("schema: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    pub fn error_codes(&self) -> BTreeSet<String> {
        self.doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode enum")
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Function (`CodeUri: functions/<name>`) → its `HttpApi` event routes, from template.yaml.
/// A function with only a schedule maps to an empty set.
pub fn template_routes() -> BTreeMap<String, BTreeSet<Route>> {
    let text = std::fs::read_to_string(repo().join("template.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template.yaml parses");
    let mut out = BTreeMap::new();
    let resources = doc["Resources"].as_mapping().expect("Resources");
    for (_, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let code_uri = resource["Properties"]["CodeUri"].as_str().expect("CodeUri");
        let function = code_uri
            .strip_prefix("functions/")
            .unwrap_or_else(|| panic!("CodeUri {code_uri} is not functions/<name>"))
            .to_owned();
        let routes: &mut BTreeSet<Route> = out.entry(function).or_default();
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for (_, event) in events {
                if event["Type"].as_str() == Some("HttpApi") {
                    let p = &event["Properties"];
                    routes.insert((
                        p["Method"].as_str().expect("Method").to_uppercase(),
                        p["Path"].as_str().expect("Path").to_owned(),
                    ));
                }
            }
        }
    }
    out
}

/// Every `.route(&format!("{PREFIX}/…"), get(…)…)` of shared/src/http/routes.rs.
pub fn router_routes() -> BTreeSet<Route> {
    let src = std::fs::read_to_string(repo().join("shared/src/http/routes.rs")).unwrap();
    let prefix = "/api/subscription";
    let mut out = BTreeSet::new();
    for piece in src.split(".route(").skip(1) {
        let start = piece.find('"').expect("a path literal") + 1;
        let len = piece[start..].find('"').expect("a closed literal");
        let path = piece[start..start + len]
            .replace("{PREFIX}", prefix)
            .replace("{{", "{")
            .replace("}}", "}");
        // The method router follows the path literal, up to the next `.route(`.
        let handlers = &piece[start + len..];
        let mut methods = 0;
        for method in METHODS {
            let call = format!("{method}(");
            let called = handlers
                .match_indices(&call)
                .any(|(i, _)| !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
            if called {
                out.insert((method.to_uppercase(), path.clone()));
                methods += 1;
            }
        }
        assert!(methods > 0, "no method found for route {path}");
    }
    out
}
