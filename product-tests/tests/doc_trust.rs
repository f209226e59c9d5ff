//! Issue 15 item 1: fetching documents is a trust boundary. A remote document references
//! only its own origin (plus `runtime.server.documents.allowedOrigins`) and never a local
//! file; local documents are read only inside the config file's directory tree (plus
//! `runtime.server.documents.allowedDirectories`); redirects are checked at every hop; only
//! regular files are read, within the size limit; a `$ref` pointing at nothing is an error.
//! The same rules hold for `validate`, start-up, `POST /v1/refresh` and SIGHUP.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use open_cli_product_tests::{
    Fixture, Runtime, TestApi, bin, isolate, mkfifo, text, validate_fails,
};
use serde_json::{Value, json};

/// An OpenAPI document with one operation whose `q` parameter schema is `{$ref: REF}`.
fn api_doc(reference: &str) -> String {
    format!(
        r#"openapi: 3.0.3
info: {{title: Things, version: '1'}}
servers: [{{url: 'http://127.0.0.1:9/'}}]
paths:
  /things:
    get:
      operationId: listThings
      parameters:
        - {{name: q, in: query, schema: {{$ref: '{reference}'}}}}
      responses: {{'200': {{description: ok}}}}
components:
  schemas:
    Plain: {{type: string}}
"#
    )
}

/// A schema document whose `Thing` carries `marker` (to see where content ends up).
fn schema_doc(marker: &str) -> String {
    format!("Thing: {{type: string, description: {marker}}}\n")
}

/// A document server (the demo upstream's `/docs/`) over its own directory.
fn doc_server() -> (Fixture, TestApi) {
    let docs = Fixture::new();
    let api = TestApi::start_with_docs(docs.path());
    (docs, api)
}

/// A config with one OpenAPI source at `uri` and `runtime.server.documents` = `documents`.
fn config(fx: &Fixture, uri: &str, documents: Value) -> PathBuf {
    let mut cfg = json!({"cli": "1.0.0", "mode": {"default": "discover"},
        "sources": {"things": {"type": "openapi", "uri": uri}},
        "services": {"things": {"source": "things"}}});
    if !documents.is_null() {
        cfg["runtime"] = json!({"server": {"documents": documents}});
    }
    fx.write_json(".cli.json", &cfg)
}

/// `validate` expected to succeed.
fn validate_ok(config: &Path) {
    let out = validate_bounded(config, Duration::from_secs(60));
    assert_eq!(out.0, Some(0), "validate should pass:\n{}", out.1);
}

/// Run `open-cli-toolbox validate` under a 2 GiB address-space limit with a deadline: a run
/// that reads without bound dies of the limit, a run that blocks is killed at the deadline.
/// Returns the exit code (`None`: killed), stdout + stderr, and how long it took.
fn validate_bounded(config: &Path, deadline: Duration) -> (Option<i32>, String, Duration) {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -v 2097152 && exec \"$0\" validate --config \"$1\"",
    ])
    .arg(bin("open-cli-toolbox"))
    .arg(config);
    isolate(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn validate");
    let mut killed = false;
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait");
    let elapsed = started.elapsed();
    let code = if killed { None } else { out.status.code() };
    (
        code,
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
        elapsed,
    )
}

/// `validate` must fail within `deadline` (exit code 1) and mention every `want`.
fn validate_refuses(config: &Path, deadline: Duration, wants: &[&str]) -> String {
    let (code, out, took) = validate_bounded(config, deadline);
    assert_eq!(
        code,
        Some(1),
        "validate should fail promptly (took {took:?}; `None` = killed at the deadline):\n{out}"
    );
    for want in wants {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    out
}

/// The flag schema of `things:listThings` in a running runtime's catalog.
fn q_schema(rt: &Runtime) -> Value {
    let cat = rt.catalog();
    cat["catalog"]["tools"][0]["flags"][0]["schema"].clone()
}

#[test]
fn a_remote_document_may_not_reference_local_files() {
    let outside = Fixture::new();
    let marker = "SECRET-OUTSIDE-CONFIG-7f3a";
    let secret = outside.write("secret.yaml", &schema_doc(marker));
    let secret_ref = format!("file://{}#/Thing", secret.display());
    let (docs, api) = doc_server();
    let doc_url = format!("{}/docs/api.yaml", api.url);
    let fx = Fixture::new();
    let cfg = config(&fx, &doc_url, Value::Null);

    // The probe's input: the whole of /etc/passwd.
    docs.write("api.yaml", &api_doc("file:///etc/passwd"));
    let out = validate_fails(&cfg);
    for want in [
        doc_url.as_str(),
        "`$ref` `file:///etc/passwd`",
        "a remote document may not reference local files",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }

    // A file of the operator's, outside the config directory: refused at start-up too.
    docs.write("api.yaml", &api_doc(&secret_ref));
    let out = validate_fails(&cfg);
    assert!(
        out.contains(&format!("`$ref` `{secret_ref}`")) && out.contains(&doc_url),
        "{out}"
    );
    assert!(!out.contains(marker), "{out}");
    let err = Runtime::try_start(&cfg, &[]).expect_err("start-up must fail");
    assert!(
        err.contains(&format!("`$ref` `{secret_ref}`"))
            && err.contains("a remote document may not reference local files"),
        "{err}"
    );
    // Even when the operator allows the file's directory for local documents.
    let cfg = config(
        &fx,
        &doc_url,
        json!({"allowedDirectories": [outside.path()]}),
    );
    validate_refuses(
        &cfg,
        Duration::from_secs(60),
        &["a remote document may not reference local files"],
    );
}

#[test]
fn refresh_and_sighup_refuse_a_file_reference_and_keep_the_old_catalog() {
    let outside = Fixture::new();
    let marker = "SECRET-LIVE-RUNTIME-91c2";
    let secret = outside.write("secret.yaml", &schema_doc(marker));
    let (docs, api) = doc_server();
    docs.write("api.yaml", &api_doc("#/components/schemas/Plain"));
    let fx = Fixture::new();
    let cfg = config(&fx, &format!("{}/docs/api.yaml", api.url), Value::Null);
    let rt = Runtime::start(&cfg);
    let before = rt.catalog();
    assert_eq!(q_schema(&rt), json!({"type": "string"}));

    let secret_ref = format!("file://{}#/Thing", secret.display());
    docs.write("api.yaml", &api_doc(&secret_ref));
    let resp = rt.post("/v1/refresh", "");
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().unwrap();
    assert_eq!(e["error"]["code"], "refresh_failed", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("`$ref` `{secret_ref}`"))
            && msg.contains("a remote document may not reference local files")
            && msg.contains("the previous catalog is still served"),
        "{msg}"
    );
    assert!(!msg.contains(marker), "{msg}");
    assert_eq!(rt.catalog(), before);
    let body = rt.get("/v1/catalog/effective").text().unwrap();
    assert!(!body.contains(marker), "the file's content was published");

    let info = rt.sighup_and_wait();
    assert_eq!(info["lastRefresh"]["ok"], false, "{info}");
    assert!(
        info["lastRefresh"]["error"]
            .as_str()
            .unwrap()
            .contains("a remote document may not reference local files"),
        "{info}"
    );
    assert_eq!(rt.catalog(), before);
    let body = rt.get("/v1/catalog/effective").text().unwrap();
    assert!(!body.contains(marker), "the file's content was published");
}

#[test]
fn a_remote_document_references_only_its_own_origin_unless_allowed() {
    let (docs, api) = doc_server();
    let (other_docs, other) = doc_server();
    other_docs.write("schemas.yaml", &schema_doc("FROM-THE-OTHER-ORIGIN"));
    let foreign_ref = format!("{}/docs/schemas.yaml#/Thing", other.url);
    docs.write("api.yaml", &api_doc(&foreign_ref));
    let doc_url = format!("{}/docs/api.yaml", api.url);
    let fx = Fixture::new();

    // An internal URL on another port of loopback: refused, and never asked.
    let cfg = config(&fx, &doc_url, Value::Null);
    validate_refuses(
        &cfg,
        Duration::from_secs(60),
        &[
            &doc_url,
            &format!("`$ref` `{foreign_ref}`"),
            &format!("origin {}", other.url),
            "runtime.server.documents.allowedOrigins",
        ],
    );
    let err = Runtime::try_start(&cfg, &[]).expect_err("start-up must fail");
    assert!(err.contains(&format!("`$ref` `{foreign_ref}`")), "{err}");
    assert!(
        other.requests_for("/docs/schemas.yaml").is_empty(),
        "the foreign origin was fetched"
    );

    // Same-origin references keep working.
    docs.write("schemas.yaml", &schema_doc("FROM-THE-SAME-ORIGIN"));
    docs.write("api.yaml", &api_doc("schemas.yaml#/Thing"));
    let rt = Runtime::start(&cfg);
    assert_eq!(q_schema(&rt)["description"], "FROM-THE-SAME-ORIGIN");
    drop(rt);

    // The operator allows the other origin.
    docs.write("api.yaml", &api_doc(&foreign_ref));
    let cfg = config(&fx, &doc_url, json!({"allowedOrigins": [other.url]}));
    let rt = Runtime::start(&cfg);
    assert_eq!(q_schema(&rt)["description"], "FROM-THE-OTHER-ORIGIN");
}

#[test]
fn redirects_are_checked_at_every_hop() {
    let (docs, api) = doc_server();
    let (allowed_docs, allowed) = doc_server();
    let (internal_docs, internal) = doc_server();
    internal_docs.write("internal.yaml", &schema_doc("INTERNAL-ANSWER"));
    let internal_url = format!("{}/docs/internal.yaml", internal.url);
    allowed_docs.write("moved.yaml", &schema_doc("MOVED-WITHIN-ORIGIN"));
    let hop_url = format!("{}/docs/hop.yaml", allowed.url);
    let redirect_to = |location: &str| {
        allowed_docs.write_json(
            "hop.yaml.meta.json",
            &json!({"status": 302, "headers": {"Location": location}}),
        );
    };
    docs.write("api.yaml", &api_doc(&format!("{hop_url}#/Thing")));
    let doc_url = format!("{}/docs/api.yaml", api.url);
    let fx = Fixture::new();

    // The configured source redirecting to an internal URL: refused, never asked.
    docs.write_json(
        "api.yaml.meta.json",
        &json!({"status": 302, "headers": {"Location": internal_url}}),
    );
    let plain_fx = Fixture::new();
    validate_refuses(
        &config(&plain_fx, &doc_url, Value::Null),
        Duration::from_secs(60),
        &[&format!(
            "the redirect from {doc_url} to {internal_url} is refused"
        )],
    );
    assert!(internal.requests_for("/docs/internal.yaml").is_empty());
    std::fs::remove_file(docs.path().join("api.yaml.meta.json")).unwrap();

    let cfg = config(&fx, &doc_url, json!({"allowedOrigins": [allowed.url]}));

    // 302 from the allowed origin to a foreign (internal) one: refused, never asked.
    redirect_to(&internal_url);
    validate_refuses(
        &cfg,
        Duration::from_secs(60),
        &[
            &format!("the redirect from {hop_url} to {internal_url} is refused"),
            &format!("origin {}", internal.url),
        ],
    );
    assert!(
        internal.requests_for("/docs/internal.yaml").is_empty(),
        "the redirect target was fetched"
    );

    // A redirect within the allowed origin is followed.
    redirect_to("/docs/moved.yaml");
    let rt = Runtime::start(&cfg);
    assert_eq!(q_schema(&rt)["description"], "MOVED-WITHIN-ORIGIN");

    // A live refresh re-checks every hop: the redirect now leads to the internal URL.
    let before = rt.catalog();
    redirect_to(&internal_url);
    let resp = rt.post("/v1/refresh", "");
    open_cli_product_tests::expect_error(
        resp,
        502,
        "refresh_failed",
        &format!("to {internal_url} is refused"),
    );
    assert_eq!(rt.catalog(), before);
    assert!(internal.requests_for("/docs/internal.yaml").is_empty());
}

#[test]
fn local_documents_are_read_only_inside_the_config_directory_or_allowed_ones() {
    let outside = Fixture::new();
    let marker = "OUTSIDE-THE-CONFIG-DIR";
    let secret = outside.write("secret.yaml", &schema_doc(marker));
    let outside_name = outside
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let fx = Fixture::new();
    fx.write("schemas/inner.yaml", &schema_doc("INSIDE"));

    // Inside the config directory tree: read.
    fx.write("api.yaml", &api_doc("schemas/inner.yaml#/Thing"));
    let cfg = config(&fx, "api.yaml", Value::Null);
    let rt = Runtime::start(&cfg);
    assert_eq!(q_schema(&rt)["description"], "INSIDE");
    drop(rt);

    // Outside (relative, absolute, or through a symlink inside): refused.
    for reference in [
        format!("../{outside_name}/secret.yaml#/Thing"),
        format!("file://{}#/Thing", secret.display()),
        "link.yaml#/Thing".to_string(),
    ] {
        let _ = std::fs::remove_file(fx.path().join("link.yaml"));
        std::os::unix::fs::symlink(&secret, fx.path().join("link.yaml")).unwrap();
        fx.write("api.yaml", &api_doc(&reference));
        let out = validate_refuses(
            &cfg,
            Duration::from_secs(60),
            &[
                &format!("`$ref` `{reference}`"),
                "api.yaml",
                "is outside the config file's directory",
                "runtime.server.documents.allowedDirectories",
            ],
        );
        assert!(!out.contains(marker), "{out}");
    }
    let err = Runtime::try_start(&cfg, &[]).expect_err("start-up must fail");
    assert!(
        err.contains("is outside the config file's directory"),
        "{err}"
    );

    // A source outside the config directory is refused too.
    outside.write("api.yaml", &api_doc("#/components/schemas/Plain"));
    let out_cfg = config(
        &fx,
        outside.path().join("api.yaml").to_str().unwrap(),
        Value::Null,
    );
    validate_refuses(
        &out_cfg,
        Duration::from_secs(60),
        &["sources.things", "is outside the config file's directory"],
    );

    // The operator widens it with a directory relative to the config file's.
    let cfg = config(
        &fx,
        "api.yaml",
        json!({"allowedDirectories": [format!("../{outside_name}")]}),
    );
    fx.write(
        "api.yaml",
        &api_doc(&format!("../{outside_name}/secret.yaml#/Thing")),
    );
    validate_ok(&cfg);
    let rt = Runtime::start(&cfg);
    assert_eq!(q_schema(&rt)["description"], marker);

    // A directory that does not exist is a configuration error naming the key.
    let bad_fx = Fixture::new();
    let bad = config(
        &bad_fx,
        "api.yaml",
        json!({"allowedDirectories": ["no-such-dir"]}),
    );
    validate_refuses(
        &bad,
        Duration::from_secs(60),
        &[
            "runtime.server.documents.allowedDirectories[0]",
            "no-such-dir",
        ],
    );
}

#[test]
fn devices_fifos_and_directories_are_refused_promptly() {
    let fx = Fixture::new();
    fx.write("schemas/inner.yaml", &schema_doc("INSIDE"));
    mkfifo(&fx.path().join("pipe.yaml"));
    let prompt = Duration::from_secs(20);

    // A FIFO (nobody writes to it): an error, not a hang; the same for a directory.
    let cfg = config(&fx, "api.yaml", Value::Null);
    fx.write("api.yaml", &api_doc("pipe.yaml#/Thing"));
    validate_refuses(
        &cfg,
        prompt,
        &["`$ref` `pipe.yaml#/Thing`", "pipe.yaml: it is a FIFO"],
    );
    fx.write("api.yaml", &api_doc("schemas#/Thing"));
    validate_refuses(
        &cfg,
        prompt,
        &["`$ref` `schemas#/Thing`", "it is a directory"],
    );
    let fifo_source = config(&fx, "pipe.yaml", Value::Null);
    validate_refuses(&fifo_source, prompt, &["it is a FIFO"]);

    // `uri: /dev/zero`: outside the config directory…
    let cfg = config(&fx, "/dev/zero", Value::Null);
    validate_refuses(&cfg, prompt, &["is outside the config file's directory"]);
    // …and, even where the operator allows /dev, not a regular file: no unbounded read
    // (validate runs under a 2 GiB address-space limit).
    let cfg = config(&fx, "/dev/zero", json!({"allowedDirectories": ["/dev"]}));
    validate_refuses(
        &cfg,
        prompt,
        &["/dev/zero", "it is a device; only regular files are read"],
    );
    let cfg = config(&fx, "api.yaml", json!({"allowedDirectories": ["/dev"]}));
    fx.write("api.yaml", &api_doc("file:///dev/zero#/Thing"));
    validate_refuses(
        &cfg,
        prompt,
        &["`$ref` `file:///dev/zero#/Thing`", "it is a device"],
    );

    let cfg = config(&fx, "api.yaml", Value::Null);

    // In a live runtime: the refresh fails promptly and the old catalog keeps serving.
    fx.write("api.yaml", &api_doc("schemas/inner.yaml#/Thing"));
    let rt = Runtime::start(&cfg);
    let before = rt.catalog();
    fx.write("api.yaml", &api_doc("pipe.yaml#/Thing"));
    let started = Instant::now();
    let resp = rt.post("/v1/refresh", "");
    assert!(started.elapsed() < prompt, "took {:?}", started.elapsed());
    open_cli_product_tests::expect_error(resp, 502, "refresh_failed", "it is a FIFO");
    assert_eq!(rt.catalog(), before);
    // Still serving, and a later refresh works.
    fx.write("api.yaml", &api_doc("schemas/inner.yaml#/Thing"));
    assert_eq!(rt.post("/v1/refresh", "").status(), 200);
}

#[test]
fn a_reference_whose_pointer_resolves_to_nothing_is_an_error() {
    let fx = Fixture::new();
    fx.write("schemas/inner.yaml", &schema_doc("INSIDE"));
    let cfg = config(&fx, "api.yaml", Value::Null);
    for (reference, target) in [
        ("schemas/inner.yaml#/x", "schemas/inner.yaml has no `/x`"),
        (
            "#/components/schemas/Missing",
            "api.yaml has no `/components/schemas/Missing`",
        ),
    ] {
        fx.write("api.yaml", &api_doc(reference));
        validate_refuses(
            &cfg,
            Duration::from_secs(60),
            &[&format!("`$ref` `{reference}` points at nothing"), target],
        );
    }
    // In a remote document too.
    let (docs, api) = doc_server();
    docs.write("schemas.yaml", &schema_doc("REMOTE"));
    docs.write("api.yaml", &api_doc("schemas.yaml#/Thing/nope"));
    let doc_url = format!("{}/docs/api.yaml", api.url);
    let remote_fx = Fixture::new();
    validate_refuses(
        &config(&remote_fx, &doc_url, Value::Null),
        Duration::from_secs(60),
        &[
            &doc_url,
            "`$ref` `schemas.yaml#/Thing/nope` points at nothing",
        ],
    );
}

#[test]
fn discovery_links_follow_the_same_origin_rule() {
    let (docs, api) = doc_server();
    let (other_docs, other) = doc_server();
    other_docs.write("openapi.yaml", &api_doc("#/components/schemas/Plain"));
    other_docs.write("overlay.yaml", "overlay: 1.0.0\nactions: []\n");
    docs.write("root", "service root\n");
    let root_url = format!("{}/docs/root", api.url);
    let fx = Fixture::new();
    let cfg = |documents: Value| {
        let mut c = json!({"cli": "1.0.0", "mode": {"default": "discover"},
            "sources": {"things": {"type": "serviceRoot", "uri": root_url}}});
        if !documents.is_null() {
            c["runtime"] = json!({"server": {"documents": documents}});
        }
        fx.write_json(".cli.json", &c)
    };

    // A service root on one origin advertising a description on another (internal) one.
    let desc = format!("{}/docs/openapi.yaml", other.url);
    docs.write_json(
        "root.meta.json",
        &json!({"headers": {"Link": [format!("<{desc}>; rel=\"service-desc\"")]}}),
    );
    validate_refuses(
        &cfg(Value::Null),
        Duration::from_secs(60),
        &[&root_url, &format!("origin {}", other.url)],
    );
    assert!(other.requests_for("/docs/openapi.yaml").is_empty());
    validate_ok(&cfg(json!({"allowedOrigins": [other.url]})));

    // A service-meta linkset naming a local file or a foreign overlay.
    docs.write("openapi.yaml", &api_doc("#/components/schemas/Plain"));
    docs.write_json(
        "root.meta.json",
        &json!({"headers": {"Link": ["</docs/openapi.yaml>; rel=\"service-desc\"",
                                     "</docs/meta.json>; rel=\"service-meta\""]}}),
    );
    for (href, want) in [
        (
            "file:///etc/passwd".to_string(),
            "a remote document may not reference local files".to_string(),
        ),
        (
            format!("{}/docs/overlay.yaml", other.url),
            format!("origin {}", other.url),
        ),
    ] {
        docs.write_json(
            "meta.json",
            &json!({"linkset": [{"anchor": "/docs/root",
                "https://open-cli.dev/rel/schema-overlay": [{"href": href}]}]}),
        );
        validate_refuses(
            &cfg(Value::Null),
            Duration::from_secs(60),
            &[&format!("/docs/meta.json: link to {href}"), &want],
        );
    }
    assert!(other.requests_for("/docs/overlay.yaml").is_empty());
}

#[test]
fn a_cached_copy_is_served_only_while_its_redirects_are_allowed() {
    let (docs, api) = doc_server();
    let (other_docs, other) = doc_server();
    other_docs.write("api.yaml", &api_doc("#/components/schemas/Plain"));
    other_docs.write_json(
        "api.yaml.meta.json",
        &json!({"headers": {"Cache-Control": "max-age=600"}}),
    );
    let moved = format!("{}/docs/api.yaml", other.url);
    docs.write_json(
        "api.yaml.meta.json",
        &json!({"status": 302, "headers": {"Location": moved}}),
    );
    let doc_url = format!("{}/docs/api.yaml", api.url);
    let fx = Fixture::new();
    let cfg = config(&fx, &doc_url, json!({"allowedOrigins": [other.url]}));
    let rt = Runtime::start(&cfg);
    let before = rt.catalog();

    // SIGHUP with the origin no longer allowed: the fresh cached copy is not served either.
    config(&fx, &doc_url, Value::Null);
    let info = rt.sighup_and_wait();
    assert_eq!(info["lastRefresh"]["ok"], false, "{info}");
    let msg = info["lastRefresh"]["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "the (cached) redirect from {doc_url} to {moved} is refused"
        )),
        "{msg}"
    );
    assert_eq!(rt.catalog(), before);
}
