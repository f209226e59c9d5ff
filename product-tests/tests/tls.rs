//! TLS and mutual TLS on the runtime's listener (issue 18, item 1), with certificate chains
//! made in the test: HTTP/1.1 and HTTP/2 over TLS, certificate reload under load without a
//! failed request, a broken pair that keeps the old one, and client certificates required,
//! optional, from the wrong CA, recorded in audit and required beside the token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use open_cli_product_tests::*;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

/// A fixture with the demo API, a CA, the runtime's certificate, and `tls` as
/// `runtime.server.tls` (certificate paths relative to the config file).
fn config(api: &TestApi, ca: &Ca, tls: Value, extra: Value) -> Fixture {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    ca.server().write(fx.path(), "server");
    let mut server = json!({"tls": tls});
    if let (Value::Object(s), Value::Object(e)) = (&mut server, extra) {
        s.extend(e);
    }
    fx.write_json(".cli.json", &open_demo_config(server));
    fx
}

/// [`config`] with client certificates (`clientAuth` `mode`) issued by the returned client CA.
fn mtls(api: &TestApi, mode: &str, extra: Value) -> (Fixture, Ca, Ca) {
    let (ca, clients) = (Ca::new("server CA"), Ca::new("client CA"));
    let fx = config(
        api,
        &ca,
        json!({"certFile": "server.crt", "keyFile": "server.key", "clientCAFile": "clients.pem", "clientAuth": mode}),
        extra,
    );
    fx.write("clients.pem", &clients.pem);
    (fx, ca, clients)
}

fn start(fx: &Fixture, probe: reqwest::blocking::Client) -> Runtime {
    Runtime::try_start_probed(
        &fx.path().join(".cli.json"),
        &fx.path().join("state"),
        &[],
        &[],
        probe,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn server_tls() -> Value {
    json!({"certFile": "server.crt", "keyFile": "server.key"})
}

fn execute_with(client: &reqwest::blocking::Client, rt: &Runtime) -> reqwest::blocking::Response {
    client
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("content-type", "application/json")
        .body(json!({"toolId": "demo:listItems"}).to_string())
        .send()
        .expect("execute over TLS")
}

/// The audit rows of `tool_execution` events once `n` are written.
fn executions(rt: &Runtime, n: usize) -> Vec<Value> {
    audit_rows(rt, n, |v| v["eventType"] == "tool_execution")
}

#[test]
fn https_serves_http1_and_http2_alike() {
    let api = TestApi::start();
    let ca = Ca::new("test CA");
    let fx = config(&api, &ca, server_tls(), json!({}));
    let rt = start(&fx, https_client(&[&ca], None, true));
    assert!(rt.url.starts_with("https://127.0.0.1:"), "{}", rt.url);

    for (client, version) in [
        (https_client(&[&ca], None, true), reqwest::Version::HTTP_11),
        (https_client(&[&ca], None, false), reqwest::Version::HTTP_2),
    ] {
        let resp = client.get(format!("{}/healthz", rt.url)).send().unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (200, version));
        // A tool call and a pass-through request, over the same protocol.
        let resp = execute_with(&client, &rt);
        assert_eq!(resp.version(), version);
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            body["body"].is_array() || body["body"].is_object(),
            "{body}"
        );
        let resp = client
            .get(format!("{}/proxy/demo/items", rt.url))
            .send()
            .unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (200, version));
        let items: Value = resp.json().unwrap();
        assert_eq!(
            items, body["body"],
            "the pass-through and execute answers differ"
        );
    }

    // Over HTTP/2 the header list is bounded too (`maxHeaderBytes`, 64 KiB by default).
    let big = https_client(&[&ca], None, false)
        .get(format!("{}/healthz", rt.url))
        .header("x-big", "a".repeat(100 * 1024))
        .send();
    assert!(
        big.as_ref().map(|r| r.status() != 200).unwrap_or(true),
        "a 100 KiB header list was served over HTTP/2: {:?}",
        big.map(|r| r.status())
    );

    // Plain HTTP to the TLS port is not served.
    let plain = http()
        .get(rt.url.replace("https://", "http://") + "/healthz")
        .send();
    assert!(
        plain.map(|r| r.status().as_u16() != 200).unwrap_or(true),
        "plain HTTP must not be answered"
    );
    // A client that does not trust the certificate is refused by its own check.
    let other = Ca::new("another CA");
    assert!(
        https_client(&[&other], None, true)
            .get(format!("{}/healthz", rt.url))
            .send()
            .is_err()
    );
}

#[test]
fn a_new_certificate_is_served_without_a_failed_request_and_a_broken_one_is_refused() {
    let api = TestApi::start();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let fx = config(&api, &old_ca, server_tls(), json!({}));
    let rt = start(&fx, https_client(&[&old_ca], None, true));

    // Load: new connections (each handshake sees the certificate of the moment) and a
    // keep-alive connection, from clients that trust both CAs.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for fresh in [true, false] {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let url = format!("{}/healthz", rt.url);
        let both = [old_ca.pem.clone(), new_ca.pem.clone()];
        load.push(std::thread::spawn(move || {
            let make = || {
                let certs = both
                    .iter()
                    .map(|p| reqwest::Certificate::from_pem(p.as_bytes()).unwrap());
                reqwest::blocking::Client::builder()
                    .tls_certs_only(certs)
                    .http1_only()
                    .build()
                    .unwrap()
            };
            let mut client = make();
            while !stop.load(Ordering::SeqCst) {
                if fresh {
                    client = make();
                }
                match client.get(&url).send() {
                    Ok(r) if r.status() == 200 => done.fetch_add(1, Ordering::SeqCst),
                    Ok(r) => {
                        eprintln!("status {}", r.status());
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                    Err(e) => {
                        eprintln!("error {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    wait_for("load running", DEADLINE, || {
        (done.load(Ordering::SeqCst) > 20).then_some(())
    })
    .unwrap();

    // The files change (a new pair renamed over the old one): picked up without a signal.
    new_ca.server().write(fx.path(), "server");
    let only_new = https_client(&[&new_ca], None, true);
    wait_for("the new certificate served", DEADLINE, || {
        only_new
            .get(format!("{}/healthz", rt.url))
            .send()
            .ok()
            .filter(|r| r.status() == 200)
    })
    .unwrap();
    let before = done.load(Ordering::SeqCst);
    wait_for("load after the reload", DEADLINE, || {
        (done.load(Ordering::SeqCst) > before + 20).then_some(())
    })
    .unwrap();

    // A broken key on SIGHUP: reported, and the current pair stays in use.
    write_atomically(&fx.path().join("server.key"), "not a key\n");
    rt.proc.signal(libc::SIGHUP);
    wait_for("the failed reload reported", DEADLINE, || {
        rt.proc
            .logs()
            .contains("listener TLS reload failed")
            .then_some(())
    })
    .unwrap();
    let resp = only_new.get(format!("{}/healthz", rt.url)).send().unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = only_new
        .get(format!("{}/metrics", rt.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("open_cli_tls_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("open_cli_tls_reloads_total{result=\"ok\"}"),
        "{metrics}"
    );

    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the reload"
    );
    assert!(done.load(Ordering::SeqCst) > 40);
}

#[test]
fn required_client_certificates_refuse_callers_without_one_from_the_ca() {
    let api = TestApi::start();
    let (fx, ca, clients) = mtls(&api, "required", json!({}));
    let rogue = Ca::new("rogue CA");
    let agent = clients.client("agent-7", "Acme");
    let rt = start(&fx, https_client(&[&ca], Some(&agent), true));

    // No certificate, or one from another CA: refused in the handshake.
    for who in [None, Some(rogue.client("agent-7", "Acme"))] {
        for http1 in [true, false] {
            let r = https_client(&[&ca], who.as_ref(), http1)
                .get(format!("{}/healthz", rt.url))
                .send();
            assert!(
                r.is_err(),
                "{who:?} was answered: {:?}",
                r.map(|r| r.status())
            );
        }
    }
    // The agent's certificate: answered, over both protocols, and named in the audit record.
    for http1 in [true, false] {
        let resp = execute_with(&https_client(&[&ca], Some(&agent), http1), &rt);
        assert_eq!(resp.status(), 200);
    }
    for row in executions(&rt, 2) {
        assert_eq!(row["clientCert"], "CN=agent-7, O=Acme", "{row}");
    }
    let logs = rt.proc.logs();
    assert!(logs.contains("TLS handshake failed"), "{logs}");
}

#[test]
fn optional_client_certificates_admit_both_and_record_the_one_sent() {
    let api = TestApi::start();
    let (fx, ca, clients) = mtls(&api, "optional", json!({}));
    let rt = start(&fx, https_client(&[&ca], None, true));
    let agent = clients.client("agent-9", "Acme");
    assert_eq!(
        execute_with(&https_client(&[&ca], None, true), &rt).status(),
        200
    );
    assert_eq!(
        execute_with(&https_client(&[&ca], Some(&agent), false), &rt).status(),
        200
    );
    // Two calls on two connections, maybe two serving threads: their records in any order.
    let rows = executions(&rt, 2);
    let certs: Vec<&Value> = rows.iter().map(|r| &r["clientCert"]).collect();
    assert!(
        certs.contains(&&Value::Null) && certs.contains(&&json!("CN=agent-9, O=Acme")),
        "{rows:?}"
    );
    // A certificate from another CA is still refused: optional is not unverified.
    let rogue = Ca::new("rogue CA").client("agent-9", "Acme");
    assert!(
        https_client(&[&ca], Some(&rogue), true)
            .get(format!("{}/healthz", rt.url))
            .send()
            .is_err()
    );
}

#[test]
fn require_client_cert_refuses_a_valid_token_without_a_certificate() {
    let issuer = KeyedIssuer::start();
    let api = TestApi::start();
    let mut auth = issuer.auth();
    auth["requireClientCert"] = json!(true);
    let (fx, ca, clients) = mtls(&api, "optional", json!({"auth": auth}));
    let rt = start(&fx, https_client(&[&ca], None, true));
    let token = issuer.token("agent-1", "bundle:demo");
    let call = |client: reqwest::blocking::Client| {
        client
            .post(format!("{}/v1/tools/execute", rt.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(json!({"toolId": "demo:listItems"}).to_string())
            .send()
            .unwrap()
    };
    expect_error(
        call(https_client(&[&ca], None, true)),
        401,
        "authn_failed",
        "client certificate is required",
    );
    let agent = clients.client("agent-1", "Acme");
    let resp = call(https_client(&[&ca], Some(&agent), true));
    assert_eq!(resp.status(), 200);
    let rows = executions(&rt, 1);
    assert_eq!(rows[0]["clientCert"], "CN=agent-1, O=Acme");
    assert!(rows[0]["principal"].is_string(), "{}", rows[0]);
}

#[test]
fn tls_flags_override_the_config_and_bad_files_stop_start_up() {
    let api = TestApi::start();
    let ca = Ca::new("flag CA");
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(".cli.json", &demo_config(json!({})));
    let (cert, key) = ca.server().write(fx.path(), "flag");
    let rt = Runtime::try_start_probed(
        &cfg,
        &fx.path().join("state"),
        &[
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
        ],
        &[],
        https_client(&[&ca], None, true),
    )
    .unwrap();
    assert!(rt.url.starts_with("https://"));
    drop(rt);

    // A key that does not belong to the certificate: start-up fails, naming both files.
    let (_, other_key) = ca.server().write(fx.path(), "other");
    let out = run(
        "open-cli-toolbox",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            other_key.to_str().unwrap(),
        ],
        &[],
        None,
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("flag.crt")
            && err.contains("other.key")
            && err.contains("cannot be used together"),
        "{err}"
    );
}

/// A runtime reachable from other hosts with neither TLS nor runtime auth says so at start-up
/// (it still starts: a private network may be the operator's choice); on loopback it does not.
#[test]
fn a_non_loopback_listener_without_tls_or_auth_is_warned_about() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(".cli.json", &demo_config(json!({})));
    let state = fx.path().join("state");
    let (proc, _) = spawn_on_free_port(
        "open-cli-toolbox",
        Port::Free,
        DEADLINE,
        |port| {
            let mut cmd = std::process::Command::new(bin("open-cli-toolbox"));
            isolate(&mut cmd);
            cmd.arg("--config")
                .arg(&cfg)
                .args([
                    "--addr",
                    &format!("0.0.0.0:{port}"),
                    "--instance-id",
                    "test",
                ])
                .arg("--state-dir")
                .arg(&state);
            cmd
        },
        |p, _| {
            p.logs()
                .contains("open-cli runtime listening")
                .then_some(())
        },
    )
    .unwrap();
    assert!(
        proc.logs()
            .contains("listening on a non-loopback address without TLS and without runtime auth"),
        "{}",
        proc.logs()
    );
    drop(proc);
    let mut rt = Runtime::start(&cfg);
    assert!(!rt.stopped_logs().contains("non-loopback"));
}

/// The CLI reaches a runtime behind a private CA and mutual TLS with `--ca-file`,
/// `--client-cert` and `--client-key` (or their `OPEN_CLI_*` variables), and says what is wrong
/// without them.
#[test]
fn the_cli_talks_to_a_mutual_tls_runtime_with_a_private_ca() {
    let api = TestApi::start();
    let (fx, ca, clients) = mtls(&api, "required", json!({}));
    let agent = clients.client("cli-user", "Acme");
    let rt = start(&fx, https_client(&[&ca], Some(&agent), true));
    std::fs::write(fx.path().join("ca.pem"), &ca.pem).unwrap();
    let (cert, key) = agent.write(fx.path(), "agent");
    let ca_file = fx.path().join("ca.pem");
    let list = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["--runtime", rt.url.as_str()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["catalog", "list", "--format", "json"]);
        cli(&args, env)
    };
    let (ca_s, cert_s, key_s) = (
        ca_file.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let ok = list(
        &[
            "--ca-file",
            ca_s,
            "--client-cert",
            cert_s,
            "--client-key",
            key_s,
        ],
        &[],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let tools: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(tools.to_string().contains("demo:listItems"), "{tools}");
    // The same through the environment.
    let ok = list(
        &[],
        &[
            ("OPEN_CLI_CA_FILE", ca_s),
            ("OPEN_CLI_CLIENT_CERT", cert_s),
            ("OPEN_CLI_CLIENT_KEY", key_s),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    // Without the CA the server is not trusted; without a certificate the handshake fails.
    for args in [
        vec!["--client-cert", cert_s, "--client-key", key_s],
        vec!["--ca-file", ca_s],
    ] {
        let out = list(&args, &[]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
        // Each hint names the flags that would help.
        assert!(
            text(&out.stderr).contains("--client-cert") && text(&out.stderr).contains("--ca-file"),
            "{}",
            text(&out.stderr)
        );
    }
    // A file that is not PEM is a usage error naming it.
    let out = list(&["--ca-file", key_s], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--ca-file") && text(&out.stderr).contains("no PEM certificate"),
        "{}",
        text(&out.stderr)
    );
}
