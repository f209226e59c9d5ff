//! `GET /metrics` (issue 17, item 5): the series a platform team alerts on, checked by
//! `promtool check metrics`, scraped by a real Prometheus, and every query of the shipped
//! Grafana dashboard (`deploy/grafana/open-cli-runtime.json`) run against it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use open_cli_product_tests::{
    AUDIENCE, Fixture, Oidc, Proc, Runtime, TestApi, demo_config, expect_error, http, repo_root,
    wait_for,
};
use serde_json::{Value, json};

fn prometheus_bin(name: &str) -> PathBuf {
    let p = repo_root().join("product-tests/prometheus/bin").join(name);
    assert!(p.exists(), "{} is missing: run scripts/deps", p.display());
    p
}

fn metrics_text(rt: &Runtime) -> String {
    let resp = http().get(format!("{}/metrics", rt.url)).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    resp.text().unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The metric families the text declares (`# TYPE <name> <type>`).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// Every query of the dashboard, with Grafana's variables given values a test can use.
fn dashboard_queries() -> Vec<String> {
    let path = repo_root().join("deploy/grafana/open-cli-runtime.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push(
                target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "10s")
                    .replace("$__range", "1h")
                    .replace("$job", ".+"),
            );
        }
    }
    assert!(out.len() >= 18, "{out:?}");
    out
}

/// The metric names a query reads (`open_cli_…`), as families: a histogram's `_bucket`,
/// `_count` and `_sum` are its family's.
fn names_in(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("open_cli_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        names.push(family);
    }
    names
}

struct Prometheus {
    _proc: Proc,
    url: String,
    _dir: Fixture,
}

impl Prometheus {
    /// A real Prometheus scraping `target` (host:port) every second.
    fn scraping(target: &str) -> Self {
        let dir = Fixture::new();
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: open-cli\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let data = dir.path().join("data");
        let (proc, port) = open_cli_product_tests::spawn_on_free_port(
            "prometheus",
            open_cli_product_tests::Port::Free,
            Duration::from_secs(30),
            |port| {
                let mut c = Command::new(prometheus_bin("prometheus"));
                c.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"));
                c
            },
            |_, port| {
                http()
                    .get(format!("http://127.0.0.1:{port}/-/ready"))
                    .send()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| port)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            _proc: proc,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// `/api/v1/query`: the result vector (panics on a query Prometheus rejects).
    fn query(&self, q: &str) -> Vec<Value> {
        let resp: Value = http()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", q)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(resp["status"], "success", "{q}: {resp}");
        match &resp["data"]["result"] {
            Value::Array(v) => v.clone(),
            scalar => vec![scalar.clone()],
        }
    }
}

#[test]
fn metrics_pass_promtool_and_a_real_prometheus_scrapes_every_dashboard_series() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"metrics": {"toolLabels": true}}}})),
    );
    let rt = Runtime::start(&config);
    for _ in 0..5 {
        let (status, _) = open_cli_product_tests::execute(&rt, json!({"toolId": "demo:listItems"}));
        assert_eq!(status, 200);
        let r = http()
            .get(format!("{}/proxy/demo/items", rt.url))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // An invented path is counted under `other`, never as a series of its own.
    assert_eq!(rt.get("/no/such/path/1234").status(), 404);
    // A tool the catalog lacks: the caller's mistake, not a tool call.
    let (status, _) = open_cli_product_tests::execute(&rt, json!({"toolId": "demo:nope"}));
    assert_eq!(status, 404);

    // The audit writer's count trails the answers by one batch: wait for it.
    let text = wait_for("ten audit lines counted", Duration::from_secs(10), || {
        let t = metrics_text(&rt);
        (sample(&t, "open_cli_audit_lines_total").unwrap_or(0.0) >= 10.0).then_some(t)
    })
    .unwrap();
    for (series, at_least) in [
        (
            r#"open_cli_tool_calls_total{service="demo",channel="execute",decision="allowed",status_class="2xx"}"#,
            5.0,
        ),
        (
            r#"open_cli_tool_calls_total{service="demo",channel="passthrough",decision="allowed",status_class="2xx"}"#,
            5.0,
        ),
        (
            r#"open_cli_tool_calls_by_tool_total{tool="demo:listItems",service="demo",channel="execute",decision="allowed"}"#,
            5.0,
        ),
        (
            r#"open_cli_upstream_duration_seconds_count{service="demo",channel="passthrough"}"#,
            5.0,
        ),
        (
            r#"open_cli_requests_total{route="/proxy",channel="passthrough",status_class="2xx"}"#,
            5.0,
        ),
        (
            r#"open_cli_requests_total{route="/v1/tools/execute",channel="execute",status_class="4xx"}"#,
            1.0,
        ),
        (
            r#"open_cli_requests_total{route="other",channel="api",status_class="4xx"}"#,
            1.0,
        ),
        ("open_cli_catalog_tools", 17.0),
        ("open_cli_catalog_last_refresh_success", 1.0),
        ("open_cli_audit_healthy", 1.0),
        ("open_cli_audit_sync_duration_seconds_count", 1.0),
    ] {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!(v >= at_least, "{series} = {v}, want ≥ {at_least}");
    }
    assert!(
        !text.contains("/no/such/path"),
        "an invented path became a label"
    );
    assert_eq!(
        sample(&text, "open_cli_catalog_tools"),
        Some(17.0),
        "catalog tools"
    );

    // promtool, the Prometheus project's own checker, accepts the text as it is.
    let mut promtool = Command::new(prometheus_bin("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every series the dashboard reads is one the runtime declares.
    let declared = families(&text);
    let queries = dashboard_queries();
    for q in &queries {
        for name in names_in(q) {
            assert!(
                declared.contains(&name),
                "the dashboard reads `{name}`, which the runtime does not export: {q}"
            );
        }
    }

    // A real Prometheus scrapes the runtime and answers every dashboard query.
    let target = rt.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::scraping(&target);
    wait_for(
        "Prometheus to have two scrapes with tool-call rates",
        Duration::from_secs(30),
        || {
            // Traffic between scrapes, so that rates are not zero.
            let _ = http().get(format!("{}/proxy/demo/items", rt.url)).send();
            let up = prom.query(r#"up{job="open-cli"}"#);
            let rates = prom.query(
                r#"sum by (service) (rate(open_cli_tool_calls_total{channel="passthrough"}[10s])) > 0"#,
            );
            (up.first().is_some_and(|u| u["value"][1] == "1") && !rates.is_empty()).then_some(())
        },
    )
    .unwrap();
    for q in &queries {
        prom.query(q);
    }
    // And the answers are the runtime's: the catalog panel shows its 17 tools.
    let catalog = queries
        .iter()
        .find(|q| q.starts_with("max(open_cli_catalog_tools"))
        .unwrap();
    let tools = prom.query(catalog);
    assert_eq!(tools[0]["value"][1], "17", "{catalog} → {tools:?}");
}

/// With runtime auth on, `/metrics` needs a token with `metrics:read`, unless
/// `runtime.server.metrics.public` opens it for a scraper on a private network.
#[test]
fn metrics_need_their_scope_unless_public() {
    let api = TestApi::start();
    let oidc = Oidc::start("bundle:demo metrics:read", &[]);
    let start = |public: bool| {
        let fx = Fixture::new();
        fx.write("demo.openapi.yaml", &api.spec_yaml());
        let config = fx.write_json(
            ".cli.json",
            &demo_config(json!({"runtime": {"server": {
                "auth": {"validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE},
                "metrics": {"public": public}}}})),
        );
        (fx, Runtime::start(&config))
    };
    let (_fx, rt) = start(false);
    let get = |token: Option<&str>| {
        let mut req = http().get(format!("{}/metrics", rt.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    expect_error(get(None), 401, "authn_failed", "bearer token");
    let plain = oidc.token("bundle:demo", None);
    expect_error(get(Some(&plain)), 403, "authz_denied", "metrics:read");
    let reader = oidc.token("metrics:read", None);
    let ok = get(Some(&reader));
    assert_eq!(ok.status(), 200);
    let text = ok.text().unwrap();
    // The refusal above was counted, by reason.
    assert!(
        sample(&text, r#"open_cli_authn_failures_total{reason="missing"}"#).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"open_cli_auth_cache_total{cache="jwks",result="fetch"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );

    let (_fx2, open) = start(true);
    let resp = http().get(format!("{}/metrics", open.url)).send().unwrap();
    assert_eq!(resp.status(), 200);
    // Public means the scrape only: every other route still needs a token.
    expect_error(
        open.get("/v1/catalog/effective"),
        401,
        "authn_failed",
        "bearer",
    );
}
