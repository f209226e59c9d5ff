use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use open_cli_product_tests::{
    AUDIENCE, Fixture, Oidc, Person, Proc, Runtime, TestApi, bin, cli, http, isolate, text,
    wait_for,
};
use serde_json::{Value, json};

const SCOPES: &str = "bundle:demo tools:read";

/// The demo API behind a runtime that offers browser login with `oidc`'s public `cli` client.
fn runtime(api: &TestApi, oidc: &Oidc) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = open_cli_product_tests::demo_config(json!({
        "runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE,
            "authorizationURL": format!("{}/auth", oidc.issuer), "tokenURL": format!("{}/token", oidc.issuer),
            "browserClientId": "cli"}}}
    }));
    let path = fx.write_json(".cli.json", &cfg);
    let rt = Runtime::start(&path);
    (fx, rt)
}

/// `open-cli <args>` left running (a login waits for the person), output in files.
fn spawn_cli(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(bin("open-cli"));
    isolate(&mut cmd);
    cmd.args(args).env_remove("OPEN_CLI_RUNTIME_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn("open-cli", cmd)
}

/// The indented line of the CLI's stderr that follows `after` (an address or a code).
fn printed_after(p: &Proc, after: &str) -> String {
    wait_for(
        &format!("the CLI to print `{after}`"),
        Duration::from_secs(20),
        || {
            let err = p.stderr();
            let rest = &err[err.find(after)? + after.len()..];
            rest.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.logs()))
}

fn login_file(state: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(state.join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("login-")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn tools(out: &std::process::Output) -> usize {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["view"]["tools"].as_array().unwrap().len()
}

#[test]
fn browser_login_with_pkce_then_refresh_renewal_and_logout() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = runtime(&api, &oidc);
    let client = Fixture::new();
    let state = Fixture::new();
    let env = [("OPEN_CLI_STATE_DIR", state.path().to_str().unwrap())];
    let cfg = client
        .write_json(
            "client.cli.json",
            &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "runtime": {"remote": {"url": rt.url,
                "oauth": {"mode": "browserLogin", "scopes": ["bundle:demo"]}}}}),
        )
        .display()
        .to_string();

    // Before logging in, a tool command does not fall back to an anonymous call.
    let out = cli(&["--config", &cfg, "catalog", "list"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("open-cli auth login"),
        "{}",
        text(&out.stderr)
    );

    let mut login = spawn_cli(&["--config", &cfg, "auth", "login", "--no-browser"], &env);
    let url = printed_after(&login, "open this address in a browser:");
    let params: Vec<(String, String)> = reqwest::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {url}"))
    };
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(param("client_id"), "cli");
    assert_eq!(param("resource"), AUDIENCE);
    assert_eq!(param("scope"), "openid offline_access bundle:demo");
    let redirect = param("redirect_uri").to_string();
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"));

    // A redirect that is not ours (another state) is refused and the CLI keeps waiting.
    let forged = http()
        .get(format!("{redirect}?code=stolen&state=forged"))
        .send()
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(login.try_status().is_none(), "{}", login.logs());

    // The person logs in and consents; the provider sends the browser back to the CLI.
    let back = Person::default().authorize(&url, "alice");
    assert!(back.starts_with(&redirect), "{back}");
    let landed = http().get(&back).send().unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().unwrap().contains("Logged in"));
    let status = login.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{}", login.logs());
    assert!(login.stdout().contains("as alice"), "{}", login.logs());

    let file = login_file(state.path());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let session = read(&file);
    assert!(session["refreshToken"].is_string(), "{session}");
    assert_eq!(session["principal"], "alice");

    // The token is used: the catalog of bundle:demo, and the runtime sees alice.
    assert_eq!(
        tools(&cli(
            &["--config", &cfg, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );
    let out = cli(
        &["--config", &cfg, "auth", "status", "--format", "json"],
        &env,
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["principal"], "alice", "{st}");
    assert_eq!(st["tokenSource"], "browserLogin");
    assert_eq!(st["login"]["refreshable"], true);
    // The contract's posture report.
    assert_eq!(st["posture"], "runtimeSession");
    assert_eq!(st["runtime"]["posture"], "authenticated");
    assert_eq!(st["runtime"]["available"], true);
    assert_eq!(st["config"]["posture"], "loaded");
    assert_eq!(st["services"][0]["name"], "demo", "{st}");
    assert!(
        st["services"][0]["authType"]
            .as_str()
            .unwrap()
            .contains("apiKey"),
        "{st}"
    );
    assert!(
        st["services"][0]["configured"].is_null(),
        "no secrets in this config: {st}"
    );
    // No runtime to talk to: the config alone.
    let out = cli(
        &[
            "--config",
            &cfg,
            "--runtime",
            "http://127.0.0.1:1",
            "auth",
            "status",
            "--format",
            "json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["posture"], "configOnly", "{st}");
    assert_eq!(st["runtime"]["posture"], "unreachable");

    // A token about to expire is refreshed before the request (the refresh token rotates).
    let mut s = session.clone();
    s["expiresAt"] = json!(unix_now() + 5);
    std::fs::write(&file, s.to_string()).unwrap();
    assert_eq!(
        tools(&cli(
            &["--config", &cfg, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );
    let refreshed = read(&file);
    assert_ne!(refreshed["accessToken"], session["accessToken"]);
    assert_ne!(refreshed["refreshToken"], session["refreshToken"]);

    // A token the runtime refuses is renewed once with the refresh token.
    let mut s = refreshed.clone();
    s["accessToken"] = json!("garbage");
    s["expiresAt"] = json!(99_999_999_999u64);
    std::fs::write(&file, s.to_string()).unwrap();
    assert_eq!(
        tools(&cli(
            &["--config", &cfg, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );
    assert_ne!(read(&file)["accessToken"], "garbage");

    // A refresh token the provider no longer accepts: log in again, no anonymous call.
    let mut s = read(&file);
    s["accessToken"] = json!("garbage");
    s["refreshToken"] = json!("revoked");
    std::fs::write(&file, s.to_string()).unwrap();
    let out = cli(&["--config", &cfg, "catalog", "list"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("open-cli auth login"),
        "{}",
        text(&out.stderr)
    );

    // Logout forgets this runtime's login (that file only).
    let out = cli(&["--config", &cfg, "auth", "logout"], &env);
    assert!(
        text(&out.stdout).contains("logged out"),
        "{}",
        text(&out.stderr)
    );
    assert!(!file.exists());
    let out = cli(&["--config", &cfg, "auth", "logout"], &env);
    assert!(text(&out.stdout).contains("not logged in"));
}

#[test]
fn device_login_for_a_host_without_a_browser() {
    let api = TestApi::start();
    let oidc = Oidc::start(SCOPES, &[]);
    let (_fx, rt) = runtime(&api, &oidc);
    let state = Fixture::new();
    let env = [("OPEN_CLI_STATE_DIR", state.path().to_str().unwrap())];
    // No client config at all: the runtime says how to log in, and the login is used by the
    // next commands against that runtime.
    let mut login = spawn_cli(
        &[
            "--runtime",
            &rt.url,
            "auth",
            "login",
            "--device",
            "--scope",
            "bundle:demo",
        ],
        &env,
    );
    let uri = printed_after(&login, ", open\n");
    let code = printed_after(&login, "and enter the code");
    assert_eq!(uri, format!("{}/device", oidc.issuer));
    Person::default().approve_device(&uri, &code, "bob");
    let status = login.wait_exit(Duration::from_secs(40)).unwrap();
    assert!(status.success(), "{}", login.logs());
    assert!(login.stdout().contains("as bob"), "{}", login.logs());
    let out = cli(
        &["--runtime", &rt.url, "auth", "status", "--format", "json"],
        &env,
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["principal"], "bob", "{st}");
    // The provider grants the cli client bundle:demo and tools:read: the demo tools.
    assert_eq!(
        tools(&cli(
            &["--runtime", &rt.url, "catalog", "list", "--format", "json"],
            &env
        )),
        17
    );

    // Logout revokes the refresh token at the provider (RFC 7009), then forgets the login.
    let session = read(&login_file(state.path()));
    let refresh = session["refreshToken"].as_str().unwrap().to_string();
    assert_eq!(
        session["revocationURL"],
        format!("{}/token/revocation", oidc.issuer)
    );
    let refresh_with = |token: &str| {
        open_cli_product_tests::http()
            .post(format!("{}/token", oidc.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token),
                        ("client_id", "cli"),
                    ])
                    .finish(),
            )
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let out = cli(&["--runtime", &rt.url, "auth", "logout"], &env);
    let said = text(&out.stdout);
    assert!(
        said.contains("logged out") && said.contains("revoked its refresh token"),
        "{said}{}",
        text(&out.stderr)
    );
    assert_eq!(refresh_with(&refresh), 400, "the refresh token is dead");
}

#[test]
fn login_is_refused_where_the_runtime_offers_none() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let rt = Runtime::start(
        &fx.write_json(".cli.json", &open_cli_product_tests::demo_config(json!({}))),
    );
    let out = cli(
        &["--runtime", &rt.url, "auth", "login", "--no-browser"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not offer browser login"),
        "{}",
        text(&out.stderr)
    );
}
