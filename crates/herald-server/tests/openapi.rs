//! docs/openapi.yaml against the server: the document describes exactly the actions the server
//! routes, and every named example, signed and sent to a real server, answers the `Code` the
//! document promises. The examples are read from the document, never copied here, so the two
//! cannot drift apart.
//!
//! A case is a request example and the answer example of the same name. `x-herald-given` on the
//! answer example is what the server holds first (`app`/`limits` config keys, `users` to
//! register, `broadcasts` to send, whose `as` names stand for their real `RequestId` in the
//! request); `x-herald-query` on the request example replaces common parameters after signing.

mod support;

use herald_server::api::ACTIONS;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use support::{Server, APP_ID, SECRET};

const COMMON_PARAMETERS: [&str; 5] = ["AppId", "SignatureNonce", "Timestamp", "Signature", "SignatureVersion"];
const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML that maps to JSON: {e}"))
}

/// One operation of the document: its `operationId`, path, method and the operation object.
struct Operation<'a> {
    id: &'a str,
    path: &'a str,
    method: &'a str,
    op: &'a Value,
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let paths = doc["paths"].as_object().expect("paths is a map");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                out.push(Operation { id, path, method, op });
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

fn examples(v: &Value) -> Map<String, Value> {
    v.get("examples").and_then(Value::as_object).cloned().unwrap_or_default()
}

#[test]
fn every_action_is_described_and_nothing_else() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "OpenAPI 3.1");
    let ops = operations(&doc);
    let described: Vec<&str> = ops.iter().map(|o| o.id).collect();
    let unique: BTreeSet<&str> = described.iter().copied().collect();
    assert_eq!(unique.len(), described.len(), "an action is described twice: {described:?}");
    assert_eq!(
        unique,
        ACTIONS.iter().copied().collect::<BTreeSet<_>>(),
        "described actions vs herald_server::api::ACTIONS"
    );
    for o in &ops {
        assert_eq!(o.path, format!("/?Action={}", o.id), "the path of {} carries its Action", o.id);
        let params: BTreeSet<String> = o.op["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{} has no parameters", o.id))
            .iter()
            .map(|p| resolve(&doc, p)["name"].as_str().unwrap_or_default().to_string())
            .collect();
        for name in COMMON_PARAMETERS {
            assert!(params.contains(name), "{} lacks the common parameter {name}", o.id);
        }
    }
}

/// Everything one case needs, read from the document.
struct Case {
    name: String,
    action: String,
    method: String,
    /// POST body, or the extra query pairs of a GET.
    body: Option<Value>,
    query: Vec<(String, String)>,
    overrides: Map<String, Value>,
    given: Value,
    expected: Value,
    /// Codes the answer schema allows besides the common ones.
    codes: Vec<u64>,
}

fn cases(doc: &Value) -> Vec<Case> {
    let common_codes: Vec<u64> = codes_of(&doc["components"]["schemas"]["CommonCode"]);
    let mut out = Vec::new();
    for o in operations(doc) {
        let response = &o.op["responses"]["200"]["content"]["application/json"];
        let answers = examples(response);
        let codes: Vec<u64> = response["schema"]["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| codes_of(&s["properties"]["Code"]))
            .chain(common_codes.iter().copied())
            .collect();
        // Request examples: the JSON body's, or each query parameter's.
        let bodies = examples(&o.op["requestBody"]["content"]["application/json"]);
        let mut query_examples: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
        for p in o.op["parameters"].as_array().into_iter().flatten().map(|p| resolve(doc, p)) {
            for (name, ex) in examples(p) {
                query_examples.entry(name).or_default().push((p["name"].as_str().unwrap().to_string(), ex));
            }
        }
        let requests: BTreeSet<&String> = bodies.keys().chain(query_examples.keys()).collect();
        let answer_names: BTreeSet<&String> = answers.keys().collect();
        assert_eq!(requests, answer_names, "{}: request and answer examples must pair up by name", o.id);
        assert!(!answers.is_empty(), "{} has no examples", o.id);
        for (name, answer) in &answers {
            let mut case = Case {
                name: name.clone(),
                action: o.id.to_string(),
                method: o.method.to_string(),
                body: None,
                query: Vec::new(),
                overrides: Map::new(),
                given: answer.get("x-herald-given").cloned().unwrap_or(Value::Null),
                expected: answer["value"].clone(),
                codes: codes.clone(),
            };
            if let Some(ex) = bodies.get(name) {
                case.body = Some(ex["value"].clone());
                case.overrides = ex.get("x-herald-query").and_then(Value::as_object).cloned().unwrap_or_default();
            }
            for (param, ex) in query_examples.get(name).into_iter().flatten() {
                // `style: form, explode: true`: an array is the parameter repeated.
                match &ex["value"] {
                    Value::Array(items) => {
                        case.query.extend(items.iter().map(|v| (param.clone(), scalar(v))));
                    }
                    v => case.query.push((param.clone(), scalar(v))),
                }
                if let Some(o) = ex.get("x-herald-query").and_then(Value::as_object) {
                    case.overrides.extend(o.clone());
                }
            }
            out.push(case);
        }
    }
    out
}

fn codes_of(schema: &Value) -> Vec<u64> {
    schema["enum"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A server for one case: the app configured as the case's `x-herald-given` says, in memory, on
/// a clock that stands still (so "a second broadcast within the same second" is exact).
async fn server_for(given: &Value) -> Server {
    let table = |key: &str| -> String {
        given[key].as_object().into_iter().flatten().map(|(k, v)| format!("{k} = {}\n", toml_value(v))).collect()
    };
    let app = format!(
        "[[apps]]\napp_id = {APP_ID}\nserver_secret = \"{SECRET}\"\n{}[apps.limits]\n{}",
        table("app"),
        table("limits")
    );
    Server::builder().store_url("sqlite::memory:").clock_at(1_764_316_800_000).config(&app).start().await
}

/// A signed request (POST with a body, GET without); `overrides` replace common parameters
/// after signing. The harness checks the answer's common shape.
async fn call(
    server: &Server,
    action: &str,
    method: &str,
    body: Option<&Value>,
    extra: &[(String, String)],
    overrides: &Map<String, Value>,
) -> Value {
    let signed = extra.iter().fold(server.signed(action), |p, (k, v)| p.add(k, v)).query();
    let query = if overrides.is_empty() {
        signed
    } else {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(signed.as_bytes()) {
            let v = overrides.get(k.as_ref()).map_or(v.to_string(), scalar);
            q.append_pair(&k, &v);
        }
        q.finish()
    };
    let body = match method {
        "get" => None,
        "post" => {
            Some(serde_json::to_vec(body.unwrap_or_else(|| panic!("{action}: a POST example needs a body"))).unwrap())
        }
        other => panic!("{action}: method {other} is not one the server API uses"),
    };
    server.raw(&query, body).await
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => panic!("x-herald-given: {other} is not a config value"),
    }
}

/// Puts the real `RequestId` of each given broadcast where the example names it by its `as`.
fn substitute(v: &Value, ids: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => ids.get(s).map_or_else(|| v.clone(), |id| json!(id)),
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, ids)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), substitute(i, ids))).collect()),
        other => other.clone(),
    }
}

fn sub_codes(answer: &Value) -> Vec<Option<u64>> {
    answer["ErrorList"].as_array().into_iter().flatten().map(|e| e["SubCode"].as_u64()).collect()
}

/// Runs one case; `Err` says how the answer differs from the document.
async fn run(case: &Case) -> Result<(), String> {
    let mut server = server_for(&case.given).await;
    let none = Map::new();
    for user in case.given["users"].as_array().into_iter().flatten() {
        let body = json!({"UserInfo": [{"UserId": user}]});
        let answer = call(&server, "UserRegister", "post", Some(&body), &[], &none).await;
        if answer["Code"] != 0 {
            return Err(format!("x-herald-given: registering {user} answered {answer}"));
        }
    }
    let mut ids = BTreeMap::new();
    for broadcast in case.given["broadcasts"].as_array().into_iter().flatten() {
        let answer = call(&server, "SendMessageToAllUsers", "post", Some(&broadcast["body"]), &[], &none).await;
        if answer["Code"] != 0 {
            return Err(format!("x-herald-given: the broadcast {broadcast} answered {answer}"));
        }
        if let Some(name) = broadcast["as"].as_str() {
            ids.insert(name.to_string(), answer["RequestId"].as_str().unwrap_or_default().to_string());
        }
    }
    let body = case.body.as_ref().map(|b| substitute(b, &ids));
    let answer = call(&server, &case.action, &case.method, body.as_ref(), &case.query, &case.overrides).await;
    server.stop().await;

    let expected_code = case.expected["Code"].as_u64().ok_or("the answer example has no numeric Code")?;
    if !case.codes.contains(&expected_code) {
        return Err(format!("Code {expected_code} is not in the answer schema's Code enum"));
    }
    if answer["Code"].as_u64() != Some(expected_code) {
        return Err(format!("documented Code {expected_code}, the server answered {answer}"));
    }
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
    if keys(&answer) != keys(&case.expected) {
        return Err(format!("documented fields {:?}, the server answered {answer}", keys(&case.expected)));
    }
    if sub_codes(&answer) != sub_codes(&case.expected) {
        return Err(format!("documented SubCodes {:?}, the server answered {answer}", sub_codes(&case.expected)));
    }
    Ok(())
}

#[tokio::test]
async fn every_example_answers_its_documented_code() {
    let doc = document();
    let cases = cases(&doc);
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run(case).await {
            failures.push(format!("{} example {:?}: {why}", case.action, case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples disagree with the server:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let per_action: BTreeSet<&str> = cases.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(per_action.len(), ACTIONS.len(), "every action has examples");
    for action in ACTIONS {
        let codes: Vec<u64> =
            cases.iter().filter(|c| c.action == *action).filter_map(|c| c.expected["Code"].as_u64()).collect();
        assert!(codes.contains(&0), "{action} has no example that succeeds");
        assert!(codes.iter().any(|c| *c != 0), "{action} has no example that is refused");
    }
}
