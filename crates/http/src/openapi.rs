//! The OpenAPI 3.1 document, generated from the interface registry.

use std::sync::LazyLock;

use axum::Json;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::registry::{Access, endpoints};

static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

/// Serves the document to authenticated users.
pub async fn serve() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// Builds the document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for e in endpoints() {
        let mut op = Map::new();
        op.insert("summary".into(), json!(e.summary));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}{}",
                e.method.as_str().to_lowercase(),
                e.path.replace(['/', '{', '}', '.'], "_")
            )),
        );
        match e.access {
            Access::Public => {
                op.insert("security".into(), json!([]));
            }
            Access::Console => {
                op.insert("security".into(), json!([]));
                op.insert("x-mamori-console-only".into(), json!(true));
            }
            Access::Authenticated(r) => {
                op.insert("x-mamori-permission".into(), json!(r.permission));
                op.insert("x-mamori-reauth".into(), json!(r.reauth));
            }
        }
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true,
                "schema": {"type": "string", "maxLength": 64}})
            })
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(req) = e.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": req(&mut generator)}}}),
            );
            // Larger bodies are refused with 413; clients and the input sweep read it here.
            if let Some(max) = e.max_body_bytes {
                op.insert("x-mamori-max-body-bytes".into(), json!(max));
            }
        }
        let ok = match e.response {
            Some(resp) => {
                json!({"description": "OK", "content": {"application/json": {"schema": resp(&mut generator)}}})
            }
            None => json!({"description": "OK"}),
        };
        op.insert(
            "responses".into(),
            json!({"2XX": ok, "4XX": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}),
        );
        let entry = paths
            .entry(e.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(e.method.as_str().to_lowercase(), Value::Object(op));
        }
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message"], "properties": {"code": {"type": "string"},
            "message": {"type": "string"}, "rule": {"type": "string"}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "mamori management API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::SESSION_COOKIE},
                "token": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"session": []}, {"token": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_endpoint_and_resolves_its_references() {
        let doc = document();
        let text = doc.to_string();
        for e in endpoints() {
            assert!(
                doc["paths"][e.path][e.method.as_str().to_lowercase()].is_object(),
                "{}",
                e.path
            );
        }
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
        // Request bodies reject unknown fields.
        assert_eq!(
            doc["components"]["schemas"]["LoginRequest"]["additionalProperties"],
            false
        );
    }

    /// Every operation with a body says how large it may be: the configuration's whole
    /// candidates 16 MiB, every other body 16 KiB.
    #[test]
    fn every_body_publishes_its_limit() {
        let doc = document();
        for e in endpoints() {
            let op = &doc["paths"][e.path][e.method.as_str().to_lowercase()];
            let max = op["x-mamori-max-body-bytes"].as_u64();
            if e.request.is_none() {
                assert_eq!(max, None, "{} {}", e.method, e.path);
                continue;
            }
            let large = ["/api/v1/config/check", "/api/v1/config/commit"].contains(&e.path);
            let want = if large {
                crate::handlers::config::CONFIG_BODY_BYTES
            } else {
                crate::MAX_BODY_BYTES
            };
            assert_eq!(max, Some(want as u64), "{} {}", e.method, e.path);
        }
    }
}
