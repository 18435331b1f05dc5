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
        self.validate_at(&pointer, body)
    }

    /// Validates a body against a shared response of `components/responses` (e.g.
    /// `NotFound`), for answers that belong to no route (the `$default` route's).
    pub fn validate_component(&self, response: &str, body: &Value) -> Result<(), String> {
        let pointer = format!("/components/responses/{response}/content/application~1json/schema");
        self.doc
            .pointer(&pointer)
            .ok_or_else(|| format!("no response {response} in components"))?;
        self.validate_at(&pointer, body)
    }

    fn validate_at(&self, pointer: &str, body: &Value) -> Result<(), String> {
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
/// A function with only a schedule maps to an empty set. The `$default` route (an event
/// with neither `Method` nor `Path`) is not among them: see [`template_default_route`].
pub fn template_routes() -> BTreeMap<String, BTreeSet<Route>> {
    template_http_events().0
}

/// The function the API's `$default` route (every request no other route matches) goes
/// to, if the template has one.
pub fn template_default_route() -> Option<String> {
    template_http_events().1
}

fn template_http_events() -> (BTreeMap<String, BTreeSet<Route>>, Option<String>) {
    let text = std::fs::read_to_string(repo().join("template.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template.yaml parses");
    let mut out = BTreeMap::new();
    let mut default_route = None;
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
        let routes: &mut BTreeSet<Route> = out.entry(function.clone()).or_default();
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for (_, event) in events {
                if event["Type"].as_str() == Some("HttpApi") {
                    let p = &event["Properties"];
                    if p.get("Method").is_none() && p.get("Path").is_none() {
                        assert!(default_route.is_none(), "two $default routes");
                        default_route = Some(function.clone());
                        continue;
                    }
                    routes.insert((
                        p["Method"].as_str().expect("Method").to_uppercase(),
                        p["Path"].as_str().expect("Path").to_owned(),
                    ));
                }
            }
        }
    }
    (out, default_route)
}

/// Every `.route(&format!("{PREFIX}/…"), get(…)…)` (or `.route("/…", …)`) of the files of
/// shared/src/http (routes.rs and the web dashboard's web.rs, tokens.rs, tenant.rs), but
/// `meter serve`'s own operations routes (ops.rs: `/healthz`, `/metrics`), which the
/// Lambda functions do not serve.
pub fn router_routes() -> BTreeSet<Route> {
    let mut src = String::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("shared/src/http"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| !p.ends_with("ops.rs"))
        .collect();
    files.sort();
    for file in files {
        src.push_str(&std::fs::read_to_string(file).unwrap());
    }
    let prefix = "/api/subscription";
    let mut out = BTreeSet::new();
    for args in call_args(&src, ".route(") {
        let literal = &args[0];
        let start = literal.find('"').expect("a path literal") + 1;
        let len = literal[start..].find('"').expect("a closed literal");
        let path = literal[start..start + len]
            .replace("{PREFIX}", prefix)
            .replace("{{", "{")
            .replace("}}", "}");
        // The method router: the call's other arguments.
        let handlers = args[1..].join(",");
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

/// The arguments of every call `call` (e.g. `FieldError::new(`) in `src`, split at the
/// top-level commas (string literals, brackets and braces respected).
fn call_args(src: &str, call: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in src.match_indices(call) {
        let mut args = Vec::new();
        let mut current = String::new();
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        for c in src[at + call.len()..].chars() {
            if in_str {
                current.push(c);
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => {
                    in_str = true;
                    current.push(c);
                }
                '(' | '[' | '{' => {
                    depth += 1;
                    current.push(c);
                }
                ')' | ']' | '}' if depth == 0 => break,
                ')' | ']' | '}' => {
                    depth -= 1;
                    current.push(c);
                }
                ',' if depth == 0 => args.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        args.push(current);
        out.push(args.into_iter().map(|a| a.trim().to_owned()).collect());
    }
    out
}

/// A string literal that looks like a stable code (`snake_case`).
fn code_literal(arg: &str) -> Option<String> {
    let inner = arg.strip_prefix('"')?.strip_suffix('"')?;
    let ok = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    ok.then(|| inner.to_owned())
}

/// `(file, code)` for every field-level code the code can answer with (the error's code
/// when it is the only problem): the literal code of each `FieldError::new`,
/// `Error::invalid`, `Fields::error`/`fail` call of the HTTP and service layers, and
/// the codes of plan, catalog, subscription-change and usage-normalisation errors.
pub fn field_error_codes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut files = Vec::new();
    for dir in ["shared/src/http", "shared/src/service"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for file in [
        "shared/src/usage/normalise.rs",
        "shared/src/limits/plans.rs",
        "shared/src/limits/validation.rs",
        "shared/src/pricing/catalog.rs",
        "shared/src/subscriptions.rs",
    ] {
        files.push(repo().join(file));
    }
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap();
        let name = path
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The second argument is the code: `(field, code, message)`.
        for call in ["FieldError::new(", "Error::invalid(", ".error(", ".fail("] {
            for args in call_args(&src, call) {
                if let Some(code) = args.get(1).and_then(|a| code_literal(a)) {
                    out.insert((name.clone(), code));
                }
            }
        }
        // The code functions: every `=> "code"` of their bodies.
        for func in ["pub fn code(&self)"] {
            if name.ends_with("error.rs") && func == "pub fn code(&self)" {
                continue; // ApiError::code: checked against ErrorCode on its own
            }
            let Some(body) = src.split(func).nth(1) else {
                continue;
            };
            let body = body.split("\n}").next().unwrap_or(body);
            let body = body.split("\n    }").next().unwrap_or(body);
            for piece in body.split("=> \"").skip(1) {
                if let Some(code) =
                    code_literal(&format!("\"{}\"", piece.split('"').next().unwrap()))
                {
                    out.insert((name.clone(), code));
                }
            }
        }
    }
    out
}

impl Contract {
    pub fn validation_codes(&self) -> BTreeSet<String> {
        self.doc["components"]["schemas"]["ValidationCode"]["enum"]
            .as_array()
            .expect("ValidationCode enum")
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }
}
